//! `[[rules]]` served, against moto: a CloudWatch agent's disk alarm arriving through SNS runs its rule's
//! `ssm-command` on the alarm's instance only (not the configured balancer's remediation), followed to its end
//! and checked; an alert no rule takes that names no target is refused `no-rule-matched`; a rule's alert that
//! names no instance is refused `no-resource`; a rule is paused and silenced by name, and an instance on its
//! own (its runs skip it); a business metric's alarm is held for approvers, its instances found by tag; a rule
//! verified by its alert is checked by the alarm being OK again, or by the real Alertmanager sending the alert
//! resolved; `reflex remediate --rule` runs a rule, or is refused and audited as `POST /remediate` is.

use serde_json::{Value, json};

use crate::common::process::reflex;
use crate::common::sns::{captured_delivery, topic};
use crate::common::{ADMIN_TOKEN, Fleet, Moto, TestApp, config_text, sha256_hex, unique};

/// Alertmanager's bearer token.
const AM_TOKEN: &str = "alertmanager-token-0123456789abcdef";

/// The two approvers' tokens.
const APPROVER_A: &str = "approver-a-token-0123456789abcdef";
const APPROVER_B: &str = "approver-b-token-0123456789abcdef";

/// Room to act at once, quick checks.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n";

/// The cleanup entry and the rules under test: disk alarms of the agent run the cleanup on their instance;
/// the orders alarm runs it on the instances tagged role=checkout.
const RULES: &str = r#"
[[actions]]
name = "clean-tmp"
kind = "ssm-command"
document = "AWS-RunShellScript"
document_version = "1"
parameters = { commands = ["find /var/tmp -mtime +1 -delete", "echo {{ instance.id }}"] }
parameter_patterns = { commands = "(find /var/tmp -mtime \\+1 -delete|echo i-[0-9a-f]+)" }
timeout_secs = 60
verify_secs = 2

[[rules]]
name = "disk-full"
sources = ["sns"]
match = { namespace = "CWAgent", metric = "disk_used_percent" }
when = "alert.value > 90.0"
ladder = ["clean-tmp"]

[[rules]]
name = "memory-full"
sources = ["sns", "manual"]
match = { namespace = "CWAgent", metric = "mem_used_percent" }
ladder = ["clean-tmp"]
verify = "alarm-ok"
verify_within_secs = 5
cooldown_secs = 0

[[rules]]
name = "service-down"
sources = ["alertmanager"]
match = { labels = { alertname = "ServiceDown" } }
ladder = ["clean-tmp"]
cooldown_secs = 0
verify = "alarm-ok"
verify_within_secs = 10

[[rules]]
name = "orders-low"
sources = ["sns", "manual"]
match = { namespace = "Shop/OrdersPerMinute" }
instances = "tag:role=checkout"
ladder = ["clean-tmp"]
"#;

/// A CloudWatch alarm message as CloudWatch publishes it to SNS, on `namespace`/`metric` with `dimensions`.
pub(crate) fn alarm(name: &str, namespace: &str, metric: &str, dimensions: Value) -> String {
    json!({
        "AlarmName": name,
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [95.5 (07/12/26 10:00:00)] was greater than the threshold (90.0).",
        "StateChangeTime": "2026-12-07T10:00:00.000+0000",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": metric,
            "Namespace": namespace,
            "Statistic": "AVERAGE",
            "Dimensions": dimensions,
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 90.0
        }
    })
    .to_string()
}

/// The agent's disk alarm on `instance`.
fn disk_alarm(instance: &str) -> String {
    alarm(
        &format!("disk-used-{instance}"),
        "CWAgent",
        "disk_used_percent",
        json!([{"name": "InstanceId", "value": instance}, {"name": "path", "value": "/"}]),
    )
}

/// The agent's memory alarm on `instance`, made in moto (PutMetricAlarm) and set to ALARM: its name and the
/// message CloudWatch publishes.
async fn memory_alarm(fleet: &Fleet, instance: &str) -> (String, String) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
    let name = format!("mem-used-{instance}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&fleet.sdk);
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("CWAgent")
        .metric_name("mem_used_percent")
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(instance)
                .build(),
        )
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(90.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    set_alarm(fleet, &name, StateValue::Alarm).await;
    let message = alarm(
        &name,
        "CWAgent",
        "mem_used_percent",
        json!([{"name": "InstanceId", "value": instance}]),
    );
    (name, message)
}

/// Sets the moto alarm `name` to `state` (SetAlarmState).
pub(crate) async fn set_alarm(
    fleet: &Fleet,
    name: &str,
    state: aws_sdk_cloudwatch::types::StateValue,
) {
    aws_sdk_cloudwatch::Client::new(&fleet.sdk)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .unwrap();
}

/// reflex with one balancer target, the rules above and an SNS topic, on a moto of its own that records
/// what it is sent: the app, the fleet, the topic and the moto.
struct Setup {
    app: TestApp,
    fleet: Fleet,
    topic_arn: String,
    moto: Moto,
    lb: String,
}

async fn setup() -> Setup {
    let moto = Moto::start(&[]);
    moto.start_recording().await;
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("rules-web");
    fleet.balancer_with(&lb, 2, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&moto.endpoint, &dir.path().join("audit.db"), &[&lb], QUICK)
        + &format!(
            "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n\n[admin]\ntokens = [\"{ADMIN_TOKEN}\"]\n\
         \n[approvals]\nrequired = 2\n[[approvals.approvers]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\n\
         [[approvals.approvers]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(APPROVER_A),
            sha256_hex(APPROVER_B)
        )
        + RULES;
    let app = TestApp::spawn_with_config(dir, &text).await;
    Setup {
        app,
        fleet,
        topic_arn,
        moto,
        lb,
    }
}

impl Setup {
    /// Delivers `message` through SNS, genuinely signed.
    async fn deliver(&self, message: &str) -> (u16, Value) {
        let delivery = captured_delivery(&self.fleet, &self.topic_arn, message).await;
        self.app.post_sns(delivery).await
    }

    /// The SendCommand requests moto received.
    async fn sent(&self) -> Vec<Value> {
        self.moto.recorded_json("AmazonSSM.SendCommand").await
    }

    /// The EC2 and Auto Scaling writes moto received, by action.
    async fn writes(&self) -> Vec<String> {
        let actions = self.moto.recorded_actions().await;
        [
            "TerminateInstances",
            "RebootInstances",
            "StartInstances",
            "SetInstanceHealth",
        ]
        .into_iter()
        .filter(|action| actions.contains_key(*action))
        .map(str::to_owned)
        .collect()
    }
}

#[tokio::test]
async fn a_disk_alarm_runs_its_rules_command_on_its_instance_only_and_is_checked() {
    let setup = setup().await;
    let disk = setup.fleet.launch(2, &[("role", "web")]).await;

    let (status, run) = setup.deliver(&disk_alarm(&disk[0])).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["rule"], "disk-full", "{run}");
    assert_eq!(run["load-balancer"], "", "{run}");
    assert_eq!(run["elb-instance-ids"], json!([disk[0]]), "{run}");
    assert_eq!(run["commanded-instance-ids"], json!([disk[0]]), "{run}");
    assert_eq!(run["terminated-instance-ids"], json!([]), "{run}");
    let run_id = run["audit-id"].as_str().unwrap();

    let sent = setup.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["InstanceIds"], json!([disk[0]]));
    assert_eq!(sent[0]["Comment"], format!("reflex run {run_id}"));
    assert_eq!(
        sent[0]["Parameters"]["commands"],
        json!([
            "find /var/tmp -mtime +1 -delete",
            format!("echo {}", disk[0])
        ])
    );
    assert!(setup.writes().await.is_empty(), "the balancer is untouched");
    let record = setup.app.audit.get(run_id).await.unwrap().unwrap();
    assert_eq!(record.target.as_deref(), Some("disk-full"));

    // The command ends well and the instance runs: recovered.
    let check = setup.app.check_of(run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.detail["polled"][0]["state"], "Success");
}

#[tokio::test]
async fn an_alert_no_rule_takes_is_refused_and_one_naming_no_instance_has_nothing_to_act_on() {
    let setup = setup().await;

    // A CPU alarm no rule matches, naming no balancer: not the only target's, with rules configured.
    let cpu = alarm(
        "cpu-high",
        "AWS/EC2",
        "CPUUtilization",
        json!([{"name": "AutoScalingGroupName", "value": "web"}]),
    );
    let (status, body) = setup.deliver(&cpu).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "no-rule-matched", "{body}");
    let records = setup.app.audit_records().await;
    assert!(
        records
            .iter()
            .any(|r| r.status == 422 && r.error.as_deref() == Some("no-rule-matched")),
        "audited: {records:?}"
    );

    // The disk rule's alarm from another account: a rule acts only where reflex runs.
    let foreign = disk_alarm("i-0abc1234def567890").replace("123456789012", "999999999999");
    let (status, body) = setup.deliver(&foreign).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "no-rule-matched", "{body}");
    assert!(setup.sent().await.is_empty(), "nothing sent");

    // The disk rule's alarm names no instance (no InstanceId dimension): nothing to act on.
    let nameless = alarm(
        "disk-used-somewhere",
        "CWAgent",
        "disk_used_percent",
        json!([{"name": "path", "value": "/"}]),
    );
    let (status, body) = setup.deliver(&nameless).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "no-resource", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("names no instance"),
        "{body}"
    );

    // The balancer's own alarm still runs the balancer's remediation.
    let (status, run) = setup
        .deliver(&crate::common::sns::alarm(&setup.lb, "ALARM"))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["load-balancer"], setup.lb.as_str(), "{run}");
    assert_eq!(run.get("rule"), None, "{run}");
    assert!(setup.sent().await.is_empty(), "no command was sent");
}

#[tokio::test]
async fn a_rule_is_paused_and_silenced_by_name_with_no_aws_write() {
    let setup = setup().await;
    let disk = setup.fleet.launch(1, &[]).await;

    let out = crate::common::process::reflex([
        "pause",
        "--config",
        setup.app.config_path.to_str().unwrap(),
        "--rule",
        "disk-full",
        "--reason",
        "disk work",
    ]);
    assert!(out.status.success(), "{out:?}");
    let (status, run) = setup.deliver(&disk_alarm(&disk[0])).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["refused-rule"], "paused", "{run}");
    let out = crate::common::process::reflex([
        "resume",
        "--config",
        setup.app.config_path.to_str().unwrap(),
        "--rule",
        "disk-full",
    ]);
    assert!(out.status.success(), "{out:?}");

    let (status, body) = setup
        .app
        .post(
            "/admin/silences",
            Some(ADMIN_TOKEN),
            json!({"rule": "disk-full", "for": "10m", "reason": "resizing"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, run) = setup.deliver(&disk_alarm(&disk[0])).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["refused-rule"], "silenced", "{run}");
    assert!(setup.sent().await.is_empty(), "no command was sent");

    // No such rule: refused, naming it.
    let (status, body) = setup
        .app
        .post(
            "/admin/pause",
            Some(ADMIN_TOKEN),
            json!({"rule": "disk-ful", "reason": "typo"}).to_string(),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown-rule", "{body}");
    let (status, body) = setup
        .app
        .post(
            "/admin/breaker/reset",
            Some(ADMIN_TOKEN),
            json!({"rule": "disk-ful", "reason": "typo"}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown-rule")),
        "{body}"
    );
    // The rule's breaker by name: closed, so there is nothing to reset, and the command says so.
    let out = crate::common::process::reflex([
        "breaker",
        "reset",
        "--config",
        setup.app.config_path.to_str().unwrap(),
        "--rule",
        "disk-full",
        "--reason",
        "fixed",
    ]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not open"), "{stderr}");
}

#[tokio::test]
async fn an_instance_is_paused_and_silenced_on_its_own_and_runs_leave_it_alone_till_it_is_resumed()
{
    let setup = setup().await;
    let disk = setup.fleet.launch(2, &[]).await;
    let config = setup.app.config_path.to_str().unwrap();

    // Paused from a shell: the disk rule's run on it is not refused, it skips the instance.
    let out = reflex([
        "pause",
        "--config",
        config,
        "--instance",
        &disk[0],
        "--reason",
        "forensics",
    ]);
    assert!(out.status.success(), "{out:?}");
    let (status, run) = setup.deliver(&disk_alarm(&disk[0])).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["refused-rule"], Value::Null, "{run}");
    assert_eq!(run["commanded-instance-ids"], json!([]), "{run}");
    assert_eq!(
        run["skipped"],
        json!([{"instance-id": disk[0], "reason": "paused"}])
    );

    // Silenced through the admin API: shown as the instance's, and skipped the same way.
    let (status, body) = setup
        .app
        .post(
            "/admin/silences",
            Some(ADMIN_TOKEN),
            // In capitals, it names the same instance.
            json!({"instance": format!("i-{}", disk[1][2..].to_uppercase()), "for": "10m", "reason": "deploy"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["silence"]["target"],
        format!("instance/{}", disk[1]),
        "{body}"
    );
    let (_, run) = setup.deliver(&disk_alarm(&disk[1])).await;
    assert_eq!(run["skipped"][0]["reason"], "silenced", "{run}");
    assert!(setup.sent().await.is_empty(), "no command was sent");

    refused_instance_controls(&setup, &disk[0]).await;

    // Resumed, the rule acts on it again.
    let (status, body) = setup
        .app
        .post(
            "/admin/resume",
            Some(ADMIN_TOKEN),
            json!({"instance": disk[0]}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, run) = setup.deliver(&disk_alarm(&disk[0])).await;
    assert_eq!(run["commanded-instance-ids"], json!([disk[0]]), "{run}");
    assert_eq!(setup.sent().await.len(), 1);
}

/// Controls of an instance that are refused, each naming what failed, and changing nothing.
async fn refused_instance_controls(setup: &Setup, instance: &str) {
    for (request, status, code) in [
        (
            json!({"instance": "i-xyz", "reason": "r"}),
            400,
            "invalid-instance",
        ),
        (
            json!({"instance": instance, "region": "ap-south-1", "reason": "r"}),
            404,
            "unknown-place",
        ),
        (
            json!({"instance": instance, "rule": "disk-full", "reason": "r"}),
            400,
            "invalid-request",
        ),
    ] {
        let (got, body) = setup
            .app
            .post("/admin/pause", Some(ADMIN_TOKEN), request.to_string())
            .await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (status, body) = setup
        .app
        .post(
            "/admin/breaker/reset",
            Some(ADMIN_TOKEN),
            json!({"instance": instance, "reason": "r"}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "an instance has no breaker: {body}");
    let records = setup.app.audit_records().await;
    assert!(
        records
            .iter()
            .any(|r| r.status == 404 && r.error.as_deref() == Some("unknown-place")),
        "audited: {records:?}"
    );
}

#[tokio::test]
async fn a_business_metrics_alarm_is_held_for_approvers_with_its_tagged_instances() {
    let setup = setup().await;
    let checkout = setup.fleet.launch(2, &[("role", "checkout")]).await;
    setup.fleet.launch(1, &[("role", "web")]).await;

    let orders = alarm(
        "orders-per-minute-low",
        "Shop/OrdersPerMinute",
        "orders",
        json!([]),
    );
    let (status, run) = setup.deliver(&orders).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["rule"], "orders-low", "{run}");
    let mut planned: Vec<String> = run["approval"]["would-replace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    planned.sort();
    let mut expected = checkout.clone();
    expected.sort();
    assert_eq!(planned, expected, "{run}");
    assert!(run["approval"]["id"].is_string(), "held: {run}");
    assert!(
        setup.sent().await.is_empty(),
        "nothing sent before approval"
    );
    let record = setup
        .app
        .audit
        .get(run["audit-id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let shown = record.detail["business_metric"].as_str().unwrap();
    assert!(
        shown.contains("Shop/OrdersPerMinute orders (value 95.5, threshold 90)"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_rule_verified_by_its_alarm_recovers_once_the_alarm_is_ok_and_escalates_when_it_stays_in_alarm()
 {
    use aws_sdk_cloudwatch::types::StateValue;
    let setup = setup().await;
    let hosts = setup.fleet.launch(2, &[("role", "cache")]).await;
    let (fixed_alarm, fixed) = memory_alarm(&setup.fleet, &hosts[0]).await;
    let (_, stuck) = memory_alarm(&setup.fleet, &hosts[1]).await;

    let (status, fixed_run) = setup.deliver(&fixed).await;
    assert_eq!(status, 200, "{fixed_run}");
    assert_eq!(fixed_run["rule"], "memory-full", "{fixed_run}");
    let (status, stuck_run) = setup.deliver(&stuck).await;
    assert_eq!(status, 200, "{stuck_run}");
    let record = setup
        .app
        .audit
        .get(fixed_run["audit-id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.detail["alarm_check"]["name"], fixed_alarm.as_str());

    // The first alarm is OK again after the action; the second stays in ALARM past verify_within_secs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    set_alarm(&setup.fleet, &fixed_alarm, StateValue::Ok).await;
    let check = setup
        .app
        .check_of(fixed_run["audit-id"].as_str().unwrap())
        .await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(
        check.detail["alarm"]["state"]["value"], "OK",
        "{:?}",
        check.detail
    );
    let check = setup
        .app
        .check_of(stuck_run["audit-id"].as_str().unwrap())
        .await;
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    assert_eq!(
        check.detail["alarm"]["state"]["value"], "ALARM",
        "{:?}",
        check.detail
    );
    assert!(
        check.detail["escalated"].is_object() || check.detail.to_string().contains("escalat"),
        "{:?}",
        check.detail
    );
    let described = setup.moto.recorded_actions().await;
    assert!(described.contains_key("DescribeAlarms"), "{described:?}");
}

#[tokio::test]
async fn alertmanager_alerts_of_one_group_each_run_their_rule_and_a_new_alert_is_no_redelivery() {
    let setup = setup().await;
    let hosts = setup.fleet.launch(2, &[("role", "kafka")]).await;
    let delivery = |host: &str| {
        json!({
            "version": "4", "groupKey": "{}:{alertname=\"ServiceDown\"}", "status": "firing",
            "receiver": "reflex",
            "alerts": [{"status": "firing", "startsAt": "2026-12-07T10:00:00Z",
                        "labels": {"alertname": "ServiceDown", "job": "kafka", "instance": format!("{host}:9100")},
                        "annotations": {"summary": "kafka is down"}}],
        })
        .to_string()
    };
    for (n, host) in hosts.iter().enumerate() {
        let (status, body) = setup
            .app
            .post("/alertmanager", Some(AM_TOKEN), delivery(host))
            .await;
        assert_eq!(status, 200, "{body}");
        let result = &body["results"][0];
        assert_eq!(result["rule"], "service-down", "{body}");
        assert_eq!(result["commanded-instance-ids"], json!([host]), "{body}");
        assert_eq!(setup.sent().await.len(), n + 1, "one command per alert");
    }
    // The same delivery again is a redelivery: answered as before, nothing sent.
    let (status, _) = setup
        .app
        .post("/alertmanager", Some(AM_TOKEN), delivery(&hosts[0]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(setup.sent().await.len(), 2, "no second command");
}

/// An Alertmanager alert `ServiceDown` for kafka on `host`, resolved at `ends_at` when given.
fn service_down(host: &str, ends_at: Option<&str>) -> Value {
    let mut alert = json!({
        "labels": {"alertname": "ServiceDown", "job": "kafka", "instance": format!("{host}:9100")},
        "annotations": {"summary": format!("kafka is down on {host}")},
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at);
    }
    json!([alert])
}

#[tokio::test]
async fn a_service_down_alert_from_the_real_alertmanager_is_checked_by_its_resolution() {
    use crate::common::alertmanager::Alertmanager;
    let setup = setup().await;
    let hosts = setup.fleet.launch(2, &[("role", "kafka")]).await;
    let url = format!("{}/alertmanager", setup.app.base);
    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: reflex
  group_by: ['alertname', 'instance']
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: reflex
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization:
            credentials: {AM_TOKEN}
"#
    ))
    .await;

    for host in &hosts {
        am.post_alerts(service_down(host, None)).await;
    }
    let run_of = |host: &str| {
        let host = host.to_owned();
        move |r: &reflex::audit::AuditRecord| {
            r.target.as_deref() == Some("service-down")
                && r.outcome.as_str() == "completed"
                && r.acted > 0
                && r.detail.to_string().contains(&host)
        }
    };
    let fixed = setup
        .app
        .record_where("host 0's run", run_of(&hosts[0]))
        .await;
    let stuck = setup
        .app
        .record_where("host 1's run", run_of(&hosts[1]))
        .await;
    let sent = setup.sent().await;
    assert_eq!(sent.len(), 2, "one command per alert: {sent:?}");
    let watch = &fixed.detail["alarm_check"];
    assert_eq!(watch["alerts"].as_array().map(Vec::len), Some(1), "{watch}");

    // The service is back on host 0: Alertmanager sends its alert resolved; host 1's stays firing.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    am.post_alerts(service_down(&hosts[0], Some(&now))).await;
    let resolution = setup
        .app
        .record_where("the resolution", |r| {
            r.target.as_deref() == Some("service-down") && r.detail.get("resolved_alerts").is_some()
        })
        .await;
    assert_eq!(resolution.source.as_str(), "alertmanager");
    assert_eq!(resolution.detail["resolved_alerts"], watch["alerts"]);

    let check = setup.app.check_of(&fixed.id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.detail["alarm"]["state"]["value"], "resolved");
    let check = setup.app.check_of(&stuck.id).await;
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    assert_eq!(check.detail["alarm"]["state"]["value"], "firing");
    assert_eq!(setup.sent().await.len(), 2, "nothing sent again");
    assert!(setup.writes().await.is_empty(), "no EC2 write");
}

#[tokio::test]
async fn a_manual_request_runs_the_rule_it_names_or_matches_and_is_refused_otherwise() {
    let setup = setup().await;
    let hosts = setup.fleet.launch(1, &[("role", "cache")]).await;

    // A rule that does not list manual requests in its sources is no rule to one.
    let (status, body) = setup
        .app
        .remediate(json!({"rule": "disk-full", "instance_id": hosts[0], "reason": "disk"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown-rule")),
        "{body}"
    );
    // Naming no target and no rule, and matching none: refused, audited.
    let (status, body) = setup
        .app
        .remediate(json!({"labels": {"alertname": "Nothing"}, "reason": "why not"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("no-rule-matched")),
        "{body}"
    );
    // A rule and a target together: which runs is unclear.
    let (status, body) = setup
        .app
        .remediate(json!({"rule": "memory-full", "load_balancer": setup.lb}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid-request")),
        "{body}"
    );
    // An instance id that is none, or one for a rule that selects by tag.
    for body in [
        json!({"rule": "memory-full", "instance_id": "web-1"}),
        json!({"rule": "orders-low", "instance_id": hosts[0]}),
        json!({"load_balancer": setup.lb, "instance_id": hosts[0]}),
    ] {
        let (status, answer) = setup.app.remediate(body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid-request")),
            "{answer}"
        );
    }
    assert!(setup.sent().await.is_empty(), "nothing sent");
    let records = setup.app.audit_records().await;
    for code in ["unknown-rule", "no-rule-matched", "invalid-request"] {
        assert!(
            records
                .iter()
                .any(|r| r.error.as_deref() == Some(code) && r.source == "manual"),
            "{code} audited: {records:?}"
        );
    }

    // A rule that takes manual requests, on the instance the operator names.
    let (status, run) = setup
        .app
        .remediate(json!({"rule": "memory-full", "instance_id": hosts[0], "reason": "memory leak"}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["rule"], "memory-full", "{run}");
    assert_eq!(run["message"], "memory leak", "{run}");
    assert_eq!(run["commanded-instance-ids"], json!([hosts[0]]), "{run}");
    let sent = setup.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["InstanceIds"], json!([hosts[0]]));
}

#[tokio::test]
async fn reflex_remediate_runs_a_rule_and_is_refused_and_audited_as_the_api_is() {
    let setup = setup().await;
    let hosts = setup.fleet.launch(1, &[("role", "cache")]).await;
    let config = setup.app.config_path.to_str().unwrap().to_owned();
    let remediate = |args: &[&str]| {
        let mut all = vec!["remediate", "--config", config.as_str()];
        all.extend_from_slice(args);
        reflex(all)
    };

    // Refused as POST /remediate refuses, each audited with its code, nothing sent.
    for (args, code) in [
        (vec!["--rule", "disk-full"], "unknown-rule"),
        (
            vec!["--rule", "memory-full", "--instance-id", "web-1"],
            "invalid-request",
        ),
        (
            vec!["--rule", "orders-low", "--instance-id", hosts[0].as_str()],
            "invalid-request",
        ),
    ] {
        let output = remediate(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(code), "{args:?}: {stderr}");
    }
    // What only goes with a rule, without one: refused before the config is read.
    let output = remediate(&["--load-balancer", &setup.lb, "--instance-id", &hosts[0]]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rule"));
    let output = remediate(&["--rule", "memory-full", "--label", "no-equals-sign"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not KEY=VALUE"));
    assert!(setup.sent().await.is_empty(), "nothing sent");

    let output = remediate(&[
        "--rule",
        "memory-full",
        "--instance-id",
        &hosts[0],
        "--label",
        "team=cache",
        "--reason",
        "memory leak",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(run["rule"], "memory-full", "{run}");
    assert_eq!(run["message"], "memory leak", "{run}");
    assert_eq!(run["commanded-instance-ids"], json!([hosts[0]]), "{run}");
    let sent = setup.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["InstanceIds"], json!([hosts[0]]));

    let records = setup.app.audit_records().await;
    let cli: Vec<_> = records.iter().filter(|r| r.source == "cli").collect();
    for code in ["unknown-rule", "invalid-request"] {
        assert!(
            cli.iter().any(|r| r.error.as_deref() == Some(code)),
            "{code} audited: {cli:?}"
        );
    }
    let ran = cli.iter().find(|r| r.id == run["audit-id"]).unwrap();
    assert_eq!(ran.detail["rule"], "memory-full");
    assert_eq!(ran.detail["request"]["labels"]["team"], "cache");
}
