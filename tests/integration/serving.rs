//! Serving: HTTPS with a generated certificate and its renewal without a restart, slow clients cut off,
//! the request timeout that never cancels a remediation, and the bound on concurrent remediations.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::process::ReflexProcess;
use crate::common::slow_proxy::SlowProxy;
use crate::common::tls::TestCa;
use crate::common::{Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, TestApp, config_text, unique};

/// A test config for `targets` at `endpoint` with `server_lines` added to `[server]`.
pub fn serving_config(
    dir: &Path,
    endpoint: &str,
    targets: &[&str],
    server_lines: &str,
    remediation: &str,
) -> String {
    config_text(endpoint, &dir.join("audit.db"), targets, remediation).replace(
        "max_body_bytes = 4096\n",
        &format!("max_body_bytes = 4096\n{server_lines}\n"),
    )
}

/// Writes a server certificate and key from `ca` to `dir/cert.pem` and `dir/key.pem`; the `[server]` lines
/// that use them.
pub fn install_pair(ca: &TestCa, dir: &Path) -> String {
    let (cert, key) = ca.server_pair();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    )
}

/// A plain-HTTP reflex with `server_line` added to `[server]`, and its `host:port`.
async fn plain_http_app(server_line: &str) -> (TestApp, String) {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = serving_config(
        dir.path(),
        &moto.endpoint,
        &["web-elb"],
        server_line,
        PERMISSIVE,
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    (app, addr)
}

/// Polls `GET /healthz` with `client` until it succeeds, for at most `limit`.
pub async fn served_within(client: &reqwest::Client, base: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn https_round_trip_with_a_generated_certificate() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("tls");
    let (_good, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let ca = TestCa::new("reflex test CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = install_pair(&ca, dir.path());
    let text = serving_config(dir.path(), &moto.endpoint, &[&lb], &tls, PERMISSIVE);
    let app = TestApp::spawn_with_config(dir, &text).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let client = ca.client();

    let health = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let response = client
        .post(format!("{}/remediate", app.base))
        .bearer_auth(MANUAL_TOKEN)
        .json(&json!({"load_balancer": lb, "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let summary: serde_json::Value = response.json().await.unwrap();
    assert_eq!(summary["unhealthy-instance-ids"], json!(bad));
    assert_eq!(summary["dry-run"], true);

    // A client that does not trust the certificate, and plain HTTP on the HTTPS port, get nothing.
    let stranger = TestCa::new("another CA").client();
    assert!(
        stranger
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );
    let plain = app.base.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(
        answer.is_err(),
        "plain HTTP was answered: {:?}",
        answer.map(|r| r.status())
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let moto = Moto::shared();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = tempfile::tempdir().unwrap();
    let tls = install_pair(&old_ca, cert_dir.path());
    let text = serving_config(
        dir.path(),
        &moto.endpoint,
        &["web-elb"],
        &format!("{tls}\ntls_reload_secs = 1"),
        PERMISSIVE,
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (old_client, new_client) = (old_ca.client(), new_ca.client());
    assert!(served_within(&old_client, &app.base, Duration::from_secs(1)).await);

    // A half-written renewal (not PEM) is refused; the old certificate stays in service.
    std::fs::write(cert_dir.path().join("cert.pem"), "-----BEGIN CERT").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(served_within(&old_client, &app.base, Duration::from_millis(200)).await);

    install_pair(&new_ca, cert_dir.path());
    assert!(
        served_within(&new_client, &app.base, Duration::from_secs(10)).await,
        "the renewed certificate was not picked up"
    );
    assert!(
        // A new client: an old one may resume its TLS session, which skips the certificate.
        !served_within(&old_ca.client(), &app.base, Duration::from_millis(200)).await,
        "the old certificate is still served"
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_while_others_are_served() {
    let (app, addr) = plain_http_app("header_read_timeout_secs = 1").await;

    // Headers dribbled one byte at a time, never finished.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: reflex\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        loop {
            if slow.write_all(b"a").await.is_err() {
                return started.elapsed();
            }
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => panic!("the slow client got an answer"),
                Err(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never cut off");
        }
    });

    let client = reqwest::Client::new();
    for _ in 0..10 {
        let status = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut_after = dribble.await.unwrap();
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(5),
        "{cut_after:?}"
    );

    // A body that stalls is cut off too, answered 408 and audited.
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /remediate HTTP/1.1\r\nHost: reflex\r\nAuthorization: Bearer {MANUAL_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"load_bal"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer))
        .await
        .expect("the stalled body was not cut off")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    let records = app.audit_records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].error.as_deref(), Some("body-timeout"));
}

#[tokio::test]
async fn a_remediation_past_the_request_timeout_finishes_and_is_audited() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("slow");
    let (good, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let proxy = SlowProxy::start(&moto.endpoint, Duration::from_millis(700)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = serving_config(
        dir.path(),
        &proxy.endpoint,
        &[&lb],
        "request_timeout_secs = 1",
        PERMISSIVE,
    );
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, body) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "still-running");
    let detail = body["detail"].as_str().unwrap();
    let audit_id = detail.rsplit(' ').next().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        if let Some(record) = app
            .audit_records()
            .await
            .into_iter()
            .find(|r| r.id == audit_id && r.outcome.as_str() != "acting")
        {
            break record;
        }
        assert!(Instant::now() < deadline, "the run was never audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (record.outcome.as_str(), record.status, record.acted),
        ("completed", 200, 1)
    );
    assert_eq!(
        record.detail["answer"]["terminated-instance-ids"],
        json!(bad)
    );
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    assert!(fleet.none_terminated(&good).await);
}

#[tokio::test]
async fn remediations_beyond_max_concurrent_are_answered_too_busy() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let (first, second) = (unique("busy-a"), unique("busy-b"));
    fleet.balancer_with(&first, 2, 1).await;
    fleet.balancer_with(&second, 2, 1).await;
    let proxy = SlowProxy::start(&moto.endpoint, Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = serving_config(
        dir.path(),
        &proxy.endpoint,
        &[&first, &second],
        "",
        &format!("{PERMISSIVE}max_concurrent = 1\n"),
    );
    let app = std::sync::Arc::new(TestApp::spawn_with_config(dir, &text).await);

    let running = {
        let app = std::sync::Arc::clone(&app);
        let first = first.clone();
        tokio::spawn(async move {
            app.remediate(json!({"load_balancer": first, "dry_run": true}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = app
        .remediate(json!({"load_balancer": second, "dry_run": true}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "too-busy");
    let (status, body) = running.await.unwrap();
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .remediate(json!({"load_balancer": second, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    let busy: Vec<_> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.error.as_deref() == Some("too-busy"))
        .collect();
    assert_eq!(busy.len(), 1);
    assert_eq!(
        (busy[0].outcome.as_str(), busy[0].status),
        ("rejected", 503)
    );
}

#[tokio::test]
async fn sigterm_during_a_remediation_lets_it_finish_and_audit() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("term");
    let (good, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let proxy = SlowProxy::start(&moto.endpoint, Duration::from_millis(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = serving_config(dir.path(), &proxy.endpoint, &[&lb], "", PERMISSIVE);
    let client = reqwest::Client::new();
    let mut reflex = ReflexProcess::start(dir.path(), &text, &client).await;

    let request = client
        .post(format!("{}/remediate", reflex.base))
        .bearer_auth(MANUAL_TOKEN)
        .json(&json!({"load_balancer": lb}))
        .send();
    let answer = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    reflex.signal("TERM");

    let response = answer
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let summary: serde_json::Value = response.json().await.unwrap();
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
    let status = reflex.exit_within(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    assert!(fleet.none_terminated(&good).await);

    let listed = crate::common::process::reflex([
        "audit",
        "list",
        "--json",
        "--config",
        reflex.config.to_str().unwrap(),
    ]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    let records: Vec<serde_json::Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{listed}");
    assert_eq!(records[0]["outcome"], "completed");
    assert_eq!(records[0]["acted"], 1);
    assert_eq!(records[0]["id"], summary["audit-id"]);
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let moto = Moto::shared();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = install_pair(&old_ca, dir.path());
    let text = serving_config(
        dir.path(),
        &moto.endpoint,
        &["web-elb"],
        &format!("{tls}\ntls_reload_secs = 0"),
        PERMISSIVE,
    );
    let (old_client, new_client) = (old_ca.client(), new_ca.client());
    let reflex = ReflexProcess::start(dir.path(), &text, &old_client).await;

    install_pair(&new_ca, dir.path());
    assert!(
        !served_within(&new_client, &reflex.base, Duration::from_millis(1500)).await,
        "reloaded without a SIGHUP although polling is off"
    );
    reflex.signal("HUP");
    assert!(served_within(&new_client, &reflex.base, Duration::from_secs(10)).await);
    assert!(!served_within(&old_ca.client(), &reflex.base, Duration::from_millis(200)).await);
}

#[tokio::test]
async fn sighup_without_tls_is_harmless() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = serving_config(dir.path(), &moto.endpoint, &["web-elb"], "", PERMISSIVE);
    let client = reqwest::Client::new();
    let mut reflex = ReflexProcess::start(dir.path(), &text, &client).await;
    reflex.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        reflex.child.try_wait().unwrap().is_none(),
        "SIGHUP ended reflex"
    );
    assert!(served_within(&client, &reflex.base, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn past_max_connections_a_new_connection_waits_for_a_free_one() {
    let (_app, addr) = plain_http_app("max_connections = 2").await;
    let idle_one = TcpStream::connect(&addr).await.unwrap();
    let _idle_two = TcpStream::connect(&addr).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let third = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: reflex\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served while two were open"
    );
    drop(idle_one);
    let answer = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
