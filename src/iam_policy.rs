//! `reflex iam-policy`: the least-privilege IAM policy for a configuration. It grants what reflex's calls need
//! for the configured targets and the action kinds their ladders name, and nothing else: the reads (health,
//! instances, Auto Scaling groups), each kind's IAM actions on the resources they touch (the configured
//! balancers and target groups by ARN; instances and groups tagged `reflex:managed`; instances with the
//! protect tag never terminated, rebooted or started), the SNS confirmation and the member roles. For reflex's
//! own account by default, or for an `[[accounts]]` entry's member role with `--account`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::config::{Config, ConfirmMethod, LOCAL_ACCOUNT, RuleConfig, TargetConfig};
use crate::engine::action::Kinds;
use crate::target::TargetRef;

/// Why no policy can be written for the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamPolicyError {
    /// `--account` names no `[[accounts]]` entry.
    #[error("--account {0:?} is no [[accounts]] name; the names are {1}")]
    UnknownAccount(String, String),
    /// A kind calls an IAM action this module has no resource rule for.
    #[error("the IAM action {0} has no resource rule in `reflex iam-policy`")]
    NoRule(String),
    /// The configuration names no target and no rule in the account.
    #[error("no [[targets]] or [[rules]] entry is in account {0:?}: there is nothing to grant")]
    NoTargets(String),
}

/// Where the policy applies: the account's targets and rules, their regions, and the account's id when known.
struct Scope<'a> {
    targets: Vec<&'a TargetConfig>,
    rules: Vec<&'a RuleConfig>,
    regions: BTreeSet<&'a str>,
    account_id: String,
    partition: &'static str,
}

/// The policy for `account` (an `[[accounts]]` name; `None`: reflex's own), for the kinds `kinds` serve.
pub fn policy(
    config: &Config,
    kinds: &Kinds,
    account: Option<&str>,
) -> Result<Value, IamPolicyError> {
    let scope = scope(config, account)?;
    let mut statements = reads(&scope, config);
    let mut granted = BTreeSet::new();
    let mut steps: Vec<String> = scope
        .targets
        .iter()
        .flat_map(|target| config.ladder_of(target))
        .collect();
    steps.extend(scope.rules.iter().flat_map(|rule| rule.ladder.clone()));
    for step in steps {
        let Some(kind) = kinds.get(&step) else {
            continue;
        };
        for action in kind.iam_actions() {
            if granted.insert(*action) {
                statements.extend(write(action, &scope, config)?);
            }
        }
    }
    if account.is_none() {
        statements.extend(own_account(config));
    }
    // A rule verified by its alarm reads the alarm that started its run, in the account the rule acts in.
    if scope.rules.iter().any(|rule| rule.verify.is_some()) {
        statements.push(statement(
            "ReadRuleAlarms",
            &["cloudwatch:DescribeAlarms"],
            scope.arns("cloudwatch", "alarm:*"),
        ));
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The targets, regions and account id of `account`.
fn scope<'a>(config: &'a Config, account: Option<&str>) -> Result<Scope<'a>, IamPolicyError> {
    let name = account.unwrap_or(LOCAL_ACCOUNT);
    let account_id = match account {
        None => "*".to_owned(),
        Some(name) => {
            let entry = config
                .accounts
                .iter()
                .find(|entry| entry.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        config.accounts.iter().map(|a| a.name.as_str()).collect();
                    IamPolicyError::UnknownAccount(name.to_owned(), names.join(", "))
                })?;
            entry.role_arn.split(':').nth(4).unwrap_or("*").to_owned()
        }
    };
    let targets: Vec<&TargetConfig> = config
        .targets
        .iter()
        .filter(|target| target.account_name() == name)
        .collect();
    let rules: Vec<&RuleConfig> = config
        .rules
        .iter()
        .filter(|rule| rule.account_name() == name)
        .collect();
    if targets.is_empty() && rules.is_empty() {
        return Err(IamPolicyError::NoTargets(name.to_owned()));
    }
    let mut regions: BTreeSet<&str> = targets
        .iter()
        .map(|target| config.region_of(target))
        .collect();
    regions.extend(rules.iter().map(|rule| rule.region_or(&config.aws.region)));
    let partition = if config.aws.region.starts_with("cn-") {
        "aws-cn"
    } else if config.aws.region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    Ok(Scope {
        targets,
        rules,
        regions,
        account_id,
        partition,
    })
}

/// One statement.
fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

impl Scope<'_> {
    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` in each region of the scope.
    fn arns(&self, service: &str, resource: &str) -> Vec<String> {
        self.regions
            .iter()
            .map(|region| {
                format!(
                    "arn:{}:{service}:{region}:{}:{resource}",
                    self.partition, self.account_id
                )
            })
            .collect()
    }

    /// The ARNs of the scope's balancers and target groups (a group named by its name: any of that name).
    fn balancer_arns(&self, config: &Config) -> Vec<String> {
        self.targets
            .iter()
            .filter_map(|target| self.balancer_arn(config, target))
            .collect()
    }

    /// The ARN of `target`'s classic balancer or target group, in its own region.
    fn balancer_arn(&self, config: &Config, target: &TargetConfig) -> Option<String> {
        let region = config.region_of(target);
        let (partition, account) = (self.partition, &self.account_id);
        match target.reference() {
            TargetRef::TargetGroup(group) if group.starts_with("arn:") => Some(group),
            TargetRef::TargetGroup(group) if group.is_empty() => None,
            TargetRef::TargetGroup(group) if group.starts_with("targetgroup/") => Some(format!(
                "arn:{partition}:elasticloadbalancing:{region}:{account}:{group}"
            )),
            TargetRef::TargetGroup(group) => Some(format!(
                "arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/{group}/*"
            )),
            TargetRef::LoadBalancer(name) => Some(format!(
                "arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/{name}"
            )),
            TargetRef::Rule(_) => None,
        }
    }
}

/// The reads every run makes.
fn reads(scope: &Scope<'_>, config: &Config) -> Vec<Value> {
    let mut reads = Vec::new();
    let arns: BTreeSet<String> = scope
        .targets
        .iter()
        .filter(|target| matches!(target.reference(), TargetRef::LoadBalancer(_)))
        .filter_map(|target| scope.balancer_arn(config, target))
        .collect();
    if !arns.is_empty() {
        reads.push(statement(
            "ReadBalancerHealth",
            &["elasticloadbalancing:DescribeInstanceHealth"],
            arns.into_iter().collect(),
        ));
    }
    if scope.targets.iter().any(|t| t.target_group.is_some()) {
        reads.push(statement(
            "ReadTargetGroupHealth",
            &[
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
            ],
            vec!["*".to_owned()],
        ));
    }
    reads.push(statement(
        "ReadInstances",
        &["ec2:DescribeInstances"],
        vec!["*".to_owned()],
    ));
    reads.push(statement(
        "ReadAutoScalingMembershipAndChanges",
        &[
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeInstanceRefreshes",
        ],
        vec!["*".to_owned()],
    ));
    reads
}

/// The statement granting one of a kind's IAM actions on the resources it touches.
fn write(action: &str, scope: &Scope<'_>, config: &Config) -> Result<Vec<Value>, IamPolicyError> {
    let sid = action.replace([':', '-'], "");
    if let Some((service, resource, tag)) = on_managed(action) {
        let mut grant = statement(&sid, &[action], scope.arns(service, resource));
        grant["Condition"] = match tag {
            None => json!({"StringEquals": {"aws:ResourceTag/reflex:managed": "true"}}),
            Some(key) => json!({
                "StringEquals": {"aws:ResourceTag/reflex:managed": "true"},
                "ForAllValues:StringEquals": {"aws:TagKeys": [key]}
            }),
        };
        return Ok(vec![grant]);
    }
    let granted = match action {
        "ec2:TerminateInstances" | "ec2:RebootInstances" | "ec2:StartInstances" => {
            let mut grant = statement(&sid, &[action], scope.arns("ec2", "instance/*"));
            grant["Condition"] = json!({
                "StringEquals": {"aws:ResourceTag/reflex:managed": "true"},
                "Null": {"aws:ResourceTag/reflex:protect": "true"}
            });
            grant
        }
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer"
        | "elasticloadbalancing:DeregisterTargets" => {
            statement(&sid, &[action], scope.balancer_arns(config))
        }
        "ssm:SendCommand" => {
            // Authorised on the instance and on the document: each in a statement of its own.
            let mut on_instances = statement(&sid, &[action], scope.arns("ec2", "instance/*"));
            on_instances["Condition"] = json!({
                "StringEquals": {"ssm:resourceTag/reflex:managed": "true"},
                "Null": {"ssm:resourceTag/reflex:protect": "true"}
            });
            let documents = statement(
                &format!("{sid}Documents"),
                &[action],
                documents(scope, config),
            );
            return Ok(vec![on_instances, documents]);
        }
        "ssm:GetCommandInvocation"
        | "ssm:ListCommands"
        | "ecs:DescribeServices"
        | "rds:DescribeDBInstances" => statement(&sid, &[action], vec!["*".to_owned()]),
        other => return Err(IamPolicyError::NoRule(other.to_owned())),
    };
    Ok(vec![granted])
}

/// For a write allowed only on resources tagged `reflex:managed=true`: the ARN's service and resource, and the
/// one tag key it may write when it tags (the kind's own record of what it did).
fn on_managed(action: &str) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    const GROUP: &str = "autoScalingGroup:*:autoScalingGroupName/*";
    Some(match action {
        "ec2:CreateTags" => ("ec2", "instance/*", Some(crate::actions::isolate::TAG)),
        "autoscaling:CreateOrUpdateTags" => (
            "autoscaling",
            GROUP,
            Some(crate::actions::asg_set_capacity::TAG),
        ),
        "autoscaling:SetInstanceHealth"
        | "autoscaling:DetachInstances"
        | "autoscaling:SetDesiredCapacity" => ("autoscaling", GROUP, None),
        "ecs:UpdateService" => ("ecs", "service/*", None),
        "ecs:TagResource" => ("ecs", "service/*", Some(crate::actions::ecs_redeploy::TAG)),
        "rds:RebootDBInstance" => ("rds", "db:*", None),
        "rds:AddTagsToResource" => ("rds", "db:*", Some(crate::actions::rds_reboot::TAG)),
        _ => return None,
    })
}

/// The ARNs of the SSM documents the `[[actions]]` entries of the scope's ladders (its targets' and rules')
/// run: an AWS-owned document (`AWS-...`, `Amazon...`) has no account in its ARN.
fn documents(scope: &Scope<'_>, config: &Config) -> Vec<String> {
    let rules = scope.rules.iter().flat_map(|rule| rule.ladder.clone());
    let named: BTreeSet<String> = scope
        .targets
        .iter()
        .flat_map(|t| config.ladder_of(t))
        .chain(rules)
        .collect();
    let documents: BTreeSet<&str> = config
        .actions
        .iter()
        .filter(|entry| named.contains(&entry.name))
        .filter_map(|entry| entry.keys.get("document")?.as_str())
        .collect();
    let mut arns = Vec::new();
    for document in documents {
        if document.starts_with("arn:") {
            arns.push(document.to_owned());
            continue;
        }
        let owner = if document.starts_with("AWS-") || document.starts_with("Amazon") {
            ""
        } else {
            scope.account_id.as_str()
        };
        arns.extend(scope.regions.iter().map(|region| {
            format!(
                "arn:{}:ssm:{region}:{owner}:document/{document}",
                scope.partition
            )
        }));
    }
    arns
}

/// What only reflex's own role needs: confirming SNS subscriptions through the API, assuming member roles.
fn own_account(config: &Config) -> Vec<Value> {
    let mut statements = Vec::new();
    if config.sns.confirm == ConfirmMethod::Api && !config.sns.topic_arns.is_empty() {
        statements.push(statement(
            "ConfirmSubscriptions",
            &["sns:ConfirmSubscription"],
            config.sns.topic_arns.clone(),
        ));
    }
    if !config.accounts.is_empty() {
        statements.push(statement(
            "AssumeMemberRoles",
            &["sts:AssumeRole"],
            config.accounts.iter().map(|a| a.role_arn.clone()).collect(),
        ));
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(text: &str, account: Option<&str>) -> Result<Value, String> {
        let config = crate::config::parse(text, []).map_err(|err| err.to_string())?;
        let kinds = crate::actions::builtin()
            .check(&config)
            .map_err(|err| err.to_string())?;
        policy(&config, &kinds, account).map_err(|err| err.to_string())
    }

    /// Every action the policy grants, in order.
    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    }

    const CONFIG: &str = r#"
[aws]
region = "eu-west-1"

[sns]
topic_arns = ["arn:aws:sns:eu-west-1:111122223333:alarms"]

[[accounts]]
name = "prod"
role_arn = "arn:aws:iam::444455556666:role/reflex-member"

[[targets]]
load_balancer = "web-elb"
ladder = ["restart-app", "isolate"]

[[targets]]
target_group = "api-tg"
region = "us-east-1"

[[targets]]
load_balancer = "shop-elb"
account = "prod"
ladder = ["reboot"]

[[actions]]
name = "restart-app"
kind = "ssm-command"
document = "AWS-RunShellScript"
document_version = "1"
"#;

    #[test]
    fn the_policy_grants_the_reads_and_only_the_kinds_the_ladders_name_on_their_resources() {
        let own = policy_of(CONFIG, None).unwrap();
        assert_eq!(
            actions(&own),
            [
                "elasticloadbalancing:DescribeInstanceHealth",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
                "ec2:DescribeInstances",
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeInstanceRefreshes",
                "ssm:SendCommand",
                "ssm:SendCommand",
                "ssm:GetCommandInvocation",
                "ssm:ListCommands",
                "ec2:CreateTags",
                "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                "elasticloadbalancing:DeregisterTargets",
                "autoscaling:DetachInstances",
                "ec2:TerminateInstances",
                "autoscaling:SetInstanceHealth",
                "sns:ConfirmSubscription",
                "sts:AssumeRole",
            ]
        );
        let text = own.to_string();
        assert!(
            text.contains("arn:aws:elasticloadbalancing:eu-west-1:*:loadbalancer/web-elb"),
            "{text}"
        );
        assert!(
            !text.contains("us-east-1:*:loadbalancer/web-elb"),
            "a balancer is read in its own region only: {text}"
        );
        assert!(
            text.contains("arn:aws:elasticloadbalancing:us-east-1:*:targetgroup/api-tg/*"),
            "{text}"
        );
        assert!(
            text.contains("arn:aws:iam::444455556666:role/reflex-member"),
            "{text}"
        );
        assert!(
            text.contains("\"arn:aws:ssm:eu-west-1::document/AWS-RunShellScript\""),
            "only the configured document: {text}"
        );
        assert!(text.contains("ssm:resourceTag/reflex:protect"), "{text}");
        assert!(
            !text.contains("shop-elb"),
            "another account's target: {text}"
        );
        let terminate = &own["Statement"].as_array().unwrap()[12];
        assert_eq!(
            terminate["Condition"]["Null"]["aws:ResourceTag/reflex:protect"],
            "true"
        );

        let member = policy_of(CONFIG, Some("prod")).unwrap();
        assert_eq!(
            actions(&member)[2..],
            [
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeInstanceRefreshes",
                "ec2:RebootInstances",
                "ec2:StartInstances",
            ]
        );
        assert!(
            member
                .to_string()
                .contains("arn:aws:ec2:eu-west-1:444455556666:instance/*")
        );
    }

    #[test]
    fn every_built_in_kind_s_action_has_a_resource_rule() {
        let config = crate::config::parse(CONFIG, []).unwrap();
        let scope = scope(&config, None).unwrap();
        for kind in crate::actions::builtin().all() {
            for action in kind.iam_actions() {
                for granted in write(action, &scope, &config).unwrap() {
                    let resources = granted["Resource"].as_array().unwrap();
                    assert!(!resources.is_empty(), "{action}");
                }
            }
        }
    }

    #[test]
    fn an_unknown_account_or_one_without_targets_is_refused() {
        let err = policy_of(CONFIG, Some("stage")).unwrap_err();
        assert!(
            err.contains("\"stage\" is no [[accounts]] name; the names are prod"),
            "{err}"
        );
        let err = policy_of(
            "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::444455556666:role/r\"\n\
             [[targets]]\nload_balancer = \"web\"\naccount = \"prod\"\n",
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("no [[targets]] or [[rules]] entry is in account \"local\""),
            "{err}"
        );
    }

    #[test]
    fn a_rule_is_granted_in_the_account_it_acts_in_with_its_document_and_its_alarms() {
        let text = format!(
            "{CONFIG}\n[[actions]]\nname = \"clean\"\nkind = \"ssm-command\"\ndocument = \"Cleanup\"\n\
             document_version = \"2\"\n\n[[rules]]\nname = \"disk\"\naccount = \"prod\"\n\
             region = \"eu-west-1\"\nladder = [\"clean\"]\nverify = \"alarm-ok\"\n"
        );
        let member = policy_of(&text, Some("prod")).unwrap();
        let granted = actions(&member);
        for action in [
            "ssm:SendCommand",
            "ssm:ListCommands",
            "cloudwatch:DescribeAlarms",
        ] {
            assert!(granted.iter().any(|a| a == action), "{action}: {granted:?}");
        }
        let member = member.to_string();
        assert!(
            member.contains("arn:aws:ssm:eu-west-1:444455556666:document/Cleanup"),
            "{member}"
        );
        assert!(
            member.contains("arn:aws:cloudwatch:eu-west-1:444455556666:alarm:*"),
            "{member}"
        );
        let own = policy_of(&text, None).unwrap().to_string();
        assert!(!own.contains("document/Cleanup"), "{own}");
        assert!(!own.contains("DescribeAlarms"), "{own}");
    }
}
