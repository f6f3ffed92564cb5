//! A flood of unauthenticated junk against a real `reflex serve` process while genuine alerts arrive (at the
//! receivers, the trail's reads, the admin routes and the login form): every genuine alert is answered and acted
//! on, peak memory stays bounded, and the audit trail grows by a bounded amount. Its own test binary, so that its load does not disturb the timing of other tests. Loopback only; it
//! stops by itself after `FLOOD` (60 s).

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use common::process::ReflexProcess;
use common::{Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, config_text, unique};

/// How long the junk flows.
const FLOOD: Duration = Duration::from_secs(60);
/// Peak resident memory reflex may reach under the flood (VmHWM).
const MAX_PEAK_RSS_MB: u64 = 256;
/// How much the audit database may grow over the flood.
const MAX_AUDIT_GROWTH_KB: u64 = 8 * 1024;
/// Idle connections held open (and reopened when reflex closes them).
const IDLE_CONNECTIONS: usize = 2000;
/// Connections sending a body one byte a second.
const TRICKLES: usize = 200;

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn audit_bytes(dir: &std::path::Path) -> u64 {
    ["audit.db", "audit.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|meta| meta.len())
        .sum()
}

/// A POST a genuine sender makes, retried on 5xx the way SNS and Alertmanager retry.
async fn genuine(
    client: &reqwest::Client,
    base: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    for _ in 0..20 {
        let answer = client
            .post(format!("{base}/remediate"))
            .bearer_auth(MANUAL_TOKEN)
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        if let Ok(answer) = answer {
            if answer.status() == 200 {
                return answer.json().await.unwrap();
            }
            assert!(answer.status().is_server_error(), "{}", answer.status());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("a genuine alert was never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_cannot_stop_genuine_alerts() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("flood");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    )
    .replace(
        "max_body_bytes = 4096\n",
        "max_body_bytes = 262144\nbody_timeout_secs = 5\n",
    );
    let client = reqwest::Client::new();
    let reflex = ReflexProcess::start(dir.path(), &text, &client).await;
    let base = reflex.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let before = audit_bytes(dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    let junk_sent = Arc::new(AtomicU64::new(0));
    let mut junk = Vec::new();
    // Oversized fields and bad credentials at full speed.
    let huge_topic = json!({
        "Type": "Notification", "MessageId": "m", "TopicArn": "x".repeat(200_000),
        "Message": "m", "Timestamp": "2026-01-01T00:00:00Z", "SignatureVersion": "2",
        "Signature": "AAAA", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    })
    .to_string();
    let bad_signature = json!({
        "Type": "Notification", "MessageId": "0b7a1a24-5b1d-5b6f-9a3e-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms", "Message": "m",
        "Timestamp": "2026-01-01T00:00:00Z", "SignatureVersion": "2", "Signature": "AAAA",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    })
    .to_string();
    for worker in 0..16 {
        let (client, base, stop, sent) = (
            client.clone(),
            base.clone(),
            Arc::clone(&stop),
            Arc::clone(&junk_sent),
        );
        let (huge, forged) = (huge_topic.clone(), bad_signature.clone());
        junk.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = match worker % 8 {
                    0 => client.post(format!("{base}/sns")).body(huge.clone()),
                    1 => client.post(format!("{base}/sns")).body(forged.clone()),
                    2 => client
                        .post(format!("{base}/remediate"))
                        .bearer_auth("not-the-token-0123456789")
                        .body(format!(
                            "{{\"load_balancer\": \"{}\"}}",
                            "\u{1b}[2J".repeat(1000)
                        )),
                    3 => client
                        .post(format!("{base}/alertmanager"))
                        .bearer_auth("not-the-token-0123456789")
                        .body("{}"),
                    // The doors that read or steer: the trail, a record, the admin routes, the login form.
                    4 => client
                        .get(format!("{base}/audit"))
                        .bearer_auth("not-the-token-0123456789"),
                    5 => client
                        .get(format!("{base}/audit/01HXXXXXXXXXXXXXXXXXXXXXXX"))
                        .bearer_auth("not-the-token-0123456789"),
                    6 => client
                        .get(format!("{base}/admin/state"))
                        .bearer_auth("not-the-token-0123456789"),
                    _ => client
                        .post(format!("{base}/ui/login"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("csrf=forged&token=guess-0123456789"),
                };
                let _ = request.timeout(Duration::from_secs(5)).send().await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Bodies that trickle in a byte a second.
    for _ in 0..TRICKLES {
        let (addr, stop) = (addr.clone(), Arc::clone(&stop));
        junk.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let head = "POST /sns HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                while !stop.load(Ordering::Relaxed) && stream.write_all(b"x").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }));
    }
    // Idle connections that send nothing, reopened when reflex closes them.
    let idle_opened = Arc::new(AtomicU64::new(0));
    for _ in 0..IDLE_CONNECTIONS / 100 {
        let (addr, stop, opened) = (addr.clone(), Arc::clone(&stop), Arc::clone(&idle_opened));
        junk.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                held.retain(|stream: &TcpStream| stream.peer_addr().is_ok());
                while held.len() < 100 {
                    match TcpStream::connect(&addr).await {
                        Ok(stream) => {
                            held.push(stream);
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    // Genuine alerts all through the flood: dry runs every 2 s, then the real one.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < FLOOD {
        let summary = genuine(
            &client,
            &base,
            json!({"load_balancer": lb, "dry_run": true}),
        )
        .await;
        assert_eq!(summary["terminated-instance-ids"], json!(bad), "{summary}");
        answered += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let summary = genuine(&client, &base, json!({"load_balancer": lb})).await;
    assert_eq!(summary["terminated-instance-ids"], json!(bad), "{summary}");
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));

    stop.store(true, Ordering::Relaxed);
    for task in junk {
        task.abort();
    }
    let peak_mb = peak_rss_kb(reflex.child.id()) / 1024;
    let mut reflex = reflex;
    reflex.signal("TERM");
    reflex.exit_within(Duration::from_secs(40)).await;
    let grown_kb = audit_bytes(dir.path()).saturating_sub(before) / 1024;
    let sent = junk_sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {sent} junk requests, {} idle connections opened, {TRICKLES} trickling bodies over {} s; \
         {answered} genuine alerts answered; peak RSS {peak_mb} MB; audit grew {grown_kb} KB",
        idle_opened.load(Ordering::Relaxed),
        FLOOD.as_secs()
    );
    assert!(answered >= 10, "only {answered} genuine alerts got through");
    assert!(peak_mb < MAX_PEAK_RSS_MB, "peak RSS {peak_mb} MB");
    assert!(grown_kb < MAX_AUDIT_GROWTH_KB, "audit grew {grown_kb} KB");

    // Every rejection is accounted for: most as counts in summary records.
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let (store, writer) = reflex::audit::AuditStore::open(&url).await.unwrap();
    let records = store.list(100_000).await.unwrap();
    let summarised: u64 = records
        .iter()
        .filter(|r| r.error.as_deref() == Some("suppressed"))
        .filter_map(|r| r.detail["suppressed"]["count"].as_u64())
        .sum();
    let one_by_one = records
        .iter()
        .filter(|r| r.outcome == "rejected" && r.error.as_deref() != Some("suppressed"))
        .count() as u64;
    eprintln!(
        "flood: {one_by_one} rejections recorded one by one, {summarised} counted in summaries"
    );
    assert!(summarised > one_by_one, "the flood was not summarised");
    drop(store);
    writer.finish().await;
}
