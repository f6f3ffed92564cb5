//! IAM for least-privilege tests: the policy of `deploy/cloudformation/reflex.yaml` as moto can enforce it, and
//! a few IAM Query API calls (signed with SigV4) to create a user that has only that policy.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

/// The `ReflexPolicy` document of the CloudFormation template, as moto can check it: every statement's
/// Effect and Action as written (a conditional statement included), but `Resource: "*"` and no Condition,
/// because moto presents every EC2 and ELB request to IAM with the resource `*` and without condition context.
/// What this proves is the set of actions: each one reflex calls must be granted, and nothing else is.
pub fn template_policy() -> Value {
    let template = template("reflex.yaml");
    policy_of(&template["Resources"]["ReflexPolicy"]["Properties"]["PolicyDocument"])
}

/// The policy of the member account's role (`deploy/cloudformation/member-role.yaml`), as moto can check it
/// (see `template_policy`).
pub fn member_policy() -> Value {
    let template = template("member-role.yaml");
    policy_of(&template["Resources"]["MemberRole"]["Properties"]["Policies"][0]["PolicyDocument"])
}

fn template(name: &str) -> Yaml {
    let path = format!(
        "{}/deploy/cloudformation/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn policy_of(document: &Yaml) -> Value {
    let statements = document["Statement"]
        .as_sequence()
        .expect("the policy has a Statement list");
    let statements: Vec<Value> = statements
        .iter()
        .map(|statement| {
            // `!If [Condition, statement, !Ref AWS::NoValue]`: the statement as granted when the condition holds.
            let statement = match statement {
                Yaml::Tagged(tagged) if tagged.tag == "If" => &tagged.value[1],
                plain => plain,
            };
            let actions = match &statement["Action"] {
                Yaml::String(one) => vec![one.clone()],
                Yaml::Sequence(many) => many
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect(),
                other => panic!("unexpected Action {other:?}"),
            };
            json!({
                "Sid": statement["Sid"].as_str().unwrap(),
                "Effect": statement["Effect"].as_str().unwrap(),
                "Action": actions,
                "Resource": "*",
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// An IAM administrator for the moto server at `endpoint` (moto's default credentials, or others).
pub struct IamAdmin {
    endpoint: String,
    client: reqwest::Client,
    credentials: Credentials,
}

impl IamAdmin {
    /// Talks to `endpoint`.
    pub fn new(endpoint: &str) -> Self {
        Self::with(
            endpoint,
            Credentials::new("testing", "testing", None, None, "test"),
        )
    }

    /// Talks to `endpoint` with `credentials` (another IAM user's, or a role's assumed in another account).
    pub fn with(endpoint: &str, credentials: Credentials) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            client: reqwest::Client::new(),
            credentials,
        }
    }

    /// Replaces the trust policy of role `name`.
    pub async fn update_trust(&self, name: &str, trust: &Value) {
        self.call(&[
            ("Action", "UpdateAssumeRolePolicy"),
            ("RoleName", name),
            ("PolicyDocument", &trust.to_string()),
        ])
        .await;
    }

    /// Gives user `user` the inline policy `name` (replacing one of that name).
    pub async fn put_user_policy(&self, user: &str, name: &str, policy: &Value) {
        self.call(&[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", name),
            ("PolicyDocument", &policy.to_string()),
        ])
        .await;
    }

    /// Takes user `user`'s inline policy `name` away.
    pub async fn delete_user_policy(&self, user: &str, name: &str) {
        self.call(&[
            ("Action", "DeleteUserPolicy"),
            ("UserName", user),
            ("PolicyName", name),
        ])
        .await;
    }

    /// Creates role `name` (trusting anyone: moto does not check trust across accounts) whose only
    /// permissions are `policy`.
    pub async fn role_with_only(&self, name: &str, policy: &Value) {
        let trust = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
        ]});
        self.role_trusting(name, &trust, policy).await;
    }

    /// Creates role `name` with the trust policy `trust` whose only permissions are `policy` (moto checks the
    /// trust of a role in the caller's own account).
    pub async fn role_trusting(&self, name: &str, trust: &Value, policy: &Value) {
        self.call(&[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ])
        .await;
        self.call(&[
            ("Action", "PutRolePolicy"),
            ("RoleName", name),
            ("PolicyName", name),
            ("PolicyDocument", &policy.to_string()),
        ])
        .await;
    }

    /// Creates user `name` whose only permissions are `policy`; returns its access key id and secret.
    /// Four IAM calls: CreateUser, CreatePolicy, AttachUserPolicy, CreateAccessKey.
    pub async fn user_with_only(&self, name: &str, policy: &Value) -> (String, String) {
        self.call(&[("Action", "CreateUser"), ("UserName", name)])
            .await;
        let created = self
            .call(&[
                ("Action", "CreatePolicy"),
                ("PolicyName", name),
                ("PolicyDocument", &policy.to_string()),
            ])
            .await;
        let arn = between(&created, "<Arn>", "</Arn>");
        self.call(&[
            ("Action", "AttachUserPolicy"),
            ("UserName", name),
            ("PolicyArn", &arn),
        ])
        .await;
        let key = self
            .call(&[("Action", "CreateAccessKey"), ("UserName", name)])
            .await;
        (
            between(&key, "<AccessKeyId>", "</AccessKeyId>"),
            between(&key, "<SecretAccessKey>", "</SecretAccessKey>"),
        )
    }

    /// One IAM Query API call (POST, form-encoded, SigV4 for `iam`); panics unless it answers 200.
    async fn call(&self, params: &[(&str, &str)]) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", "2010-05-08");
        for (name, value) in params {
            form.append_pair(name, value);
        }
        let body = form.finish();
        let url = format!("{}/", self.endpoint);
        let identity = self.credentials.clone().into();
        let signing = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iam")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signable = SignableRequest::new(
            "POST",
            &url,
            [("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &signing).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        let mut request = self
            .client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        for header in headers {
            request = request.header(header.name(), header.value());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "IAM {params:?}: {status} {text}");
        text
    }
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let to = from + text[from..].find(end).unwrap();
    text[from..to].to_owned()
}
