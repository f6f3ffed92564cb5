//! `POST /alertmanager` with the real Alertmanager in front: alert → Alertmanager → reflex → moto.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::common::alertmanager::Alertmanager;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

pub(crate) const AM_TOKEN: &str = "alertmanager-token-0123456789";

async fn app(moto: &Moto, targets: &[&str], extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        targets,
        PERMISSIVE,
    );
    text.push_str(&format!(
        "\n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n{extra}\n"
    ));
    TestApp::spawn_with_config(dir, &text).await
}

/// Waits until `check` holds, for at most 30 s (Alertmanager batches on group_wait / group_interval).
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alert(lb: &str, team: &str, ends_at: Option<&str>) -> Value {
    let mut alert = json!({
        "labels": {"alertname": "ELBUnhealthyHosts", "load_balancer": lb, "team": team, "severity": "page"},
        "annotations": {"summary": format!("{lb} has unhealthy hosts")},
        "generatorURL": "http://prometheus.example/graph"
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at);
    }
    json!([alert])
}

#[tokio::test]
async fn real_alertmanager_drives_a_remediation_and_a_wrong_token_changes_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("amweb");
    let other = unique("amother");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (_, other_bad) = fleet.balancer_with(&other, 3, 1).await;
    let app = app(moto, &[&lb, &other], "").await;
    let url = format!("{}/alertmanager", app.base);
    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: reflex
  group_by: ['load_balancer']
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: wrong-token
      matchers: ['team="intruder"']
receivers:
  - name: reflex
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization:
            credentials: {AM_TOKEN}
  - name: wrong-token
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization:
            credentials: not-the-token-0123456789
"#
    ))
    .await;

    am.post_alerts(alert(&lb, "web", None)).await;
    eventually("the stopped instance to be terminated", || async {
        matches!(
            fleet.state(&bad[0]).await,
            InstanceStateName::ShuttingDown | InstanceStateName::Terminated
        )
    })
    .await;
    assert!(fleet.none_terminated(&good).await);

    am.post_alerts(alert(&other, "intruder", None)).await;
    eventually("the wrong-token delivery to be refused", || async {
        app.audit_records().await.iter().any(|r| r.status == 401)
    })
    .await;
    assert_eq!(fleet.state(&other_bad[0]).await, InstanceStateName::Stopped);

    let resolved_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    am.post_alerts(alert(&lb, "web", Some(&resolved_at))).await;
    eventually("the resolved notification to be recorded", || async {
        app.audit_records()
            .await
            .iter()
            .any(|r| r.outcome == "ignored")
    })
    .await;

    let records = app.audit_records().await;
    let request = records
        .iter()
        .find(|r| {
            r.source == "alertmanager" && r.outcome == "completed" && r.detail.get("runs").is_some()
        })
        .expect("the firing notification's request record");
    assert_eq!(request.auth, "passed");
    assert_eq!(
        request.detail["alerts"]["groups"][&lb][0],
        format!("{lb} has unhealthy hosts")
    );
    let run = records
        .iter()
        .find(|r| r.detail["request_id"] == json!(request.id))
        .expect("the remediation's own record");
    assert_eq!((run.acted, run.target.as_deref()), (1, Some(lb.as_str())));
    let refused = records.iter().find(|r| r.status == 401).unwrap();
    assert_eq!((refused.auth.as_str(), refused.acted), ("invalid-token", 0));
    let resolved = records.iter().find(|r| r.outcome == "ignored").unwrap();
    assert_eq!(resolved.acted, 0);
    assert_eq!(
        records.iter().map(|r| r.acted).filter(|a| *a > 0).count(),
        2,
        "only the firing notification acted (request and run records)"
    );
}

pub(crate) fn vector(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/alertmanager")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn redeliveries_do_nothing_and_bad_requests_are_refused() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("amdup");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = app(moto, &[&lb], "").await;

    let mut payload = vector("am_v4_firing_pingme.json");
    payload["alerts"][0]["labels"]["load_balancer"] = json!(lb);
    let body = payload.to_string();
    let (status, first) = app
        .post("/alertmanager", Some(AM_TOKEN), body.clone())
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"][0]["terminated-instance-ids"], json!(bad));
    assert_eq!(first["results"][0]["duplicate"], false);
    let (status, again) = app
        .post("/alertmanager", Some(AM_TOKEN), body.clone())
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["results"][0]["duplicate"], true);
    assert_eq!(
        again["results"][0]["audit-id"],
        first["results"][0]["audit-id"]
    );

    let mut wrong_version = payload.clone();
    wrong_version["version"] = json!("3");
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, body.clone(), 401, "missing-credentials"),
        (
            Some("not-the-token-0123456789"),
            body.clone(),
            401,
            "invalid-token",
        ),
        (Some(AM_TOKEN), "{not json".into(), 400, "malformed-json"),
        (
            Some(AM_TOKEN),
            wrong_version.to_string(),
            400,
            "unsupported-version",
        ),
        (Some(AM_TOKEN), "[1, 2]".into(), 400, "invalid-request"),
        (
            Some(AM_TOKEN),
            format!("{{\"pad\": \"{}\"}}", "x".repeat(5000)),
            413,
            "payload-too-large",
        ),
    ];
    for (token, body, want_status, want_code) in &cases {
        let (status, answer) = app.post("/alertmanager", *token, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap_or_default()),
            (*want_status, *want_code),
            "{answer}"
        );
    }
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    assert_eq!(
        records.iter().filter(|r| r.outcome == "rejected").count(),
        cases.len()
    );
    assert_eq!(
        records.iter().filter(|r| r.outcome == "duplicate").count(),
        1
    );
}

#[tokio::test]
async fn unlabelled_and_unknown_balancers_are_reported_not_acted_on() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("amdef");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;

    let no_default = app(moto, &[&lb], "").await;
    let mut payload = vector("am_v4_firing_3alerts_utf8_cloudeon.json");
    payload["alerts"][1]["labels"]["load_balancer"] = json!("not-a-target");
    let (status, answer) = no_default
        .post("/alertmanager", Some(AM_TOKEN), payload.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    let reasons: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ignored"].as_str())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("neither a \"load_balancer\" nor a \"target_group\" label"))
            .count(),
        2,
        "{answer}"
    );
    assert!(reasons.contains(&"unknown-load-balancer"), "{answer}");
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);

    let with_default = app(moto, &[&lb], &format!("default_target = \"{lb}\"")).await;
    let payload = vector("am_v4_legacy_msteams_no_fingerprint.json");
    let (status, answer) = with_default
        .post("/alertmanager", Some(AM_TOKEN), payload.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["terminated-instance-ids"], json!(bad));
}
