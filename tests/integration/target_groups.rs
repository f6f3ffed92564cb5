//! ALB target groups end to end against moto: `/remediate`, a CloudWatch `AWS/ApplicationELB` alarm published
//! through moto's SNS, an alert through the real Alertmanager and the CLI each replace exactly the stopped
//! instance; with `action = "auto"` an Auto Scaling member is handed to its group instead of terminated.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::alertmanager::{AM_TOKEN, eventually};
use crate::common::alertmanager::Alertmanager;
use crate::common::process::reflex;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};
use crate::sns::{publish, subscribe, topic};

/// reflex whose only target is the target group `group` (by name), with `target_extra` keys in its
/// `[[targets]]` entry and `extra` sections after it.
async fn app(moto: &Moto, group: &str, target_extra: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        PERMISSIVE,
    );
    text.push_str(&format!(
        "\n{extra}\n[[targets]]\ntarget_group = \"{group}\"\n{target_extra}\n"
    ));
    TestApp::spawn_with_config(dir, &text).await
}

async fn is_terminating(fleet: &Fleet, id: &str) -> bool {
    matches!(
        fleet.state(id).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    )
}

/// A CloudWatch alarm on a target group's UnHealthyHostCount, as CloudWatch publishes it to SNS.
fn alarm(group_dimension: &str, balancer_dimension: &str) -> String {
    json!({
        "AlarmName": "web-tg-unhealthy-hosts",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0).",
        "StateChangeTime": "2026-11-25T10:00:00.000+0000",
        "Region": "US East (N. Virginia)",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "UnHealthyHostCount",
            "Namespace": "AWS/ApplicationELB",
            "Statistic": "MAXIMUM",
            "Dimensions": [
                {"name": "TargetGroup", "value": group_dimension},
                {"name": "LoadBalancer", "value": balancer_dimension}
            ],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.0
        }
    })
    .to_string()
}

#[tokio::test]
async fn remediate_replaces_the_stopped_target_and_a_dry_run_changes_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tg");
    let (group, good, bad) = fleet.target_group_with(&name, 3, 1).await;
    let app = app(moto, &name, "", "").await;

    let (status, dry) = app
        .remediate(json!({"target_group": name, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["terminated-instance-ids"], json!(bad));
    assert_eq!(dry["target-group"], json!(name));
    assert_eq!(dry["load-balancer"], json!(group.balancer_dimension));
    assert_eq!(dry["elb-instance-ids"].as_array().unwrap().len(), 4);
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);

    // By ARN, the same target.
    let (status, summary) = app.remediate(json!({"target_group": group.arn})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(summary["asg-unhealthy-instance-ids"], json!([]));
    assert!(is_terminating(&fleet, &bad[0]).await);
    assert!(fleet.none_terminated(&good).await);
    let record = &app.audit_records().await[0];
    assert_eq!(record.target.as_deref(), Some(name.as_str()));
    assert_eq!(record.detail["seen"]["target"], json!(group.arn));
    let stopped = record.detail["seen"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == json!(bad[0]))
        .unwrap();
    assert_eq!(stopped["health"]["reported"], "unused");
    assert_eq!(stopped["health"]["reason_code"], "Target.InvalidState");

    let (status, body) = app
        .remediate(json!({"target_group": "not-configured"}))
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (422, json!("unknown-target-group"))
    );
    let (status, body) = app
        .remediate(json!({"target_group": name, "load_balancer": "web"}))
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid-request"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_alb_alarm_published_through_sns_heals_its_target_group() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgsns");
    let (group, good, bad) = fleet.target_group_with(&name, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let sns = format!("[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n");
    let app = app(moto, &name, "", &sns).await;
    subscribe(&fleet, &topic_arn, &format!("{}/sns", app.base)).await;

    publish(
        &fleet,
        &topic_arn,
        &alarm(&group.dimension, &group.balancer_dimension),
    )
    .await;

    assert!(is_terminating(&fleet, &bad[0]).await);
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    let run = records
        .iter()
        .find(|r| r.source == "sns" && r.outcome == "completed")
        .expect("the alarm's record");
    assert_eq!(run.acted, 1);
    assert_eq!(run.target.as_deref(), Some(name.as_str()));
    assert_eq!(run.detail["answer"]["terminated-instance-ids"], json!(bad));
    // The alarm's LoadBalancer dimension is recorded with the decision.
    let decision = run.detail["decision"].as_str().unwrap();
    assert!(decision.contains(&group.balancer_dimension), "{decision}");

    // An alarm naming another target group is unusable: 422, nothing done.
    publish(
        &fleet,
        &topic_arn,
        &alarm(
            "targetgroup/other/0123456789abcdef",
            &group.balancer_dimension,
        ),
    )
    .await;
    let records = app.audit_records().await;
    assert!(
        records
            .iter()
            .any(|r| r.status == 422 && r.error.as_deref() == Some("unknown-target-group")),
        "{records:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_alertmanager_alert_with_a_target_group_label_heals_it() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgam");
    let (_, good, bad) = fleet.target_group_with(&name, 3, 1).await;
    let hook = format!("[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n");
    let app = app(moto, &name, "", &hook).await;
    let url = format!("{}/alertmanager", app.base);
    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: reflex
  group_by: ['target_group']
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: reflex
    webhook_configs:
      - url: {url}
        http_config:
          authorization:
            credentials: {AM_TOKEN}
"#
    ))
    .await;
    am.post_alerts(json!([{
        "labels": {"alertname": "TargetGroupUnhealthy", "target_group": name},
        "annotations": {"summary": format!("{name} has unhealthy targets")}
    }]))
    .await;
    eventually("the stopped target to be terminated", || async {
        is_terminating(&fleet, &bad[0]).await
    })
    .await;
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    let run = records
        .iter()
        .find(|r| r.source == "alertmanager" && r.acted == 1)
        .expect("the run's record");
    assert_eq!(run.target.as_deref(), Some(name.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn auto_hands_group_members_to_auto_scaling_and_terminates_the_others() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgasg");
    let (group, good, lone) = fleet.target_group_with(&name, 2, 1).await;
    let members = fleet.auto_scaling_group(&name, &group.arn, 2).await;
    assert_eq!(members.len(), 2);
    fleet.stop(&members[..1]).await;
    let app = app(moto, &name, "action = \"auto\"", "").await;

    let (status, dry) = app
        .remediate(json!({"target_group": name, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["asg-unhealthy-instance-ids"], json!([members[0]]));
    assert_eq!(dry["terminated-instance-ids"], json!(lone));
    assert_eq!(
        fleet.asg_health(&members[0]).await.as_deref(),
        Some("HEALTHY")
    );

    let (status, summary) = app.remediate(json!({"target_group": name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["asg-unhealthy-instance-ids"], json!([members[0]]));
    assert_eq!(summary["terminated-instance-ids"], json!(lone));
    assert_eq!(summary["errors"], json!([]));
    // Auto Scaling now holds the member as Unhealthy and replaces it by its own rules; reflex did not
    // terminate it.
    assert_eq!(
        fleet.asg_health(&members[0]).await.as_deref(),
        Some("UNHEALTHY")
    );
    assert_eq!(fleet.state(&members[0]).await, InstanceStateName::Stopped);
    assert!(is_terminating(&fleet, &lone[0]).await);
    assert!(fleet.none_terminated(&good).await);
    assert!(fleet.none_terminated(&members).await);

    let record = &app.audit_records().await[0];
    let actions: &Value = &record.detail["actions"];
    let handed = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "asg-unhealthy")
        .expect("the SetInstanceHealth result");
    assert_eq!(handed["instance_id"], json!(members[0]));
    assert_eq!(handed["auto_scaling_group"], json!(name));
    assert_eq!(handed["new_state"], "Unhealthy");
    app.stop().await;
}

#[tokio::test]
async fn asg_unhealthy_skips_an_instance_in_no_group() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgonly");
    let (_, _, lone) = fleet.target_group_with(&name, 3, 1).await;
    let app = app(moto, &name, "action = \"asg-unhealthy\"", "").await;
    let (status, summary) = app.remediate(json!({"target_group": name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert_eq!(
        summary["skipped"],
        json!([{"instance-id": lone[0], "reason": "not-in-auto-scaling-group"}])
    );
    assert_eq!(fleet.state(&lone[0]).await, InstanceStateName::Stopped);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_ip_target_group_stops_start_up_with_a_clear_error() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let ip_group = unique("tgip");
    let vpc = fleet.ec2.describe_vpcs().send().await.unwrap().vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_owned();
    fleet
        .elbv2
        .create_target_group()
        .name(&ip_group)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    for (group, expected) in [
        ("no-such-group", "does not exist"),
        (ip_group.as_str(), "target type \"ip\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut text = config_text(
            &moto.endpoint,
            &dir.path().join("audit.db"),
            &[],
            PERMISSIVE,
        );
        text.push_str(&format!("\n[[targets]]\ntarget_group = \"{group}\"\n"));
        let config = reflex::config::parse(&text, std::iter::empty()).unwrap();
        let err = reflex::App::build(config).await.unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains(group) && message.contains(expected),
            "{message}"
        );
    }
}

#[tokio::test]
async fn cli_remediate_takes_a_target_group() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgcli");
    let (_, _, bad) = fleet.target_group_with(&name, 3, 1).await;
    let app = app(moto, &name, "", "").await;
    let output = reflex([
        "remediate",
        "--config",
        app.config_path.to_str().unwrap(),
        "--target-group",
        &name,
        "--dry-run",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(summary["target-group"], json!(name));
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    app.stop().await;
}

#[tokio::test]
async fn check_config_aws_looks_every_target_up() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgcheck");
    let lb = unique("lbcheck");
    fleet.target_group_with(&name, 2, 1).await;
    fleet.balancer_with(&lb, 1, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let check = |groups: &[&str]| {
        let mut text = config_text(&moto.endpoint, &dir.path().join("a.db"), &[&lb], "");
        for group in groups {
            text.push_str(&format!(
                "\n[[targets]]\ntarget_group = \"{group}\"\naction = \"auto\"\n"
            ));
        }
        let path = dir.path().join("reflex.toml");
        std::fs::write(&path, text).unwrap();
        reflex(["check-config", "--aws", "--config", path.to_str().unwrap()])
    };
    let output = check(&[&name]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "target group {name:?} (arn:aws:elasticloadbalancing:us-east-1:"
        )) && stdout.contains("3 instances registered, 2 in service; ladder replace (action auto)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("load balancer {lb:?}: 1 instances registered")),
        "{stdout}"
    );
    assert!(
        !dir.path().join("a.db").exists(),
        "check-config writes nothing"
    );

    let output = check(&["missing-group"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"missing-group\"") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_alert_group_naming_one_target_three_ways_is_one_run() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgways");
    let (group, good, bad) = fleet.target_group_with(&name, 3, 1).await;
    let hook = format!("[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n");
    let app = app(moto, &name, "", &hook).await;
    let alert = |n: usize, value: &str| {
        json!({"status": "firing", "labels": {"alertname": "Unhealthy", "target_group": value},
               "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://p", "fingerprint": format!("f{n}")})
    };
    let body = json!({
        "version": "4", "groupKey": unique("ways"), "status": "firing", "receiver": "reflex",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [alert(1, &name), alert(2, &group.arn), alert(3, &group.dimension)]
    });
    let (status, answer) = app
        .post("/alertmanager", Some(AM_TOKEN), body.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "one run for one target: {answer}");
    assert_eq!(results[0]["terminated-instance-ids"], json!(bad));
    assert!(fleet.none_terminated(&good).await);
    let runs = app
        .audit_records()
        .await
        .into_iter()
        .filter(|record| record.target.is_some())
        .count();
    assert_eq!(runs, 1, "one run recorded");
    app.stop().await;
}
