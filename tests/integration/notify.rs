//! Notifications are durable jobs: one queued when its process is killed with `kill -9` before it could be
//! sent is delivered by the restarted process, once, and its delivery is audited once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::process::{ReflexProcess, reflex, remediate_at};
use crate::common::{Fleet, Moto, config_text, unique};

/// What the local receiver keeps: how many requests it got, and their bodies.
type Received = (Arc<AtomicUsize>, Arc<tokio::sync::Mutex<Vec<Value>>>);

#[tokio::test]
async fn a_notification_queued_before_kill_minus_nine_is_delivered_once_by_the_restarted_process() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("durable-notify");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    // The receiver's port is chosen now, but nothing listens on it until the first process is dead: nothing
    // can be delivered before the kill.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\n",
    ) + &format!(
        "\n[[notify]]\nurl = \"http://127.0.0.1:{port}/hook\"\nformat = \"json\"\nevents = [\"acted\"]\n"
    );
    let client = reqwest::Client::new();
    let mut first = ReflexProcess::start(dir.path(), &text, &client).await;
    let (_, answer) = remediate_at(&client, &first.base, &lb).await;
    assert_eq!(answer["terminated-instance-ids"], json!(bad));
    first.child.kill().unwrap(); // SIGKILL: the notification is still queued in the store
    let _ = first.child.wait();

    let received = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    async fn hook(State((count, bodies)): State<Received>, body: axum::body::Bytes) -> StatusCode {
        count.fetch_add(1, Ordering::SeqCst);
        bodies
            .lock()
            .await
            .push(serde_json::from_slice(&body).unwrap());
        StatusCode::OK
    }
    let router = Router::new()
        .route("/hook", post(hook))
        .with_state((Arc::clone(&received), Arc::clone(&bodies)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let second = ReflexProcess::start(dir.path(), &text, &client).await;
    // A claim of the dead process is taken over once its heartbeat is 15 s old.
    let deadline = Instant::now() + Duration::from_secs(40);
    while received.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the queued notification was never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second delivery, if one were coming.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received.load(Ordering::SeqCst), 1, "delivered once");
    let event = bodies.lock().await[0].clone();
    assert_eq!(event["event"], "acted");
    assert_eq!(event["audit_id"], answer["audit-id"]);
    drop(second);
    let out = reflex([
        "audit",
        "list",
        "--config",
        dir.path().join("reflex.toml").to_str().unwrap(),
        "--json",
    ]);
    let listed = String::from_utf8_lossy(&out.stdout);
    let deliveries: Vec<Value> = listed
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["source"] == "notify")
        .collect();
    assert_eq!(deliveries.len(), 1, "audited once: {listed}");
    assert_eq!(deliveries[0]["outcome"], "completed");
}
