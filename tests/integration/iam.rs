//! Least privilege, proven: reflex runs with nothing but the IAM policy of `deploy/cloudformation/reflex.yaml`
//! against a moto server that enforces IAM. When reflex starts calling a new AWS action, this test fails until
//! the template grants it.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;

use crate::common::iam::{IamAdmin, template_policy};
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique, with_credentials};

#[tokio::test]
async fn the_template_policy_is_enough_for_both_kinds_and_both_actions_and_grants_nothing_else() {
    let moto = Moto::start(&[]);
    let admin_fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("iam");
    let (good, bad) = admin_fleet.balancer_with(&lb, 2, 1).await;
    let rebooted = unique("iam-reboot");
    let (_, stopped) = admin_fleet.balancer_with(&rebooted, 2, 1).await;
    let group_name = unique("iamtg");
    let (group, group_good, lone) = admin_fleet.target_group_with(&group_name, 2, 1).await;
    let members = admin_fleet
        .auto_scaling_group(&group_name, &group.arn, 2)
        .await;
    admin_fleet.stop(&members[..1]).await;
    let isolated_name = unique("iamiso");
    let (isolated_group, _, _) = admin_fleet.target_group_with(&isolated_name, 2, 0).await;
    let isolated = admin_fleet
        .auto_scaling_group(&isolated_name, &isolated_group.arn, 2)
        .await;
    admin_fleet.stop(&isolated[..1]).await;
    let policy = template_policy();
    let actions = granted(&policy);
    assert_eq!(
        actions,
        [
            "elasticloadbalancing:DescribeInstanceHealth",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
            "ec2:DescribeInstances",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeInstanceRefreshes",
            "ec2:TerminateInstances",
            "ec2:RebootInstances",
            "ec2:StartInstances",
            "autoscaling:SetInstanceHealth",
            "ec2:CreateTags",
            "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
            "elasticloadbalancing:DeregisterTargets",
            "autoscaling:DetachInstances",
            "autoscaling:SetDesiredCapacity",
            "autoscaling:CreateOrUpdateTags",
            "ecs:DescribeServices",
            "rds:DescribeDBInstances",
            "ecs:UpdateService",
            "ecs:TagResource",
            "rds:RebootDBInstance",
            "rds:AddTagsToResource",
            "ssm:SendCommand",
            "ssm:SendCommand",
            "ssm:GetCommandInvocation",
            "ssm:ListCommands",
            "cloudwatch:DescribeAlarms",
            "sns:ConfirmSubscription",
            "sts:AssumeRole",
        ]
    );
    let iam = IamAdmin::new(&moto.endpoint);
    let (key_id, secret) = iam.user_with_only("reflex", &policy).await;
    let (blind_id, blind_secret) = iam
        .user_with_only(
            "blind",
            &without(&policy, "autoscaling:DescribeScalingActivities"),
        )
        .await;

    // IAM is enforced from here on: moto's default credentials belong to no IAM user.
    enforce_iam(&moto.endpoint).await;
    let unknown = admin_fleet.ec2.describe_instances().send().await;
    assert!(unknown.is_err(), "IAM is not enforced");

    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    );
    text.push_str(&format!(
        "\n[[targets]]\ntarget_group = \"{group_name}\"\naction = \"auto\"\n"
    ));
    text.push_str(&format!(
        "\n[[targets]]\nload_balancer = \"{rebooted}\"\nladder = [\"reboot\", \"replace\"]\n"
    ));
    text.push_str(&format!(
        "\n[[targets]]\ntarget_group = \"{isolated_name}\"\nladder = [\"isolate\"]\n"
    ));
    // Without DescribeScalingActivities reflex cannot tell whether the group is changing: it refuses, and
    // writes nothing.
    let blind_dir = tempfile::tempdir().unwrap();
    let blind_text = with_credentials(
        &text.replace(
            &dir.path().join("audit.db").display().to_string(),
            &blind_dir.path().join("audit.db").display().to_string(),
        ),
        &blind_id,
        &blind_secret,
    );
    let blind = TestApp::spawn_with_config(blind_dir, &blind_text).await;
    let (status, summary) = blind.remediate(json!({"target_group": group_name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["refused-rule"], "change-unknown", "{summary}");
    let refused = summary["refused"].as_str().unwrap();
    assert!(
        refused.contains(&group_name) && refused.contains("DescribeScalingActivities"),
        "{refused}"
    );
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert_eq!(summary["asg-unhealthy-instance-ids"], json!([]));
    drop(blind);
    let as_reflex = Fleet::with_credentials(&moto.endpoint, &key_id, &secret).await;
    assert_eq!(
        as_reflex.asg_health(&members[0]).await.as_deref(),
        Some("HEALTHY")
    );

    let text = with_credentials(&text, &key_id, &secret);
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(summary["errors"], json!([]));
    let (status, summary) = app.remediate(json!({"target_group": group_name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!(lone));
    assert_eq!(summary["asg-unhealthy-instance-ids"], json!([members[0]]));
    assert_eq!(summary["errors"], json!([]));
    // A ladder's reboot of a stopped instance is StartInstances; of a running one, RebootInstances.
    let (status, summary) = app.remediate(json!({"load_balancer": rebooted})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["rebooted-instance-ids"], json!(stopped));
    assert_eq!(summary["errors"], json!([]));
    assert_eq!(
        as_reflex.state(&stopped[0]).await,
        InstanceStateName::Running
    );
    as_reflex
        .ec2
        .reboot_instances()
        .instance_ids(&stopped[0])
        .send()
        .await
        .expect("RebootInstances is in the policy");
    // isolate tags, deregisters and detaches under the template's statements.
    let (status, summary) = app.remediate(json!({"target_group": isolated_name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["isolated-instance-ids"],
        json!([isolated[0]]),
        "{summary}"
    );
    assert_eq!(summary["errors"], json!([]));

    // With reflex's own keys: what the policy grants works, anything else is denied.
    for id in [&bad[0], &lone[0]] {
        assert!(matches!(
            as_reflex.state(id).await,
            InstanceStateName::ShuttingDown | InstanceStateName::Terminated
        ));
    }
    assert_eq!(
        as_reflex.asg_health(&members[0]).await.as_deref(),
        Some("UNHEALTHY")
    );
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
    let denied = as_reflex
        .elbv2
        .register_targets()
        .target_group_arn(&group.arn)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&group_good[0])
                .build(),
        )
        .send()
        .await;
    assert!(denied.is_err(), "RegisterTargets is not in the policy");
    let denied = as_reflex
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group_name)
        .desired_capacity(0)
        .send()
        .await;
    assert!(
        denied.is_err(),
        "UpdateAutoScalingGroup is not in the policy"
    );
    assert_eq!(as_reflex.state(&good[0]).await, InstanceStateName::Running);
    assert!(as_reflex.none_terminated(&group_good).await);
}

/// Makes the moto server at `endpoint` check every later request against the caller's IAM policies.
pub(crate) async fn enforce_iam(endpoint: &str) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset-auth"))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// `policy` without `action` in any statement.
fn without(policy: &serde_json::Value, action: &str) -> serde_json::Value {
    let mut policy = policy.clone();
    for statement in policy["Statement"].as_array_mut().unwrap() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|granted| granted != action);
        }
    }
    policy
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
                "autoscaling:DescribeAutoScalingInstances",
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

/// The policy `reflex iam-policy` prints for the configuration `text`, written into `dir`.
pub(crate) fn printed_policy(dir: &std::path::Path, text: &str) -> serde_json::Value {
    let config = dir.join("reflex.toml");
    std::fs::write(&config, text).unwrap();
    let printed =
        crate::common::process::reflex(["iam-policy", "--config", config.to_str().unwrap()]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    serde_json::from_slice(&printed.stdout).unwrap()
}

/// Every action `policy` grants, statement by statement, in order.
pub(crate) fn granted(policy: &serde_json::Value) -> Vec<&str> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// `policy` as moto can enforce it: every statement's actions on `*`, without conditions (see
/// `common::iam::template_policy`), and each `cloudwatch:` action under `monitoring:` as well, the name moto
/// checks CloudWatch calls by (its endpoint's prefix; AWS checks `cloudwatch:`).
pub(crate) fn as_moto_enforces(policy: &serde_json::Value) -> serde_json::Value {
    let mut policy = policy.clone();
    for statement in policy["Statement"].as_array_mut().unwrap() {
        statement["Resource"] = json!("*");
        statement.as_object_mut().unwrap().remove("Condition");
        let actions = statement["Action"].as_array_mut().unwrap();
        let monitoring: Vec<serde_json::Value> = actions
            .iter()
            .filter_map(|action| action.as_str()?.strip_prefix("cloudwatch:"))
            .map(|name| json!(format!("monitoring:{name}")))
            .collect();
        actions.extend(monitoring);
    }
    policy
}

#[tokio::test]
async fn the_policy_iam_policy_prints_is_enough_for_the_ladder_it_was_written_for_and_grants_nothing_else()
 {
    let moto = Moto::start(&[]);
    let admin_fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("iam-generated");
    let (good, bad) = admin_fleet.balancer_with(&lb, 2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let remediation = "grace_period_secs = 0\ncooldown_secs = 0\nreboot_verify_secs = 1\n\
                       max_unhealthy_fraction = 0.9\nmax_removed_fraction_per_hour = 1.0\n";
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        remediation,
    ) + &format!(
        "\n[[targets]]\nload_balancer = \"{lb}\"\nladder = [\"restart-app\", \"reboot\"]\n\
             \n[[actions]]\nname = \"restart-app\"\nkind = \"ssm-command\"\n\
             document = \"AWS-RunShellScript\"\ndocument_version = \"1\"\n\
             parameters = {{ commands = [\"systemctl restart app\"] }}\nverify_secs = 1\n"
    );
    let policy = printed_policy(dir.path(), &text);
    let granted = granted(&policy);
    assert!(
        !granted.contains(&"ec2:TerminateInstances"),
        "no replace step: {granted:?}"
    );
    let iam = IamAdmin::new(&moto.endpoint);
    let (key_id, secret) = iam
        .user_with_only("generated", &as_moto_enforces(&policy))
        .await;
    enforce_iam(&moto.endpoint).await;

    // The first step sends its command and follows it; the instance is still down at the check, so the
    // ladder's reboot starts it: every call under the printed policy.
    let app = TestApp::spawn_with_config(dir, &with_credentials(&text, &key_id, &secret)).await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["commanded-instance-ids"], json!(bad), "{summary}");
    assert_eq!(summary["errors"], json!([]), "{summary}");
    let as_reflex = Fleet::with_credentials(&moto.endpoint, &key_id, &secret).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while as_reflex.state(&bad[0]).await != InstanceStateName::Running {
        assert!(
            std::time::Instant::now() < deadline,
            "the reboot step never started the instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The reboot may start the instance before the check that ran it has written its own record.
    let polled = app
        .record_where("the command's check", |r| r.detail.get("polled").is_some())
        .await;
    assert_eq!(
        polled.detail["polled"][0]["state"], "Success",
        "{:?}",
        polled.detail
    );
    let denied = as_reflex
        .ec2
        .terminate_instances()
        .instance_ids(&good[0])
        .send()
        .await;
    assert!(
        denied.is_err(),
        "TerminateInstances is not in the printed policy"
    );
}

#[tokio::test]
async fn the_policy_iam_policy_prints_for_a_rule_is_enough_for_its_run_and_grants_nothing_else() {
    let moto = Moto::start(&[]);
    let admin_fleet = Fleet::new(&moto.endpoint).await;
    let role = unique("kafka");
    let mut brokers = admin_fleet.launch(2, &[("role", &role)]).await;
    brokers.sort();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        "grace_period_secs = 0\ncooldown_secs = 0\n",
    ) + &format!(
        "\n[[actions]]\nname = \"restart-kafka\"\nkind = \"ssm-command\"\n\
         document = \"AWS-RunShellScript\"\ndocument_version = \"1\"\n\
         parameters = {{ commands = [\"systemctl restart kafka\"] }}\nverify_secs = 1\nmax_per_day = 2\n\
         \n[[rules]]\nname = \"kafka-down\"\nsources = [\"manual\"]\ninstances = \"tag:role={role}\"\n\
         ladder = [\"restart-kafka\"]\nverify = \"alarm-ok\"\nverify_within_secs = 5\n"
    );
    let policy = printed_policy(dir.path(), &text);
    let granted = granted(&policy);
    for needed in [
        "ssm:SendCommand",
        "ssm:GetCommandInvocation",
        "cloudwatch:DescribeAlarms",
    ] {
        assert!(granted.contains(&needed), "{needed}: {granted:?}");
    }
    for unneeded in ["ec2:TerminateInstances", "ec2:RebootInstances"] {
        assert!(!granted.contains(&unneeded), "{unneeded}: {granted:?}");
    }
    let iam = IamAdmin::new(&moto.endpoint);
    let (key_id, secret) = iam
        .user_with_only("rules", &as_moto_enforces(&policy))
        .await;
    enforce_iam(&moto.endpoint).await;

    // The rule finds its instances by tag, sends its command to both and follows it to its end.
    let app = TestApp::spawn_with_config(dir, &with_credentials(&text, &key_id, &secret)).await;
    let (status, run) = app
        .remediate(json!({"rule": "kafka-down", "reason": "kafka is down"}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["errors"], json!([]), "{run}");
    let mut commanded: Vec<String> =
        serde_json::from_value(run["commanded-instance-ids"].clone()).unwrap();
    commanded.sort();
    assert_eq!(commanded, brokers, "{run}");
    let check = app.check_of(run["audit-id"].as_str().unwrap()).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(
        check.detail["polled"][0]["state"], "Success",
        "{:?}",
        check.detail
    );

    // With reflex's own keys: its alarm read works, a termination is denied.
    let as_reflex = Fleet::with_credentials(&moto.endpoint, &key_id, &secret).await;
    aws_sdk_cloudwatch::Client::new(&as_reflex.sdk)
        .describe_alarms()
        .send()
        .await
        .expect("DescribeAlarms is in the printed policy");
    let denied = as_reflex
        .ec2
        .terminate_instances()
        .instance_ids(&brokers[0])
        .send()
        .await;
    assert!(
        denied.is_err(),
        "TerminateInstances is not in the printed policy"
    );
}
