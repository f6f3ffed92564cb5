//! Every gate applies to each kind that acts on a whole target through another AWS service or a webhook, in
//! one table run for `asg-set-capacity`, `ecs-redeploy`, `rds-reboot` and `webhook` alike: a target in observe
//! mode would act and writes nothing; one in approve mode is held, then acts once approved; one inside a
//! maintenance window is refused; one free to act is answered a dry run, is refused while paused and while
//! silenced, acts once, and is refused by its cooldown after. Writes are counted from moto's request log and the
//! webhook's receiver: a refused or held run makes none.

use serde_json::{Value, json};

use crate::asg_capacity::broken_group;
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, Moto, TestApp, config_text, unique};
use crate::ecs_rds::{database, services};
use crate::webhook_action::Receiver;

/// A long cooldown, no grace, room to act.
const SETTINGS: &str = "grace_period_secs = 0\ncooldown_secs = 3600\nverify_after_secs = 2\n\
                        reboot_verify_secs = 2\nmax_removed_fraction_per_hour = 1.0\n\
                        max_unhealthy_fraction = 0.9\n";
/// The approver's token.
const APPROVER: &str = "gates-approver-token-0123456789ab";
/// The targets of the table, by what holds them.
const GATES: [&str; 4] = ["observe", "approve", "window", "free"];

/// One kind under the table: its `[[actions]]` entry (named `heal`), the list its acts are answered in, and
/// where its writes are counted.
struct Kind {
    entry: String,
    list: &'static str,
    writes: Writes,
}

/// Where a kind's writes land.
enum Writes {
    /// moto, as this operation.
    Aws(&'static str),
    /// A webhook's receiver.
    Hook(Receiver),
}

/// The table's targets for `prefix`: a balancer for each gate.
fn targets(prefix: &str) -> [String; 4] {
    GATES.map(|gate| format!("{prefix}-{gate}"))
}

/// reflex with the table's targets for `prefix`, each healed by `kind`'s entry alone.
async fn app(moto: &Moto, prefix: &str, kind: &Kind) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let [observe, approve, window, free] = targets(prefix);
    let text = config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], SETTINGS)
        + &format!(
            r#"
[[targets]]
load_balancer = "{observe}"
ladder = ["heal"]
mode = "observe"

[[targets]]
load_balancer = "{approve}"
ladder = ["heal"]
mode = "approve"

[[targets]]
load_balancer = "{window}"
ladder = ["heal"]

[[targets]]
load_balancer = "{free}"
ladder = ["heal"]

[[windows]]
name = "always"
targets = ["{window}"]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
duration = "1d"
time_zone = "UTC"

[approvals]
tokens = ["{APPROVER}"]

[[actions]]
name = "heal"
{entry}
{ADMIN}"#,
            entry = kind.entry
        );
    TestApp::spawn_with_config(dir, &text).await
}

/// How many writes `kind` has made since moto started recording.
async fn writes(moto: &Moto, kind: &Kind) -> usize {
    match &kind.writes {
        Writes::Aws(operation) => moto.recorded_writes_of(operation).await,
        Writes::Hook(receiver) => receiver.calls().await.len(),
    }
}

/// Asserts that `kind` has made `count` writes, and that moto saw no write but the kind's own.
async fn assert_writes(moto: &Moto, kind: &Kind, count: usize, after: &str) {
    assert_eq!(writes(moto, kind).await, count, "writes after {after}");
    let others: Vec<String> = moto
        .recorded_writes()
        .await
        .into_iter()
        .filter(|write| !matches!(kind.writes, Writes::Aws(operation) if operation == write))
        .filter(|write| !write.contains("Tag"))
        .collect();
    assert!(others.is_empty(), "{others:?} after {after}");
}

/// Asserts that a run on `target` is refused by `gate` and writes nothing.
async fn refused(app: &TestApp, target: &str, gate: &str) {
    let (status, answer) = app.remediate(json!({"load_balancer": target})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["refused-rule"], gate, "{answer}");
    assert_eq!(answer["actions"], json!([]), "{answer}");
}

/// An admin call on `app`.
async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap_or_default()
}

/// The table, for `kind` on the targets of `prefix`.
async fn gate_table(moto: &Moto, prefix: &str, kind: Kind) {
    let app = app(moto, prefix, &kind).await;
    let [observe, approve, window, free] = targets(prefix);
    moto.start_recording().await;

    let (_, observed) = app.remediate(json!({"load_balancer": observe})).await;
    assert_eq!(observed["mode"], "observe", "{observed}");
    assert_eq!(observed[kind.list], json!([observe]), "{observed}");
    assert_writes(moto, &kind, 0, "observe mode").await;

    refused(&app, &window, "maintenance-window").await;
    assert_writes(moto, &kind, 0, "a window").await;

    let (_, dry) = app
        .remediate(json!({"load_balancer": free, "dry_run": true}))
        .await;
    assert_eq!(dry["dry-run"], true, "{dry}");
    assert_eq!(dry[kind.list], json!([free]), "{dry}");
    assert_writes(moto, &kind, 0, "a dry run").await;

    let pause = json!({"target": free, "reason": "gate table"});
    admin(&app, reqwest::Method::POST, "/admin/pause", pause).await;
    refused(&app, &free, "paused").await;
    let resume = json!({"target": free, "reason": "over"});
    admin(&app, reqwest::Method::POST, "/admin/resume", resume).await;
    let silence = json!({"target": free, "for": "10m", "reason": "gate table"});
    let set = admin(&app, reqwest::Method::POST, "/admin/silences", silence).await;
    refused(&app, &free, "silenced").await;
    let lift = format!("/admin/silences/{}", set["silence"]["id"].as_str().unwrap());
    admin(&app, reqwest::Method::DELETE, &lift, json!({})).await;
    assert_writes(moto, &kind, 0, "a pause and a silence").await;

    let (_, held) = app.remediate(json!({"load_balancer": approve})).await;
    let id = held["approval"]["id"].as_str().expect("held for approval");
    assert_eq!(
        held["approval"]["would-replace"],
        json!([approve]),
        "{held}"
    );
    assert_writes(moto, &kind, 0, "approve mode").await;
    let path = format!("/admin/approvals/{id}/approve");
    let (status, voted) = app.post(&path, Some(APPROVER), "{}").await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(voted["summary"][kind.list], json!([approve]), "{voted}");
    assert_eq!(voted["summary"]["errors"], json!([]), "{voted}");
    assert_writes(moto, &kind, 1, "the approval").await;

    let (status, acted) = app.remediate(json!({"load_balancer": free})).await;
    assert_eq!(status, 200, "{acted}");
    assert_eq!(acted[kind.list], json!([free]), "{acted}");
    assert_eq!(acted["errors"], json!([]), "{acted}");
    assert_writes(moto, &kind, 2, "the free target's run").await;
    refused(&app, &free, "cooldown").await;
    assert_writes(moto, &kind, 2, "the cooldown").await;
}

#[tokio::test]
async fn every_gate_holds_asg_set_capacity() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let prefix = unique("gate-asg");
    for target in targets(&prefix) {
        broken_group(&fleet, &target).await;
    }
    let kind = Kind {
        entry: "kind = \"asg-set-capacity\"\nadd = 1\nmax_desired = 10\nverify_secs = 1\n".into(),
        list: "scaled-resources",
        writes: Writes::Aws("SetDesiredCapacity"),
    };
    gate_table(&moto, &prefix, kind).await;
}

#[tokio::test]
async fn every_gate_holds_ecs_redeploy() {
    let moto = Moto::start(&["MOTO_ECS_SERVICE_RUNNING=2"]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let prefix = unique("gate-ecs");
    for target in targets(&prefix) {
        fleet.balancer_with(&target, 2, 1).await;
    }
    let [observe, approve, window, free] = targets(&prefix);
    services(&fleet, &prefix, &[&approve, &free], 2).await;
    // Each service's deployment is more than a second old: past recent_change_secs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let kind = Kind {
        entry: format!(
            "kind = \"ecs-redeploy\"\ncluster = \"{prefix}\"\nrecent_change_secs = 1\nverify_secs = 1\n\
             services = {{ \"{observe}\" = \"{free}\", \"{approve}\" = \"{approve}\", \
             \"{window}\" = \"{free}\", \"{free}\" = \"{free}\" }}\n"
        ),
        list: "redeployed-resources",
        writes: Writes::Aws("UpdateService"),
    };
    gate_table(&moto, &prefix, kind).await;
}

#[tokio::test]
async fn every_gate_holds_rds_reboot() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let prefix = unique("gate-rds");
    for target in targets(&prefix) {
        fleet.balancer_with(&target, 2, 1).await;
    }
    database(&fleet, &prefix).await;
    let kind = Kind {
        entry: format!("kind = \"rds-reboot\"\ndb_instance = \"{prefix}\"\nverify_secs = 1\n"),
        list: "rebooted-databases",
        writes: Writes::Aws("RebootDBInstance"),
    };
    gate_table(&moto, &prefix, kind).await;
}

#[tokio::test]
async fn every_gate_holds_webhook() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let prefix = unique("gate-hook");
    for target in targets(&prefix) {
        fleet.balancer_with(&target, 2, 1).await;
    }
    let (receiver, url) = Receiver::start(&[200]).await;
    let keep = tempfile::tempdir().unwrap();
    let url_file = keep.path().join("hook-url");
    std::fs::write(&url_file, &url).unwrap();
    let secret_file = keep.path().join("hook-secret");
    std::fs::write(&secret_file, "gates-signing-secret-0123456789").unwrap();
    let kind = Kind {
        entry: format!(
            "kind = \"webhook\"\nurl_file = \"{}\"\nsecret_file = \"{}\"\n\
             body = '{{\"target\": {{{{ target|tojson }}}}}}'\nverify_secs = 1\n",
            url_file.display(),
            secret_file.display()
        ),
        list: "webhooked-resources",
        writes: Writes::Hook(receiver),
    };
    gate_table(&moto, &prefix, kind).await;
}
