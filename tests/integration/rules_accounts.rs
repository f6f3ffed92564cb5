//! A rule in another account, against moto: its command is sent, and its run checked, in that account
//! through the role reflex assumes there; only alarms of its account and region are its, and only over a topic
//! bound to that account; its pause and budgets are kept in its place.

use serde_json::{Value, json};

use crate::accounts::{PROD, prod_account};
use crate::common::sns::{captured_delivery, topic};
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, Moto, TestApp, config_text, unique};

/// moto's account: the local one.
const LOCAL: &str = "123456789012";

/// The same disk response, in prod's eu-west-1 first, then where reflex runs.
const PLACED_RULES: &str = r#"
[[actions]]
name = "clean-tmp"
kind = "ssm-command"
document = "AWS-RunShellScript"
document_version = "1"
parameters = { commands = ["find /var/tmp -mtime +1 -delete"] }
timeout_secs = 60
verify_secs = 2

[[rules]]
name = "disk-prod"
sources = ["sns", "manual"]
account = "prod"
region = "eu-west-1"
match = { namespace = "CWAgent", metric = "disk_used_percent" }
ladder = ["clean-tmp"]
cooldown_secs = 0

[[rules]]
name = "disk-local"
sources = ["sns"]
match = { namespace = "CWAgent", metric = "disk_used_percent" }
ladder = ["clean-tmp"]
cooldown_secs = 0
"#;

/// The agent's disk alarm on `instance`, in `account` and `region` (its `AlarmArn` says where).
fn disk_alarm_in(instance: &str, account: &str, region: &str) -> String {
    let name = format!("disk-used-{instance}");
    json!({
        "AlarmName": name,
        "AWSAccountId": account,
        "AlarmArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}"),
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [95.5 (07/12/26 10:00:00)] was greater than the threshold (90.0).",
        "StateChangeTime": "2026-12-07T10:00:00.000+0000",
        "Trigger": {
            "MetricName": "disk_used_percent",
            "Namespace": "CWAgent",
            "Dimensions": [{"name": "InstanceId", "value": instance}, {"name": "path", "value": "/"}],
            "Threshold": 90.0
        }
    })
    .to_string()
}

/// The app, the local and prod fleets, the central topic prod's entry lists and another topic it does not.
struct Placed {
    app: TestApp,
    local: Fleet,
    prod: Fleet,
    central: String,
    other: String,
    _moto: Moto,
}

async fn placed() -> Placed {
    let moto = Moto::start(&[]);
    let local = Fleet::new(&moto.endpoint).await;
    let prod = Fleet::in_account(&moto.endpoint, PROD, "eu-west-1").await;
    let central = topic(&local, &unique("central")).await;
    let other = topic(&local, &unique("other")).await;
    let dir = tempfile::tempdir().unwrap();
    let quick = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n";
    let text = config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], quick)
        + &prod_account(
            "reflex-member",
            &format!("sns_topic_arns = [\"{central}\"]\n"),
        )
        + &format!(
            "\n[sns]\ntopic_arns = [\"{central}\", \"{other}\"]\ncertificates_from = \"endpoint\"\n{ADMIN}"
        )
        + PLACED_RULES;
    let app = TestApp::spawn_with_config(dir, &text).await;
    Placed {
        app,
        local,
        prod,
        central,
        other,
        _moto: moto,
    }
}

impl Placed {
    /// Delivers `message` over `topic_arn`, genuinely signed.
    async fn deliver(&self, topic_arn: &str, message: &str) -> (u16, Value) {
        let delivery = captured_delivery(&self.local, topic_arn, message).await;
        self.app.post_sns(delivery).await
    }

    /// The instances of the commands sent in `fleet`'s account (ListCommands there).
    async fn commanded(fleet: &Fleet) -> Vec<String> {
        let listed = aws_sdk_ssm::Client::new(&fleet.sdk)
            .list_commands()
            .send()
            .await
            .unwrap();
        listed
            .commands()
            .iter()
            .flat_map(|command| command.instance_ids().iter().cloned())
            .collect()
    }
}

#[tokio::test]
async fn a_rule_in_another_account_acts_and_is_checked_there_on_its_own_accounts_alarms_only() {
    let placed = placed().await;
    let here = placed.local.launch(1, &[]).await;
    let there = placed.prod.launch(1, &[]).await;

    // The local alarm is not prod's rule's: the local rule runs, where reflex runs.
    let (status, run) = placed
        .deliver(
            &placed.central,
            &disk_alarm_in(&here[0], LOCAL, "us-east-1"),
        )
        .await;
    assert_eq!(
        (status, run["rule"].as_str()),
        (200, Some("disk-local")),
        "{run}"
    );
    assert_eq!(Placed::commanded(&placed.local).await, here);
    assert!(Placed::commanded(&placed.prod).await.is_empty());

    // Prod's alarm runs prod's rule, through prod's role: sent and checked in prod.
    let (status, run) = placed
        .deliver(
            &placed.central,
            &disk_alarm_in(&there[0], PROD, "eu-west-1"),
        )
        .await;
    assert_eq!(
        (status, run["rule"].as_str()),
        (200, Some("disk-prod")),
        "{run}"
    );
    assert_eq!(run["account"], PROD, "{run}");
    assert_eq!(run["region"], "eu-west-1", "{run}");
    assert_eq!(run["commanded-instance-ids"], json!(there), "{run}");
    assert_eq!(Placed::commanded(&placed.prod).await, there);
    assert_eq!(
        Placed::commanded(&placed.local).await,
        here,
        "nothing more sent here"
    );
    let run_id = run["audit-id"].as_str().unwrap();
    let check = placed.app.check_of(run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.account.as_deref(), Some(PROD));

    refused_elsewhere(&placed, &there[0]).await;
    kept_in_its_place(&placed, &there[0]).await;
    assert_eq!(
        Placed::commanded(&placed.prod).await,
        there,
        "nothing sent again"
    );
}

/// Prod's alarm in a region its rule does not act in matches no rule; over a topic not bound to prod it is
/// refused; neither sends anything.
async fn refused_elsewhere(placed: &Placed, there: &str) {
    let (status, body) = placed
        .deliver(&placed.central, &disk_alarm_in(there, PROD, "us-east-1"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("no-rule-matched")),
        "{body}"
    );
    let (status, body) = placed
        .deliver(&placed.other, &disk_alarm_in(there, PROD, "eu-west-1"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unusable-alert")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("names account"),
        "{body}"
    );
}

/// The rule's pause, its budgets and a manual request are in prod's eu-west-1; naming another place for it
/// finds no rule.
async fn kept_in_its_place(placed: &Placed, there: &str) {
    let admin = |path: &'static str, body: Value| async move {
        placed
            .app
            .post(path, Some(ADMIN_TOKEN), body.to_string())
            .await
    };
    let (status, body) = admin(
        "/admin/pause",
        json!({"rule": "disk-prod", "account": "local", "reason": "wrong place"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown-rule")),
        "{body}"
    );
    let (status, body) = admin(
        "/admin/pause",
        json!({"rule": "disk-prod", "reason": "resizing"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = placed.app.get("/admin/state", Some(ADMIN_TOKEN)).await;
    let pause = &state["pauses"][0];
    assert_eq!(
        (pause["target"].as_str(), pause["account"].as_str()),
        (Some("disk-prod"), Some(PROD)),
        "{state}"
    );
    let budget = state["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|budget| budget["target"] == "disk-prod")
        .unwrap();
    assert_eq!(
        (
            budget["kind"].as_str(),
            budget["account"].as_str(),
            budget["region"].as_str()
        ),
        (Some("rule"), Some(PROD), Some("eu-west-1")),
        "{state}"
    );
    let (status, run) = placed
        .app
        .remediate(json!({"rule": "disk-prod", "instance_id": there, "account": "prod"}))
        .await;
    assert_eq!(
        (status, run["refused-rule"].as_str()),
        (200, Some("paused")),
        "{run}"
    );
    let (status, run) = placed
        .app
        .remediate(json!({"rule": "disk-prod", "instance_id": there, "region": "us-east-1"}))
        .await;
    assert_eq!(
        (status, run["error"].as_str()),
        (404, Some("unknown-rule")),
        "{run}"
    );
    // A label of that name is a label, not the request's place.
    let body =
        json!({"rule": "disk-prod", "instance_id": there, "labels": {"region": "us-east-1"}});
    let (status, run) = placed.app.remediate(body).await;
    assert_eq!(
        (status, run["refused-rule"].as_str()),
        (200, Some("paused")),
        "{run}"
    );
}
