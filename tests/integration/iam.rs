//! Least privilege, proven: reflex runs with nothing but the IAM policy of `deploy/cloudformation/reflex.yaml`
//! against a moto server that enforces IAM. When reflex starts calling a new AWS action, this test fails until
//! the template grants it.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;

use crate::common::iam::{IamAdmin, template_policy};
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique, with_credentials};

/// The calls moto lets through before it enforces IAM: the fleet (RunInstances twice, CreateLoadBalancer,
/// RegisterInstancesWithLoadBalancer, StopInstances) and the user (CreateUser, CreatePolicy, AttachUserPolicy,
/// CreateAccessKey). Every call after them is checked against the caller's policies.
const SETUP_CALLS: usize = 9;

#[tokio::test]
async fn the_template_policy_is_enough_to_remediate_and_grants_nothing_else() {
    let moto = Moto::start(&[&format!("INITIAL_NO_AUTH_ACTION_COUNT={SETUP_CALLS}")]);
    let admin_fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("iam");
    let (good, bad) = admin_fleet.balancer_with(&lb, 2, 1).await;
    let policy = template_policy();
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "elasticloadbalancing:DescribeInstanceHealth",
            "ec2:DescribeInstances",
            "ec2:TerminateInstances",
            "sns:ConfirmSubscription",
        ]
    );
    let (key_id, secret) = IamAdmin::new(&moto.endpoint)
        .user_with_only("reflex", &policy)
        .await;

    // IAM is enforced from here on: moto's default credentials belong to no IAM user.
    let unknown = admin_fleet.ec2.describe_instances().send().await;
    assert!(unknown.is_err(), "IAM is not enforced");

    let dir = tempfile::tempdir().unwrap();
    let text = with_credentials(
        &config_text(
            &moto.endpoint,
            &dir.path().join("audit.db"),
            &[&lb],
            PERMISSIVE,
        ),
        &key_id,
        &secret,
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(summary["errors"], json!([]));

    // With reflex's own keys: what the policy grants works, anything else is denied.
    let as_reflex = Fleet::with_credentials(&moto.endpoint, &key_id, &secret).await;
    assert!(matches!(
        as_reflex.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    let denied = as_reflex
        .ec2
        .stop_instances()
        .instance_ids(&good[0])
        .send()
        .await;
    let message = format!(
        "{:?}",
        denied.expect_err("StopInstances is not in the policy")
    );
    assert!(
        message.contains("AccessDenied") || message.contains("not authorized"),
        "{message}"
    );
    let denied = as_reflex
        .elb
        .delete_load_balancer()
        .load_balancer_name(&lb)
        .send()
        .await;
    assert!(denied.is_err(), "DeleteLoadBalancer is not in the policy");
    assert_eq!(as_reflex.state(&good[0]).await, InstanceStateName::Running);
}

/// A policy that grants only these actions.
fn only(actions: &[&str]) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    })
}

/// What AWS refuses is permanent, not an outage: a denied read answers 502 `aws-denied` naming AWS's error
/// code (senders and operators can tell it from a 503), a denied TerminateInstances is a per-instance error
/// in the summary, and both are in the audit trail and counted as permanent AWS errors.
#[tokio::test]
async fn permission_errors_answer_aws_denied_and_are_audited() {
    // Setup: the fleet (5 calls) and two users (4 calls each).
    let moto = Moto::start(&["INITIAL_NO_AUTH_ACTION_COUNT=13"]);
    let admin_fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("deny");
    let (_, bad) = admin_fleet.balancer_with(&lb, 2, 1).await;
    let admin = IamAdmin::new(&moto.endpoint);
    let no_terminate = admin
        .user_with_only(
            "reader",
            &only(&[
                "elasticloadbalancing:DescribeInstanceHealth",
                "ec2:DescribeInstances",
            ]),
        )
        .await;
    let nothing = admin
        .user_with_only("nobody", &only(&["ec2:DescribeInstances"]))
        .await;

    let spawn = |(key_id, secret): (String, String)| {
        let lb = lb.clone();
        let endpoint = moto.endpoint.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let text = with_credentials(
                &config_text(&endpoint, &dir.path().join("audit.db"), &[&lb], PERMISSIVE),
                &key_id,
                &secret,
            );
            TestApp::spawn_with_config(dir, &text).await
        }
    };

    let app = spawn(no_terminate).await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert_eq!(summary["errors"][0]["instance-id"], json!(bad[0]));
    let error = summary["errors"][0]["error"].as_str().unwrap();
    assert!(error.contains("permanent"), "{error}");
    let record = &app.audit_records().await[0];
    assert!(
        record.detail["actions"][0]["error"].is_string(),
        "{:?}",
        record.detail
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(
            r#"reflex_aws_call_errors_total{operation="TerminateInstances",kind="permanent"} 1"#
        ),
        "{metrics}"
    );

    let app = spawn(nothing).await;
    let (status, body) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "aws-denied");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("DescribeInstanceHealth"), "{detail}");
    assert!(
        ["AccessDenied", "UnauthorizedOperation", "HTTP 403"]
            .iter()
            .any(|code| detail.contains(code)),
        "{detail}"
    );
    let record = &app.audit_records().await[0];
    assert_eq!(
        (record.status, record.error.as_deref()),
        (502, Some("aws-denied"))
    );
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains(
        r#"reflex_aws_call_errors_total{operation="DescribeInstanceHealth",kind="permanent"} 1"#
    ));
    assert!(metrics.contains(r#"reflex_rejections_total{source="manual",code="aws-denied"} 1"#));
}
