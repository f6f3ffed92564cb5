//! Approve mode end to end against moto: an alert holds its decision (nothing written to AWS), approvers see
//! its evidence and approve it through the API, Slack's signed buttons or the command line, and the approval
//! decides again before it acts; rejections, expiries, the two-person rule and refused votes change nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, reflex, remediate_at};
use crate::common::sns::{Capture, alarm, captured_delivery, topic};
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, TestApp};
use crate::common::{config_text, sha256_hex, unique};

const APPROVER_A: &str = "approver-token-a-0123456789abcdef";
const APPROVER_B: &str = "approver-token-b-0123456789abcdef";
const SIGNING_SECRET: &str = "slack-signing-secret-0123456789abcdef";
const SLACK_APPROVER: &str = "U0APPROVER";

/// The `[approvals]` section: `required` approvers, `ttl_secs`, and two people: alice holds `APPROVER_A`
/// (and, given `alice_slack`, that Slack id), bob holds `APPROVER_B`.
fn approvers(required: u32, ttl_secs: u64, alice_slack: Option<&str>) -> String {
    let slack = alice_slack.map_or(String::new(), |user| format!("slack_user = \"{user}\"\n"));
    format!(
        "\n[approvals]\nrequired = {required}\nttl_secs = {ttl_secs}\n\
         [[approvals.approvers]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\n{slack}\
         [[approvals.approvers]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
        sha256_hex(APPROVER_A),
        sha256_hex(APPROVER_B)
    )
}

/// Two named approvers (see `approvers`).
fn approvals(required: u32, ttl_secs: u64) -> String {
    approvers(required, ttl_secs, None)
}

/// A config for `targets` in approve mode, with `extra` sections appended.
fn approve_config(endpoint: &str, db: &std::path::Path, targets: &[&str], extra: &str) -> String {
    let remediation = format!("{PERMISSIVE}mode = \"approve\"\n");
    config_text(endpoint, db, targets, &remediation) + extra
}

/// Starts reflex in approve mode for `targets`, with `extra` sections.
async fn app(moto: &Moto, targets: &[&str], extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let text = approve_config(&moto.endpoint, &dir.path().join("audit.db"), targets, extra);
    TestApp::spawn_with_config(dir, &text).await
}

/// A manual alert for `lb` that holds; the held answer.
async fn hold(app: &TestApp, lb: &str) -> Value {
    let (status, held) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{held}");
    assert!(held["approval"]["id"].is_string(), "{held}");
    held
}

/// `POST /admin/approvals/{id}/{vote}` with `token` and `body`.
async fn vote(app: &TestApp, id: &str, vote: &str, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/admin/approvals/{id}/{vote}");
    app.post(&path, Some(token), body.to_string()).await
}

/// Waits (up to 15 s) for a record of `outcome`; how many there are then.
async fn records_of(app: &TestApp, outcome: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let count = app
            .audit_records()
            .await
            .iter()
            .filter(|record| record.outcome.as_str() == outcome)
            .count();
        if count > 0 || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_sns_alarm_holds_and_an_api_approval_replaces_the_held_instance() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-api");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let slack = Capture::start().await;
    let extra = format!(
        "{}\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\
         \n[[notify]]\nurl = \"{}\"\nformat = \"slack\"\nevents = [\"held\"]\n",
        approvals(1, 900),
        slack.url
    );
    let app = app(&moto, &[&lb], &extra).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    moto.start_recording().await;

    // The alarm holds: 200 (SNS must not retry it), the plan, the approval; nothing written to AWS.
    let (status, held) = app.post_sns(delivery).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["mode"], "approve");
    assert_eq!(held["dry-run"], false);
    assert_eq!(held["approval"]["would-replace"], json!(bad));
    assert_eq!(
        held["terminated-instance-ids"],
        json!([]),
        "nothing was replaced"
    );
    let id = held["approval"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, held["audit-id"].as_str().unwrap());
    assert_eq!(held["approval"]["url"], format!("/ui/approvals/{id}"));
    assert!(held["approval"]["expires-at"].is_string());
    let recorded = moto.recorded_actions().await;
    assert!(!recorded.contains_key("TerminateInstances"), "{recorded:?}");
    assert!(fleet.none_terminated(&bad).await);
    let record = app.audit.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.source.as_str(), record.outcome.as_str()),
        ("sns", "held")
    );

    // What approvers see: the alert, each instance's health, the plan, budgets and the last runs.
    let (status, listed) = app.get("/admin/approvals", Some(APPROVER_A)).await;
    assert_eq!(status, 200, "{listed}");
    let pending = &listed["approvals"][0];
    assert_eq!(pending["id"], id.as_str());
    assert_eq!(pending["state"], "pending");
    let evidence = &pending["body"]["evidence"];
    assert_eq!(evidence["alert"]["source"], "sns");
    assert_eq!(
        evidence["alert"]["verified"]["topic_arn"],
        topic_arn.as_str()
    );
    let broken = evidence["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|instance| instance["instance-id"] == bad[0].as_str())
        .unwrap();
    assert_eq!(broken["health"], "OutOfService", "{broken}");
    assert_eq!(broken["ec2-state"], "stopped", "{broken}");
    assert_eq!(evidence["plan"]["terminate"], json!(bad));
    assert!(evidence["budget-left"].is_object(), "{evidence}");

    // Slack heard it, with the evidence and both buttons.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slack.bodies().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message: Value = serde_json::from_slice(&slack.bodies()[0]).unwrap();
    let text = message.to_string();
    assert!(text.contains(&bad[0]), "{text}");
    let buttons = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "actions")
        .map(|block| &block["elements"])
        .expect("the message has its buttons");
    assert_eq!(buttons[0]["action_id"], "approve", "{message}");
    assert_eq!(buttons[0]["value"], id.as_str());
    assert_eq!(buttons[1]["action_id"], "reject");

    // The wrong kind of token changes nothing, and is audited.
    let (status, refused) = vote(&app, &id, "approve", MANUAL_TOKEN, json!({})).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid-token"))
    );
    assert!(fleet.none_terminated(&bad).await);

    // The approval decides again and acts on the held instance; the name shown is the verified one, never
    // the one the request claims.
    let (status, voted) = vote(&app, &id, "approve", APPROVER_A, json!({"by": "mallory"})).await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(voted["approval"]["state"], "approved");
    assert_eq!(voted["approval"]["approvers"][0]["door"], "api");
    assert_eq!(voted["approval"]["approvers"][0]["name"], "alice");
    assert_eq!(voted["approval"]["approvers"][0]["who"], "person:alice");
    assert_eq!(voted["summary"]["terminated-instance-ids"], json!(bad));
    assert_eq!(
        voted["approval"]["resolution"]["run"],
        voted["summary"]["audit-id"]
    );
    assert!(!fleet.none_terminated(&bad).await);
    assert!(fleet.none_terminated(&good).await);

    // A second approval of the same decision changes nothing and says why.
    let (status, again) = vote(&app, &id, "approve", APPROVER_B, json!({})).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("approval-closed"))
    );

    let records = app.audit_records().await;
    let acted = records
        .iter()
        .find(|r| r.source.as_str() == "approval" && r.acted == 1)
        .expect("the approval's run is recorded");
    assert_eq!(acted.outcome.as_str(), "completed");
    assert_eq!(acted.detail["approval"]["id"], id.as_str());
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.source.as_str() == "approval" && r.outcome.as_str() == "rejected")
        .map(|r| r.error.clone().unwrap_or_default())
        .collect();
    assert_eq!(refused, ["approval-closed", "invalid-token"]);
    let approval = app.audit.approval(&id).await.unwrap().unwrap();
    assert_eq!(approval.resolution.unwrap()["run"], acted.id.as_str());
}

/// The form body of `user` pressing Approve on the held decision `id`, answered at `response_url`.
fn press_body(id: &str, user: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": "approve", "value": id}],
        "response_url": response_url,
    });
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// Sends a press's `body` to `/slack/interactions`, signed with `secret` at `at` (Unix seconds).
async fn send_press(app: &TestApp, body: &str, secret: &str, at: i64) -> (u16, Value) {
    let at = at.to_string();
    let signature = reflex::slack::sign(secret.as_bytes(), &at, body.as_bytes());
    let headers = [
        ("x-slack-request-timestamp", at),
        ("x-slack-signature", signature),
    ];
    app.post_with_headers("/slack/interactions", &headers, body.to_owned())
        .await
}

#[tokio::test]
async fn one_person_with_a_token_and_a_slack_id_counts_once_toward_two_approvers() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-person");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let slack = Capture::start().await;
    let extra = format!(
        "{}\n[slack]\nsigning_secret = \"{SIGNING_SECRET}\"\n",
        approvers(2, 900, Some(SLACK_APPROVER))
    );
    let app = app(moto, &[&lb], &extra).await;
    let id = hold(&app, &lb).await["approval"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, first) = vote(&app, &id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(status, 202, "{first}");
    // Alice again, through Slack: the press is accepted, and her vote is not counted twice.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = press_body(&id, SLACK_APPROVER, &slack.url);
    let (status, pressed) = send_press(&app, &body, SIGNING_SECRET, now).await;
    assert_eq!(status, 200, "{pressed}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let refused = app.audit_records().await.into_iter().any(|r| {
            r.source.as_str() == "slack" && r.error.as_deref() == Some("already-approved")
        });
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "alice's press was never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fleet.none_terminated(&bad).await,
        "one person is one approval"
    );
    let approval = app.audit.approval(&id).await.unwrap().unwrap();
    assert_eq!(approval.state.as_str(), "pending");
    assert_eq!(approval.approvers.len(), 1);

    // Bob is the second person: the decision acts.
    let (status, voted) = vote(&app, &id, "approve", APPROVER_B, json!({})).await;
    assert_eq!(status, 200, "{voted}");
    let names: Vec<&str> = voted["approval"]["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(voted["summary"]["terminated-instance-ids"], json!(bad));
}

#[tokio::test]
async fn a_signed_slack_button_approves_and_forged_stale_or_unlisted_presses_are_refused() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-slack");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let slack = Capture::start().await;
    let extra = format!(
        "{}\n[slack]\nsigning_secret = \"{SIGNING_SECRET}\"\napprovers = [\"{SLACK_APPROVER}\"]\n\
         \n[[notify]]\nurl = \"{}\"\nformat = \"slack\"\nevents = [\"held\"]\n",
        approvals(1, 900),
        slack.url
    );
    let app = app(moto, &[&lb], &extra).await;
    let id = hold(&app, &lb).await["approval"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let press = |user: &str| press_body(&id, user, &slack.url);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let send = async |body: &str, secret: &str, at: i64| send_press(&app, body, secret, at).await;
    let forged = send(
        &press(SLACK_APPROVER),
        "another-secret-0123456789abcdef",
        now,
    )
    .await;
    assert_eq!(
        (forged.0, forged.1["error"].as_str()),
        (401, Some("bad-signature"))
    );
    let stale = send(&press(SLACK_APPROVER), SIGNING_SECRET, now - 600).await;
    assert_eq!(
        (stale.0, stale.1["error"].as_str()),
        (401, Some("stale-signature"))
    );
    let stranger = send(&press("U0STRANGER"), SIGNING_SECRET, now).await;
    assert_eq!(
        (stranger.0, stranger.1["error"].as_str()),
        (403, Some("not-an-approver"))
    );
    assert!(fleet.none_terminated(&bad).await, "no refused press acts");

    let (status, pressed) = send(&press(SLACK_APPROVER), SIGNING_SECRET, now).await;
    assert_eq!(status, 200, "{pressed}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while fleet.none_terminated(&bad).await {
        assert!(Instant::now() < deadline, "the approval never acted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The message is updated with the outcome.
    let deadline = Instant::now() + Duration::from_secs(10);
    let update = loop {
        let found = slack.bodies().iter().find_map(|body| {
            let body: Value = serde_json::from_slice(body).ok()?;
            (body["replace_original"] == true).then_some(body)
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "the message was never updated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = update["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("<@{SLACK_APPROVER}>: Approved: replaced")),
        "{text}"
    );
    assert!(text.contains(&bad[0]), "{text}");

    let records = app.audit_records().await;
    let mut slack_records: Vec<(String, Option<String>)> = records
        .iter()
        .filter(|r| r.source.as_str() == "slack")
        .map(|r| (r.outcome.as_str().to_owned(), r.error.clone()))
        .collect();
    slack_records.sort();
    assert_eq!(
        slack_records,
        [
            ("completed".to_owned(), None),
            ("rejected".to_owned(), Some("bad-signature".to_owned())),
            ("rejected".to_owned(), Some("not-an-approver".to_owned())),
            ("rejected".to_owned(), Some("stale-signature".to_owned())),
        ]
    );
}

#[tokio::test]
async fn an_approval_decides_again_sparing_a_recovered_instance_and_a_pause_blocks_it() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-recheck");
    let (_, bad) = fleet.balancer_with(&lb, 6, 2).await;
    let paused = unique("approve-paused");
    let (_, paused_bad) = fleet.balancer_with(&paused, 3, 1).await;
    let extra = approvals(1, 900) + ADMIN;
    let app = app(moto, &[&lb, &paused], &extra).await;

    let held = hold(&app, &lb).await;
    let mut planned: Vec<String> =
        serde_json::from_value(held["approval"]["would-replace"].clone()).unwrap();
    planned.sort();
    let mut bad = bad;
    bad.sort();
    assert_eq!(planned, bad);
    let id = held["approval"]["id"].as_str().unwrap();
    // One held instance recovers before the approval.
    fleet.start(&bad[..1]).await;
    let (status, voted) = vote(&app, id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(status, 200, "{voted}");
    let summary = &voted["summary"];
    assert_eq!(summary["terminated-instance-ids"], json!([bad[1]]));
    assert_eq!(
        summary["skipped"],
        json!([{"instance-id": bad[0], "reason": "no-longer-broken"}])
    );
    assert!(fleet.none_terminated(&bad[..1]).await);

    // A pause set after the hold blocks the approval.
    let held = hold(&app, &paused).await;
    let id = held["approval"]["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            "/admin/pause",
            Some(ADMIN_TOKEN),
            json!({"target": paused, "reason": "deploy"}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, voted) = vote(&app, id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(voted["summary"]["refused-rule"], "paused", "{voted}");
    assert!(fleet.none_terminated(&paused_bad).await);
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_an_approval_after_expiry_acts_on_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-expiry");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = app(moto, &[&lb], &approvals(1, 2)).await;

    let first = hold(&app, &lb).await;
    let id = first["approval"]["id"].as_str().unwrap();
    let (status, refused) = vote(&app, id, "reject", APPROVER_A, json!({})).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid-request"))
    );
    let reason = json!({"reason": "a deploy is draining it"});
    let (status, rejected) = vote(&app, id, "reject", APPROVER_A, reason).await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["approval"]["state"], "rejected");
    assert_eq!(records_of(&app, "declined").await, 1);
    // A reason longer than the trail keeps is refused, and changes nothing.
    let long = json!({"reason": "x".repeat(600)});
    let (status, refused) = vote(&app, id, "reject", APPROVER_A, long).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid-request")),
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 500"),
        "{refused}"
    );
    assert_eq!(records_of(&app, "declined").await, 1);
    let (status, late) = vote(&app, id, "approve", APPROVER_B, json!({})).await;
    assert_eq!(
        (status, late["error"].as_str()),
        (409, Some("approval-closed"))
    );

    let second = hold(&app, &lb).await;
    let id = second["approval"]["id"].as_str().unwrap();
    assert_eq!(records_of(&app, "expired").await, 1, "the expiry job fired");
    let (status, late) = vote(&app, id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(
        (status, late["error"].as_str()),
        (409, Some("approval-expired"))
    );
    assert!(fleet.none_terminated(&bad).await);
    let approval = app.audit.approval(id).await.unwrap().unwrap();
    assert_eq!(approval.state.as_str(), "expired");
}

#[tokio::test]
async fn two_approvers_are_needed_the_same_one_twice_counts_once_and_the_cli_can_be_the_second() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-two");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = app(moto, &[&lb], &approvals(2, 900)).await;
    let held = hold(&app, &lb).await;
    let id = held["approval"]["id"].as_str().unwrap();

    let (status, first) = vote(&app, id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["approval"]["state"], "pending");
    let (status, again) = vote(&app, id, "approve", APPROVER_A, json!({})).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("already-approved"))
    );
    assert!(fleet.none_terminated(&bad).await);

    let config = app.config_path.to_str().unwrap().to_owned();
    let listed = reflex(["approvals", "list", "--config", &config]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["approvers"].as_array().unwrap().len(), 1);
    // The command line counts an approver token as the API does: the same one again changes nothing.
    let token_file = app.config_path.with_file_name("approver-token");
    let vote = |token: &str| {
        std::fs::write(&token_file, token).unwrap();
        let file = token_file.to_str().unwrap();
        reflex([
            "approvals",
            "approve",
            "--config",
            &config,
            id,
            "--token-file",
            file,
        ])
    };
    let again = vote(APPROVER_A);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already approved"), "{said}");
    let stranger = vote(MANUAL_TOKEN);
    assert!(
        !stranger.status.success(),
        "a manual token is no approver's"
    );
    let out = vote(APPROVER_B);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let voted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(voted["approval"]["approvers"][1]["door"], "cli");
    assert_eq!(voted["approval"]["approvers"][1]["name"], "bob");
    assert_eq!(voted["summary"]["terminated-instance-ids"], json!(bad));
    assert!(!fleet.none_terminated(&bad).await);

    let out = reflex(["targets", "--config", &config, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ways: Value = serde_json::from_slice(&out.stdout).unwrap();
    let way = &ways[0];
    assert_eq!(way["mode"], "approve");
    assert_eq!(
        (&way["runs"], &way["held"], &way["approved"], &way["acted"]),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{way}"
    );
    let table = reflex(["targets", "--config", &config]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("WOULD-ACT"));
}

#[tokio::test]
async fn the_expiry_fires_once_after_the_holding_process_is_killed() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-restart");
    fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text = approve_config(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        &approvals(1, 3),
    );
    let client = reqwest::Client::new();
    let mut first = ReflexProcess::start(dir.path(), &text, &client).await;
    let (status, held) = remediate_at(&client, &first.base, &lb).await;
    assert_eq!(status, 200, "{held}");
    assert!(held["approval"]["id"].is_string(), "{held}");
    first.child.kill().unwrap();
    let _ = first.child.wait();

    let _second = ReflexProcess::start(dir.path(), &text, &client).await;
    let config = dir.path().join("reflex.toml");
    let expired = async || {
        let out = reflex([
            "audit",
            "list",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["outcome"] == "expired")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while expired().await == 0 {
        assert!(Instant::now() < deadline, "the expiry never fired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(expired().await, 1, "once");
}

#[tokio::test]
async fn the_expiry_fires_once_on_another_replica() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("approve-replica");
    fleet.balancer_with(&lb, 3, 1).await;
    let db = Postgres::fresh().await;
    let replica = async || {
        let dir = tempfile::tempdir().unwrap();
        let text = approve_config(
            &moto.endpoint,
            &dir.path().join("unused.db"),
            &[&lb],
            &approvals(1, 2),
        );
        TestApp::spawn_with_config(dir, &db.config(&text)).await
    };
    let holder = replica().await;
    let other = replica().await;
    let held = hold(&holder, &lb).await;
    let id = held["approval"]["id"].as_str().unwrap().to_owned();
    holder.stop().await;
    assert_eq!(records_of(&other, "expired").await, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(records_of(&other, "expired").await, 1, "once");
    let approval = other.audit.approval(&id).await.unwrap().unwrap();
    assert_eq!(approval.state.as_str(), "expired");
}
