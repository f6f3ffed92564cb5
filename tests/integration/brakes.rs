//! Runaway protection end to end against moto: budgets counted from the store across a restart and across
//! processes, the latching breaker (budget, AWS failures, a failed recovery check) and its reset by the CLI
//! and the admin API, the kill switch through the API with moto's own request log, checked recovery, an
//! alert storm from every source, and notifications to a local receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::alertmanager::AM_TOKEN;
use crate::common::process::{ReflexProcess, reflex, remediate_at};
use crate::common::slow_proxy::SlowProxy;
use crate::common::sns::TestSigner;
use crate::common::{
    ADMIN, ADMIN_TOKEN, AUDIT_TOKEN, Fleet, MANUAL_TOKEN, Moto, TestApp, config_text, unique,
};
use crate::sns::alarm;

/// POSTs `body` to an `/admin` route of `app` with `token`.
async fn admin(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.post(path, Some(token), body.to_string()).await
}

#[tokio::test]
async fn budgets_hold_across_processes_and_a_restart_and_the_breaker_stays_open_until_reset() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("budget");
    let (_, bad) = fleet.balancer_with(&lb, 6, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 0\nmax_terminations_per_run = 1\nmax_acted_per_hour = 2\n",
    ) + ADMIN;
    let client = reqwest::Client::new();
    let server_dir = tempfile::tempdir().unwrap();
    let mut server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    let config = server.config.clone();
    let config = config.to_str().unwrap();

    // One instance by the server, one by another process (the CLI) on the same store: the budget is spent.
    let (status, first) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(status, 200, "{first}");
    let cli = reflex(["remediate", "--config", config, "--load-balancer", &lb]);
    let second: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let mut spent: Vec<String> = [&first, &second]
        .iter()
        .map(|run| {
            let ids = run["terminated-instance-ids"].as_array().unwrap();
            assert_eq!(ids.len(), 1, "{run}");
            ids[0].as_str().unwrap().to_owned()
        })
        .collect();
    spent.sort();
    spent.dedup();
    assert_eq!(spent.len(), 2, "two different instances: {spent:?}");
    let last = bad.iter().find(|id| !spent.contains(id)).unwrap().clone();

    // After a restart the budget still counts both: the last broken instance is skipped and the breaker opens.
    server.signal("TERM");
    assert!(server.exit_within(Duration::from_secs(10)).await.success());
    let mut server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    let (_, third) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(third["terminated-instance-ids"], json!([]), "{third}");
    assert!(
        third["skipped"]
            .as_array()
            .unwrap()
            .contains(&json!({"instance-id": last, "reason": "budget"})),
        "{third}"
    );
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"reflex_breaker_trips_total{reason="budget"} 1"#),
        "{metrics}"
    );

    // Open across another restart: refused without reading the target, answered 200.
    server.signal("TERM");
    assert!(server.exit_within(Duration::from_secs(10)).await.success());
    let server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    let (status, refused) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(status, 200);
    assert_eq!(refused["refused-rule"], "breaker-open", "{refused}");
    assert!(
        refused["refused"]
            .as_str()
            .unwrap()
            .contains("max_acted_per_hour")
    );

    // The CLI shows it and resets it; the budget is still spent, so the next run opens it again.
    let status = reflex(["breaker", "status", "--config", config]);
    let state: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        state["breakers"][0]["open"]["reason"]
            .as_str()
            .unwrap()
            .contains("budget exhausted")
    );
    assert_eq!(state["budgets"][0]["left"]["target_hour"], 0);
    let reset = reflex([
        "breaker",
        "reset",
        "--config",
        config,
        "--target",
        &lb,
        "--reason",
        "fleet checked",
    ]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let again = reflex([
        "breaker", "reset", "--config", config, "--target", &lb, "--reason", "twice",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not open"));
    let (_, after) = remediate_at(&client, &server.base, &lb).await;
    assert!(
        after["skipped"]
            .as_array()
            .unwrap()
            .contains(&json!({"instance-id": last, "reason": "budget"})),
        "{after}"
    );
    assert!(
        fleet.none_terminated(&[last]).await,
        "the budget held throughout"
    );
}

#[tokio::test]
async fn consecutive_aws_failures_open_the_breaker_and_the_admin_api_resets_it() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("awsfail");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let relay = SlowProxy::start(&moto.endpoint, Duration::ZERO).await;
    let app = TestApp::spawn(
        &relay.endpoint,
        &[&lb],
        &format!("grace_period_secs = 0\ncooldown_secs = 0\nbreaker_after_failures = 2\n{ADMIN}"),
    )
    .await;
    relay.fail(true);
    for _ in 0..2 {
        let (status, answer) = app.remediate(json!({"load_balancer": lb})).await;
        assert!(status >= 500, "{status} {answer}");
    }
    relay.fail(false);
    let connections = relay.connections();
    let (status, refused) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200);
    assert_eq!(refused["refused-rule"], "breaker-open", "{refused}");
    assert_eq!(relay.connections(), connections, "no AWS call while open");
    let (_, state) = app.get("/admin/state", Some(ADMIN_TOKEN)).await;
    assert_eq!(state["breakers"][0]["target"], lb.as_str());
    assert_eq!(state["breakers"][0]["failures"], 2);

    // A wrong admin token, or the manual one, is 401 and audited; the breaker stays open.
    for token in ["wrong-token-0123456789", MANUAL_TOKEN] {
        let (status, answer) = admin(
            &app,
            "/admin/breaker/reset",
            token,
            json!({"target": lb, "reason": "x"}),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid-token"))
        );
    }
    let rejected = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.source.as_str() == "admin" && r.auth.as_str() == "invalid-token")
        .count();
    assert_eq!(rejected, 2);
    let (status, answer) = admin(
        &app,
        "/admin/breaker/reset",
        ADMIN_TOKEN,
        json!({"target": lb}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("reason-required"))
    );
    let (status, answer) = admin(
        &app,
        "/admin/breaker/reset",
        ADMIN_TOKEN,
        json!({"target": lb, "reason": "AWS is back"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = admin(
        &app,
        "/admin/breaker/reset",
        ADMIN_TOKEN,
        json!({"target": lb, "reason": "again"}),
    )
    .await;
    assert_eq!(status, 409);
    let (_, healed) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(healed["terminated-instance-ids"], json!(bad), "{healed}");
    let reset = app
        .audit_records()
        .await
        .into_iter()
        .find(|r| r.detail.get("breaker_reset").is_some() && r.outcome.as_str() == "completed")
        .unwrap();
    assert_eq!(reset.detail["breaker_reset"]["reason"], "AWS is back");
    assert!(
        app.get_text("/metrics")
            .await
            .contains(r#"reflex_breaker_trips_total{reason="aws-errors"} 1"#)
    );
}

#[tokio::test]
async fn pause_and_resume_through_the_admin_api_and_a_paused_target_makes_no_aws_call() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("apipause");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        &format!("grace_period_secs = 0\ncooldown_secs = 0\n{ADMIN}"),
    )
    .await;
    let (status, answer) = admin(
        &app,
        "/admin/pause",
        ADMIN_TOKEN,
        json!({"reason": "incident 7"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    moto.start_recording().await;
    for _ in 0..3 {
        let (status, answer) = app.remediate(json!({"load_balancer": lb})).await;
        assert_eq!(status, 200);
        assert_eq!(answer["refused-rule"], "paused", "{answer}");
        assert!(answer["refused"].as_str().unwrap().contains("incident 7"));
    }
    assert_eq!(
        moto.recorded_actions().await,
        Default::default(),
        "no AWS call at all"
    );
    let (_, state) = app.get("/admin/state", Some(ADMIN_TOKEN)).await;
    assert_eq!(state["pauses"][0]["target"], Value::Null);
    assert_eq!(state["pauses"][0]["reason"], "incident 7");
    let (status, _) = app.get("/admin/state", Some(AUDIT_TOKEN)).await;
    assert_eq!(status, 401, "the audit token is not an admin token");
    let (status, answer) = admin(
        &app,
        "/admin/pause",
        ADMIN_TOKEN,
        json!({"target": "nope", "reason": "x"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown-target"))
    );
    let (status, _) = admin(&app, "/admin/resume", ADMIN_TOKEN, json!({"target": lb})).await;
    assert_eq!(
        status, 409,
        "only everything is paused, not this target alone"
    );
    let (status, answer) = admin(
        &app,
        "/admin/resume",
        ADMIN_TOKEN,
        json!({"reason": "over"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, healed) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(healed["terminated-instance-ids"], json!(bad), "{healed}");
    let recorded = moto.recorded_actions().await;
    assert_eq!(recorded.get("TerminateInstances"), Some(&1), "{recorded:?}");
    let controls: Vec<_> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.source.as_str() == "admin")
        .map(|r| (r.outcome.as_str().to_owned(), r.error.clone()))
        .collect();
    assert_eq!(controls.len(), 5, "{controls:?}");
}

/// Waits up to 20 s for the recovery check of the run `run_id`; its record.
async fn recovery_of(app: &TestApp, run_id: &str) -> reflex::audit::AuditRecord {
    for _ in 0..200 {
        if let Some(record) = app.audit_records().await.into_iter().find(|r| {
            r.source.as_str() == "recovery-check" && r.detail["recovery"]["run"] == run_id
        }) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no recovery check of {run_id}");
}

#[tokio::test]
async fn a_replaced_instance_is_recovered_and_one_not_replaced_opens_the_breaker() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let replaced = unique("recovered");
    let lost = unique("lost");
    let (_, replaced_bad) = fleet.balancer_with(&replaced, 3, 1).await;
    let (_, lost_bad) = fleet.balancer_with(&lost, 3, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&replaced, &lost],
        &format!("grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 1\n{ADMIN}"),
    )
    .await;
    let (_, run) = app.remediate(json!({"load_balancer": replaced})).await;
    assert_eq!(run["terminated-instance-ids"], json!(replaced_bad));
    // What an Auto Scaling group would do: a new instance, InService on the balancer.
    let fresh = fleet.launch(1, &[]).await;
    fleet.register(&replaced, &fresh).await;
    let record = recovery_of(&app, run["audit-id"].as_str().unwrap()).await;
    assert_eq!(record.outcome.as_str(), "recovered", "{:?}", record.detail);
    assert_eq!(record.detail["in_service"], 4);

    let (_, run) = app.remediate(json!({"load_balancer": lost})).await;
    assert_eq!(run["terminated-instance-ids"], json!(lost_bad));
    let record = recovery_of(&app, run["audit-id"].as_str().unwrap()).await;
    assert_eq!(
        record.outcome.as_str(),
        "not-recovered",
        "{:?}",
        record.detail
    );
    assert_eq!(record.detail["breaker"]["tripped"], "escalated");
    let (_, refused) = app.remediate(json!({"load_balancer": lost})).await;
    assert_eq!(refused["refused-rule"], "breaker-open", "{refused}");
    // The other target's breaker is untouched.
    let (_, state) = app.get("/admin/state", Some(ADMIN_TOKEN)).await;
    let open: Vec<_> = state["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b.get("open").is_some())
        .map(|b| b["target"].clone())
        .collect();
    assert_eq!(open, [json!(lost)]);
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains(r#"reflex_recovery_checks_total{outcome="recovered"} 1"#));
    assert!(metrics.contains(r#"reflex_recovery_checks_total{outcome="not-recovered"} 1"#));
}

#[tokio::test]
async fn a_storm_of_10000_alerts_from_every_source_reads_the_balancer_once() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("storm");
    let (_, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let signer = TestSigner::new();
    let certs = tempfile::tempdir().unwrap();
    signer.pin_into(certs.path());
    let topic_arn = "arn:aws:sns:us-east-1:123456789012:storm";
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\n",
    )
    .replace("[server]\n", "[server]\nmax_in_flight = 1024\n")
        + &format!(
            "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncert_dir = \"{}\"\n\n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n",
            certs.path().display()
        );
    let app = Arc::new(TestApp::spawn_with_config(dir, &text).await);
    moto.start_recording().await;
    let alarm = alarm(&lb, "ALARM");
    let signer = Arc::new(signer);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (app, signer, next, alarm, lb) = (
                Arc::clone(&app),
                Arc::clone(&signer),
                Arc::clone(&next),
                alarm.clone(),
                lb.clone(),
            );
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= 10_000 {
                        return answers;
                    }
                    let (status, answer) = match n % 3 {
                        0 => app.post_sns(signer.notification(topic_arn, &alarm)).await,
                        1 => {
                            let body = json!({
                                "version": "4", "groupKey": format!("storm-{n}"), "status": "firing",
                                "receiver": "reflex", "groupLabels": {}, "commonLabels": {},
                                "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
                                "alerts": [{"status": "firing",
                                    "labels": {"alertname": "Unhealthy", "load_balancer": lb},
                                    "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
                                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p",
                                    "fingerprint": format!("f{n}")}]
                            });
                            let (status, answer) =
                                app.post("/alertmanager", Some(AM_TOKEN), body.to_string()).await;
                            (status, answer["results"][0].clone())
                        }
                        _ => app.remediate(json!({"load_balancer": lb})).await,
                    };
                    answers.push((n % 3, status, answer));
                }
            })
        })
        .collect();
    let mut terminated = Vec::new();
    let mut refused = 0;
    for worker in workers {
        for (source, status, answer) in worker.await.unwrap() {
            assert_eq!(status, 200, "source {source}: {answer}");
            if let Some(ids) = answer["terminated-instance-ids"].as_array() {
                terminated.extend(ids.iter().cloned());
            }
            if answer["refused-rule"] == "cooldown" {
                refused += 1;
            }
        }
    }
    assert_eq!(terminated, [json!(bad[0])], "one run acted");
    assert_eq!(
        refused, 9_999,
        "every other alert was answered from the store"
    );
    let recorded = moto.recorded_actions().await;
    assert_eq!(
        recorded.get("DescribeInstanceHealth"),
        Some(&1),
        "one describe per cooldown window: {recorded:?}"
    );
    assert_eq!(recorded.get("TerminateInstances"), Some(&1), "{recorded:?}");
}

/// A local webhook receiver: `/hook` answers 500 to its first request and 200 after, `/slow` answers 200
/// after 3 s; every body is kept.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    hook_calls: Arc<AtomicUsize>,
    slow_done: Arc<AtomicBool>,
}

impl Receiver {
    async fn start(self) -> String {
        async fn hook(State(r): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
            r.bodies
                .lock()
                .await
                .push(("hook".into(), serde_json::from_slice(&body).unwrap()));
            if r.hook_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        async fn slow(State(r): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
            tokio::time::sleep(Duration::from_secs(3)).await;
            r.bodies
                .lock()
                .await
                .push(("slow".into(), serde_json::from_slice(&body).unwrap()));
            r.slow_done.store(true, Ordering::SeqCst);
            StatusCode::OK
        }
        let router = Router::new()
            .route("/hook", post(hook))
            .route("/slow", post(slow))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        base
    }
}

#[tokio::test]
async fn notifications_reach_a_webhook_and_slack_with_retries_and_never_delay_an_answer() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("notify");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let receiver = Receiver::default();
    let base = receiver.clone().start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\n",
    )
    .replace(
        "[server]\n",
        "[server]\npublic_url = \"https://reflex.example.com/\"\n",
    ) + &format!(
        "\n[[notify]]\nurl = \"{base}/hook\"\nformat = \"json\"\nevents = [\"acted\", \"breaker-tripped\"]\n\
             \n[[notify]]\nurl = \"{base}/slow\"\nformat = \"slack\"\n"
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200);
    assert_eq!(run["terminated-instance-ids"], json!(bad));
    assert!(
        !receiver.slow_done.load(Ordering::SeqCst),
        "answered while the slow receiver still held its notification"
    );
    // A cooldown refusal is a standing state, not news: nobody is notified of it.
    let (_, cooling) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(cooling["refused-rule"], "cooldown");

    let audit_id = run["audit-id"].as_str().unwrap();
    let link = format!("https://reflex.example.com/audit/{audit_id}");
    for _ in 0..100 {
        if receiver.bodies.lock().await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = receiver.bodies.lock().await.clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    let hooks: Vec<_> = bodies.iter().filter(|(to, _)| to == "hook").collect();
    assert_eq!(hooks.len(), 2, "the 500 was retried");
    assert_eq!(hooks[0].1, hooks[1].1);
    let event = &hooks[1].1;
    assert_eq!(event["event"], "acted");
    assert_eq!(event["target"], lb.as_str());
    assert_eq!(
        (event["account"].as_str(), event["region"].as_str()),
        (Some("123456789012"), Some("us-east-1"))
    );
    assert_eq!(event["audit_id"], audit_id);
    assert_eq!(event["link"], link.as_str());
    assert!(event["text"].as_str().unwrap().contains(&bad[0]));
    let slack = &bodies.iter().find(|(to, _)| to == "slow").unwrap().1;
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("*reflex: acted*"), "{text}");
    assert!(
        text.contains(&format!("<{link}|audit {audit_id}>")),
        "{text}"
    );

    // Each delivery's result is in the audit trail and the metrics.
    let mut deliveries = Vec::new();
    for _ in 0..50 {
        deliveries = app
            .audit_records()
            .await
            .into_iter()
            .filter(|r| r.source.as_str() == "notify")
            .collect();
        if deliveries.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries.len(), 2);
    let retried = deliveries
        .iter()
        .find(|r| r.detail["notification"]["attempts"] == 2)
        .expect("the retried delivery");
    assert_eq!(retried.outcome.as_str(), "completed");
    assert_eq!(retried.detail["notification"]["status"], 200);
    assert_eq!(retried.detail["notification"]["about"], audit_id);
    assert!(
        app.get_text("/metrics")
            .await
            .contains(r#"reflex_notifications_total{outcome="delivered"} 2"#)
    );
}
