//! `[[rules]]` checked at start-up (a bad `when` refuses the config, naming the rule and the position; so does
//! a ladder that is missing or takes the instance out of service) and tried on captured alerts with
//! `reflex rules test`. `rules_run.rs` runs them.

use serde_json::{Value, json};

use crate::common::process::reflex;
use crate::common::{PERMISSIVE, config_text, unique};

const RULES: &str = r#"
[[rules]]
name = "disk-full"
sources = ["sns"]
match = { namespace = "CWAgent", metric = "disk_used_percent" }
when = "alert.value > 90.0 && alert.dimensions.path == '/'"
ladder = ["reboot"]

[[rules]]
name = "kafka-down"
match = { labels = { job = "kafka" } }
when = "alert.labels.instance.startsWith('i-')"
ladder = ["reboot"]
"#;

/// A config for one target with `rules`, written in `dir`; its path.
fn config_with(dir: &std::path::Path, rules: &str) -> std::path::PathBuf {
    let text = config_text(
        "http://127.0.0.1:9",
        &dir.join("audit.db"),
        &[&unique("rules")],
        PERMISSIVE,
    ) + rules;
    let path = dir.join("reflex.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn rules_test_shows_each_rule_on_a_cloudwatch_agent_alarm_and_a_prometheus_alert() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), RULES);
    let alarm = json!({
        "AlarmName": "disk-used-web-1",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [97.5 (06/12/26 10:00:00)] was greater than the threshold (90.0).",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:disk-used-web-1",
        "Trigger": {"Namespace": "CWAgent", "MetricName": "disk_used_percent", "Threshold": 90.0,
                    "Dimensions": [{"name": "InstanceId", "value": "i-0abc"}, {"name": "path", "value": "/"}]}
    });
    let delivery = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
                          "Message": alarm.to_string()});
    let alert_file = dir.path().join("alarm.json");
    std::fs::write(&alert_file, delivery.to_string()).unwrap();
    let args = |file: &std::path::Path| {
        [
            "rules".to_owned(),
            "test".into(),
            "--config".into(),
            config.display().to_string(),
            "--alert".into(),
            file.display().to_string(),
            "--json".into(),
        ]
    };
    let out = reflex(args(&alert_file));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tested: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tested[0]["rule"], "disk-full");

    let payload = json!({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "KafkaBrokerDown", "job": "kafka", "instance": "i-0def"}},
        {"status": "firing", "labels": {"alertname": "KafkaBrokerDown", "job": "kafka", "instance": "broker-3:9092"}}
    ]});
    let alert_file = dir.path().join("kafka.json");
    std::fs::write(&alert_file, payload.to_string()).unwrap();
    let out = reflex(args(&alert_file));
    let tested: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tested[0]["rule"], "kafka-down");
    assert_eq!(tested[1]["rule"], Value::Null);
    let failed = tested[1]["verdicts"][1]["failed"].as_str().unwrap();
    assert!(
        failed.contains("startsWith") && failed.contains("false"),
        "{failed}"
    );
}

#[tokio::test]
async fn a_bad_rule_or_ladder_refuses_the_config_naming_the_rule() {
    let refused = |rules: &str, expected: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let bad = config_with(dir.path(), rules);
        let out = reflex(["check-config", "--config", bad.to_str().unwrap()]);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        for part in expected {
            assert!(said.contains(part), "{part:?} not in {said}");
        }
    };
    refused(
        "[[rules]]\nname = \"typo\"\nwhen = \"alert.nmae == 'disk'\"\nladder = [\"reboot\"]\n",
        &["rule \"typo\"", "alert.nmae at 1:"],
    );
    refused(
        "[[rules]]\nname = \"idle\"\n",
        &["rule \"idle\"", "`rules.ladder` is empty"],
    );
    refused(
        "[[rules]]\nname = \"swap\"\nladder = [\"reboot\", \"replace\"]\n",
        &[
            "rule \"swap\"",
            "\"replace\", which takes the instance out of service",
        ],
    );
    refused(
        "[[rules]]\nname = \"where\"\ninstances = \"tag:role\"\nladder = [\"reboot\"]\n",
        &["rule \"where\"", "instances", "tag:KEY=VALUE"],
    );
    refused(
        "[[rules]]\nname = \"db\"\ninstances = \"none\"\nverify = \"alarm-ok\"\nladder = [\"reboot\"]\n",
        &["rule \"db\"", "\"reboot\", which acts on an instance"],
    );
    refused(
        "[[targets]]\nload_balancer = \"api-elb\"\nladder = [\"redeploy\"]\n\n[[actions]]\nname = \"redeploy\"\n\
         kind = \"ecs-redeploy\"\ncluster = \"api\"\nservice_from = \"ServiceName\"\n",
        &[
            "target \"api-elb\"",
            "\"redeploy\", which acts on what the alert names (the alert names no ServiceName",
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let good = config_with(dir.path(), RULES);
    let out = reflex(["check-config", "--config", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 rule(s) compiled"));
}

#[tokio::test]
async fn a_suite_passes_when_every_alert_comes_to_its_rule_and_fails_the_command_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), RULES);
    let alarm = json!({
        "AlarmName": "disk-used-web-1", "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [97.5 (06/12/26 10:00:00)]",
        "Trigger": {"Namespace": "CWAgent", "MetricName": "disk_used_percent", "Threshold": 90.0,
                    "Dimensions": [{"name": "InstanceId", "value": "i-0abc"}, {"name": "path", "value": "/"}]}
    });
    std::fs::create_dir(dir.path().join("alerts")).unwrap();
    std::fs::write(dir.path().join("alerts/disk.json"), alarm.to_string()).unwrap();
    let kafka = json!({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "KafkaBrokerDown", "job": "kafka", "instance": "i-0def"}}
    ]});
    std::fs::write(dir.path().join("alerts/kafka.json"), kafka.to_string()).unwrap();
    let run = |cases: &str| {
        let suite = dir.path().join("suite.toml");
        std::fs::write(&suite, cases).unwrap();
        reflex([
            "rules",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--suite",
            suite.to_str().unwrap(),
        ])
    };
    let out = run(
        "[[cases]]\nalert = \"alerts/disk.json\"\nrule = \"disk-full\"\n\
         [[cases]]\nalert = \"alerts/kafka.json\"\nrule = \"kafka-down\"\n",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 of 2 alerts came to the expected rule"),
        "{said}"
    );

    let out = run(
        "[[cases]]\nalert = \"alerts/kafka.json\"\nsource = \"alertmanager\"\nrule = \"none\"\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "FAIL  alerts/kafka.json: \"KafkaBrokerDown\" came to \"kafka-down\", expected \"none\""
        ),
        "{said}"
    );
}
