//! `POST /remediate` against moto: acting, dry-run, bad input, audit.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;

use crate::common::{
    AUDIT_TOKEN, Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, TestApp, config_text, unique,
};

#[tokio::test]
async fn terminates_the_unhealthy_instance_and_leaves_the_healthy_ones() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("web");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;

    let (status, summary) = app
        .remediate(json!({"load_balancer": lb, "reason": "pager says web is down"}))
        .await;

    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["message"], "pager says web is down");
    assert_eq!(summary["load-balancer"], lb.as_str());
    // The account is learned from STS (moto's is 123456789012), the region is aws.region.
    assert_eq!(summary["account"], "123456789012");
    assert_eq!(summary["region"], "us-east-1");
    assert_eq!(summary["elb-instance-ids"].as_array().unwrap().len(), 4);
    assert_eq!(summary["unhealthy-instance-ids"], json!(bad));
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(summary["skipped"], json!([]));
    assert_eq!(summary["refused"], json!(null));
    assert_eq!(summary["errors"], json!([]));
    assert_eq!(summary["dry-run"], false);
    assert_eq!(summary["duplicate"], false);
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    for id in &good {
        assert_eq!(fleet.state(id).await, InstanceStateName::Running);
    }

    let records = app.audit_records().await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.id, summary["audit-id"].as_str().unwrap());
    assert_eq!(
        (
            record.source.as_str(),
            record.outcome.as_str(),
            record.status
        ),
        ("manual", "completed", 200)
    );
    assert_eq!(record.auth, "passed");
    assert_eq!(
        (record.account.as_deref(), record.region.as_deref()),
        (Some("123456789012"), Some("us-east-1"))
    );
    assert_eq!(record.acted, 1);
    assert!(record.caller.as_deref().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(
        record.detail["seen"]["instances"].as_array().unwrap().len(),
        4
    );
    assert_eq!(
        record.detail["plan"]["act_on"],
        json!([{"instance-id": bad[0], "action": "terminate", "kind": "replace"}])
    );
    assert_eq!(record.detail["actions"][0]["action"], "terminate");
    assert_eq!(record.detail["actions"][0]["new_state"], "shutting-down");
    assert_eq!(record.detail["answer"], summary);
}

#[tokio::test]
async fn dry_run_plans_the_same_and_writes_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("dry");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;

    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (status, summary) = app
        .remediate(json!({"load_balancer": lb, "dry_run": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(summary["dry-run"], true);
    assert_eq!(summary["message"], "manual remediation");
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);

    // A dry_run in the config wins over a request that asks for real writes.
    let forced = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        &format!("{PERMISSIVE}dry_run = true\n"),
    )
    .await;
    let (status, summary) = forced
        .remediate(json!({"load_balancer": lb, "dry_run": false}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(summary["dry-run"], true);
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    assert!(fleet.none_terminated(&good).await);
    let record = &forced.audit_records().await[0];
    assert!(record.dry_run);
    assert_eq!(record.acted, 0);
}

#[tokio::test]
async fn bad_requests_are_precise_audited_and_write_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("bad");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let body = json!({"load_balancer": lb}).to_string();

    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, body.clone(), 401, "missing-credentials"),
        (
            Some("wrong-token-0123456789abcdef"),
            body.clone(),
            401,
            "invalid-token",
        ),
        (
            Some(MANUAL_TOKEN),
            "{not json".into(),
            400,
            "malformed-json",
        ),
        (
            Some(MANUAL_TOKEN),
            json!({"lb": lb}).to_string(),
            400,
            "invalid-request",
        ),
        (
            Some(MANUAL_TOKEN),
            json!({"load_balancer": lb, "dry_run": "yes"}).to_string(),
            400,
            "invalid-request",
        ),
        (
            Some(MANUAL_TOKEN),
            json!({"load_balancer": "not-a-target"}).to_string(),
            422,
            "unknown-load-balancer",
        ),
        (
            Some(MANUAL_TOKEN),
            json!({"load_balancer": lb, "reason": "x".repeat(5000)}).to_string(),
            413,
            "payload-too-large",
        ),
    ];
    for (token, body, want_status, want_code) in &cases {
        let (status, answer) = app.post("/remediate", *token, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap()),
            (*want_status, *want_code),
            "{answer}"
        );
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    assert_eq!(records.len(), cases.len(), "every rejection is audited");
    for (record, (_, _, status, code)) in records.iter().rev().zip(&cases) {
        assert_eq!(record.outcome, "rejected");
        assert_eq!(record.status, *status);
        assert_eq!(record.error.as_deref(), Some(*code));
        assert_eq!(record.acted, 0);
    }
    assert_eq!(records.last().unwrap().auth, "missing-credentials");
    assert_eq!(records[records.len() - 2].auth, "invalid-token");
    assert_eq!(records[0].auth, "passed");
}

#[tokio::test]
async fn a_balancer_listed_in_config_but_missing_in_aws_is_422() {
    let moto = Moto::shared();
    let lb = unique("ghost");
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (status, answer) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("unknown-load-balancer")),
        "{answer}"
    );
}

#[tokio::test]
async fn no_configured_token_means_nobody_gets_in() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = crate::common::config_text(
        &moto.endpoint,
        &dir.path().join("a.db"),
        &["web-elb"],
        PERMISSIVE,
    )
    .replace(&format!("tokens = [\"{MANUAL_TOKEN}\"]"), "tokens = []");
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, answer) = app.remediate(json!({"load_balancer": "web-elb"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("auth-not-configured"))
    );
}

#[tokio::test]
async fn aws_down_answers_503_quickly_and_is_audited() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    // AWS is down from the start: the account cannot be learned, so it is configured.
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &endpoint,
        &dir.path().join("audit.db"),
        &["web-elb"],
        PERMISSIVE,
    )
    .replace("[aws]\n", "[aws]\naccount_id = \"123456789012\"\n");
    let app = TestApp::spawn_with_config(dir, &text).await;
    let started = Instant::now();
    let (status, answer) = app.remediate(json!({"load_balancer": "web-elb"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("aws-unavailable")),
        "{answer}"
    );
    assert!(
        !answer["detail"].as_str().unwrap().contains("127.0.0.1"),
        "5xx details stay opaque"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by the configured AWS timeouts"
    );
    let records = app.audit_records().await;
    assert_eq!(
        (records[0].status, records[0].error.as_deref()),
        (503, Some("aws-unavailable"))
    );
    assert!(records[0].detail["error"].as_str().is_some());
}

#[tokio::test]
async fn the_audit_route_needs_its_own_token_and_lists_newest_first() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("aud");
    fleet.balancer_with(&lb, 2, 0).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    app.remediate(json!({"load_balancer": lb, "reason": "first"}))
        .await;
    app.remediate(json!({"load_balancer": lb, "reason": "second"}))
        .await;

    let (status, answer) = app.get("/audit?limit=2", Some(AUDIT_TOKEN)).await;
    assert_eq!(status, 200);
    let records = answer["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["detail"]["answer"]["message"], "second");
    assert_eq!(records[1]["detail"]["answer"]["message"], "first");
    assert_eq!(records[0]["source"], "manual");
    let (status, _) = app.get("/audit?limit=abc", Some(AUDIT_TOKEN)).await;
    assert_eq!(status, 400);
    let (status, answer) = app.get("/audit", Some(MANUAL_TOKEN)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid-token"))
    );
    // The refused read was recorded too.
    assert!(
        app.audit_records()
            .await
            .iter()
            .any(|r| r.source == "audit-read" && r.status == 401)
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let moto = Moto::shared();
    let app = TestApp::spawn(&moto.endpoint, &["web-elb"], PERMISSIVE).await;
    assert_eq!(
        app.get("/healthz", None).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/readyz", None).await,
        (200, json!({"status": "ready"}))
    );
    app.stop().await;
}

/// The value of the series whose line starts with `series` in a Prometheus text exposition (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_requests_runs_terminations_rejections_and_aws_calls() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("met");
    fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let before = app.get_text("/metrics").await;

    app.remediate(json!({"load_balancer": lb})).await;
    app.post("/remediate", None, "{}").await;
    app.get("/no-such-route", None).await;
    let after = app.get_text("/metrics").await;
    assert!(
        after.contains("# TYPE reflex_http_requests_total counter"),
        "classic text format by default: {after}"
    );
    let open_metrics = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        open_metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let open_metrics = open_metrics.text().await.unwrap();
    assert!(open_metrics.contains("# TYPE reflex_http_requests counter"));
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");

    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    assert_eq!(
        delta(r#"reflex_http_requests_total{route="/remediate",status="200"}"#),
        1,
        "{after}"
    );
    assert_eq!(
        delta(r#"reflex_http_requests_total{route="/remediate",status="401"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_http_requests_total{route="unmatched",status="404"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_rejections_total{source="manual",code="missing-credentials"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_remediation_runs_total{outcome="completed",dry_run="false"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_instances_terminated_total{dry_run="false"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_aws_call_duration_seconds_count{operation="DescribeInstanceHealth"}"#),
        1
    );
    assert_eq!(
        delta(r#"reflex_aws_call_duration_seconds_count{operation="TerminateInstances"}"#),
        1
    );
    assert!(after.contains("reflex_sns_certificate_cache_total{result=\"hit\"} 0"));
}

#[tokio::test]
async fn every_answer_carries_its_request_id_which_is_the_audit_id() {
    let moto = Moto::shared();
    let app = TestApp::spawn(&moto.endpoint, &["web-elb"], PERMISSIVE).await;
    let response = reqwest::Client::new()
        .post(format!("{}/remediate", app.base))
        .bearer_auth(MANUAL_TOKEN)
        .body(json!({"load_balancer": "not-a-target"}).to_string())
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.status(), 422);
    assert_eq!(app.audit_records().await[0].id, request_id);
    let health = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(health.headers()["x-request-id"].len(), 26, "a ULID");
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let moto = Moto::shared();
    let forwarded = [("x-forwarded-for", "203.0.113.7, 127.0.0.1".to_owned())];
    let body = json!({"load_balancer": "not-a-target"}).to_string();

    let untrusting = TestApp::spawn(&moto.endpoint, &["web-elb"], PERMISSIVE).await;
    untrusting
        .post_with_headers("/remediate", &forwarded, body.clone())
        .await;
    let caller = untrusting.audit_records().await[0].caller.clone().unwrap();
    assert!(caller.starts_with("127.0.0.1:"), "{caller}");

    let dir = tempfile::tempdir().unwrap();
    let text = crate::common::config_text(
        &moto.endpoint,
        &dir.path().join("a.db"),
        &["web-elb"],
        PERMISSIVE,
    )
    .replace(
        "max_body_bytes = 4096",
        "max_body_bytes = 4096\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let trusting = TestApp::spawn_with_config(dir, &text).await;
    trusting
        .post_with_headers("/remediate", &forwarded, body)
        .await;
    let caller = trusting.audit_records().await[0].caller.clone().unwrap();
    assert!(
        caller.starts_with("203.0.113.7 (via 127.0.0.1:"),
        "{caller}"
    );
}
