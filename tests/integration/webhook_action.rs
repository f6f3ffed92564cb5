//! The `webhook` action kind against a local receiver, with the fleet in moto: the call is signed as reflex's
//! receivers check Grafana, carries the run's facts and one idempotency key, is sent again by the step's check
//! after a 503 and delivered once; a 400 fails the step and the ladder moves on to a reboot. The URL's token is
//! in no record.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::{Fleet, Moto, TestApp, config_text, unique};

/// Quick checks, room to act, no grace period.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n\
                     reboot_verify_secs = 2\nmax_removed_fraction_per_hour = 1.0\n\
                     max_unhealthy_fraction = 0.9\n";
/// The signing secret, and the token the URL carries.
pub(crate) const SECRET: &str = "webhook-signing-secret-0123456789";
const TOKEN: &str = "T0KEN5ecret42";

/// One call the receiver got: its headers and body.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// What the receiver answers, in turn (the last one from then on), and the calls it got.
#[derive(Clone)]
pub(crate) struct Receiver {
    answers: Arc<Vec<u16>>,
    calls: Arc<tokio::sync::Mutex<Vec<Call>>>,
}

impl Receiver {
    /// A receiver on a loopback port of its own: it and the URL it listens at (with the token in its path).
    pub(crate) async fn start(answers: &[u16]) -> (Self, String) {
        async fn hook(
            State(receiver): State<Receiver>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let mut calls = receiver.calls.lock().await;
            let answer = receiver.answers[calls.len().min(receiver.answers.len() - 1)];
            calls.push(Call { headers, body });
            StatusCode::from_u16(answer).unwrap()
        }
        let receiver = Self {
            answers: Arc::new(answers.to_vec()),
            calls: Arc::default(),
        };
        let router = Router::new()
            .route(&format!("/hooks/{TOKEN}"), post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}/hooks/{TOKEN}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    pub(crate) async fn calls(&self) -> Vec<Call> {
        self.calls.lock().await.clone()
    }

    /// Waits up to 30 s for `count` calls.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Call> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let calls = self.calls().await;
            if calls.len() >= count {
                return calls;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {count} calls",
                calls.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The config of a target whose ladder calls the `call-ops` webhook entry, then reboots; the URL and the
/// secret are in files of `dir`.
fn config(moto: &Moto, dir: &std::path::Path, lb: &str, url: &str) -> String {
    std::fs::write(dir.join("hook-url"), format!("{url}\n")).unwrap();
    std::fs::write(dir.join("hook-secret"), SECRET).unwrap();
    config_text(&moto.endpoint, &dir.join("audit.db"), &[], QUICK)
        + &format!(
            r#"
[[targets]]
load_balancer = "{lb}"
ladder = ["call-ops", "reboot"]

[[actions]]
name = "call-ops"
kind = "webhook"
url_file = "{}"
secret_file = "{}"
body = '{{"text": "restart {{{{ target }}}}", "instances": {{{{ instances|tojson }}}}, "run": {{{{ run|tojson }}}}}}'
timeout_secs = 5
verify_secs = 1
"#,
            dir.join("hook-url").display(),
            dir.join("hook-secret").display()
        )
}

/// Checks a call's signature over its timestamp and body, and returns its idempotency key.
pub(crate) fn verified(call: &Call) -> String {
    let header = |name: &str| call.headers[name].to_str().unwrap().to_owned();
    let timestamp = header("x-reflex-timestamp");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    reflex::webhook::signature::verify(
        SECRET.as_bytes(),
        call.body.as_bytes(),
        &header("x-reflex-signature"),
        Some(&timestamp),
        now,
        300,
    )
    .expect("the signature verifies");
    assert_eq!(header("content-type"), "application/json");
    header("idempotency-key")
}

/// Every record's detail, as text.
async fn trail(app: &TestApp) -> String {
    let records = app.audit_records().await;
    records
        .iter()
        .map(|record| record.detail.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_signed_webhook_refused_with_503_is_sent_again_by_its_check_and_delivered_once() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("hook-again");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (receiver, url) = Receiver::start(&[503, 200]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(moto, dir.path(), &lb, &url);
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["audit-id"].as_str().unwrap().to_owned();
    let act = &run["actions"][0];
    assert_eq!(
        (&act["resource"], &act["action"]),
        (&json!(lb), &json!("post")),
        "{run}"
    );
    assert_eq!(act["state"], "pending", "the 503 is sent again: {run}");
    assert_eq!(act["covers"], json!(bad), "{run}");
    assert_eq!(run["webhooked-resources"], json!([lb]), "{run}");
    let key = format!("{run_id}/call-ops");
    assert_eq!(act["handle"], key.as_str());

    // The check sends it again: delivered, then the instance is still down, so the ladder reboots it.
    let check = app.check_of(&run_id).await;
    assert_eq!(
        check.detail["polled"][0]["state"], "delivered 200",
        "{:?}",
        check.detail
    );
    let calls = receiver.wait_for(2).await;
    assert_eq!(calls.len(), 2, "sent twice, delivered once");
    for call in &calls {
        assert_eq!(verified(call), key);
        let body: Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(
            body,
            json!({"text": format!("restart {lb}"), "instances": bad, "run": run_id})
        );
    }
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    let reboot = app
        .record_where("the reboot", |r| r.source.as_str() == "ladder")
        .await;
    assert_eq!(reboot.detail["answer"]["rebooted-instance-ids"], json!(bad));
    assert!(
        !trail(&app).await.contains(TOKEN),
        "the URL's token is in no record"
    );
}

#[tokio::test]
async fn a_webhook_no_one_answers_is_pending_and_names_no_token() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("hook-closed");
    fleet.balancer_with(&lb, 3, 1).await;
    // A port nothing listens on: the connection is refused, an error whose text would carry the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/{TOKEN}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let text = config(moto, dir.path(), &lb, &url);
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        run["actions"][0]["state"], "pending",
        "sent again by its check: {run}"
    );
    assert_eq!(run["errors"], json!([]), "{run}");
    assert!(!run.to_string().contains(TOKEN), "{run}");
    assert!(
        !trail(&app).await.contains(TOKEN),
        "the URL's token is in no record"
    );
}

#[tokio::test]
async fn a_webhook_that_answers_400_fails_the_step_and_the_ladder_moves_on() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("hook-refused");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (receiver, url) = Receiver::start(&[400]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(moto, dir.path(), &lb, &url);
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    let origin = url.trim_end_matches(&format!("/hooks/{TOKEN}")).to_owned();
    let error = run["actions"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("the webhook at {origin} answered 400")),
        "{run}"
    );
    assert!(!run.to_string().contains(TOKEN), "{run}");
    assert_eq!(receiver.calls().await.len(), 1);

    let run_id = run["audit-id"].as_str().unwrap();
    let check = app.check_of(run_id).await;
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    let reboot = app
        .record_where("the reboot", |r| r.source.as_str() == "ladder")
        .await;
    assert_eq!(reboot.detail["answer"]["rebooted-instance-ids"], json!(bad));
    assert_eq!(
        receiver.calls().await.len(),
        1,
        "a refused call is not sent again"
    );
    assert!(
        !trail(&app).await.contains(TOKEN),
        "the URL's token is in no record"
    );
}

#[tokio::test]
async fn a_rule_s_ladder_calls_the_webhook_once_for_the_instances_its_alerts_name() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("hook-rule");
    fleet.balancer_with(&lb, 1, 0).await;
    let hosts = fleet.launch(1, &[]).await;
    let (receiver, url) = Receiver::start(&[200]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook-secret"), SECRET).unwrap();
    let text = config_text(&moto.endpoint, &dir.path().join("audit.db"), &[&lb], QUICK)
        + &format!(
            r#"
[alertmanager]
tokens = ["{TOKEN}-alertmanager"]

[[rules]]
name = "service-down"
sources = ["alertmanager"]
match = {{ labels = {{ alertname = "ServiceDown" }} }}
ladder = ["call-ops"]

[[actions]]
name = "call-ops"
kind = "webhook"
url = "{url}"
secret_file = "{}"
"#,
            dir.path().join("hook-secret").display()
        );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let delivery = json!({
        "version": "4", "groupKey": "{}:{alertname=\"ServiceDown\"}", "status": "firing", "receiver": "reflex",
        "alerts": [{"status": "firing", "startsAt": "2026-12-07T10:00:00Z",
                    "labels": {"alertname": "ServiceDown", "instance": format!("{}:9100", hosts[0])}}],
    });
    let token = format!("{TOKEN}-alertmanager");
    let (status, body) = app
        .post("/alertmanager", Some(&token), delivery.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["results"][0];
    assert_eq!(result["rule"], "service-down", "{body}");
    assert_eq!(
        result["webhooked-resources"],
        json!(["service-down"]),
        "{body}"
    );
    let calls = receiver.wait_for(1).await;
    let run = result["audit-id"].as_str().unwrap();
    assert_eq!(verified(&calls[0]), format!("{run}/call-ops"));
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"run": run, "step": "call-ops", "target": "service-down", "instances": hosts})
    );
}
