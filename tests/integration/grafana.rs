//! `POST /grafana`: Grafana's webhook contact point, signed with HMAC-SHA256 over `<timestamp>:<body>` exactly as
//! Grafana computes it, or with a bearer token.

use aws_sdk_ec2::types::InstanceStateName;
use reflex::webhook::signature;
use serde_json::{Value, json};

use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

const SECRET: &str = "grafana-hmac-secret-0123456789";
const TOKEN: &str = "grafana-bearer-token-0123456789";

async fn app(moto: &Moto, lb: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[lb],
        PERMISSIVE,
    );
    text.push_str(&format!(
        "\n[grafana]\nhmac_secret = \"{SECRET}\"\ntokens = [\"{TOKEN}\"]\n"
    ));
    TestApp::spawn_with_config(dir, &text).await
}

fn payload(lb: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/grafana/grafana_docs_example_v1.json");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for alert in payload["alerts"].as_array_mut().unwrap() {
        alert["labels"]["load_balancer"] = json!(lb);
    }
    payload.to_string()
}

type Headers = Vec<(&'static str, String)>;

fn signed_headers(body: &str, secret: &str, at: i64) -> Headers {
    let timestamp = at.to_string();
    vec![
        (
            "X-Grafana-Alerting-Signature",
            signature::sign(secret.as_bytes(), body.as_bytes(), Some(&timestamp)),
        ),
        ("X-Grafana-Alerting-Timestamp", timestamp),
    ]
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn a_signed_grafana_alert_heals_its_balancer_once() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("graf");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = app(moto, &lb).await;
    let body = payload(&lb);

    let (status, answer) = app
        .post_with_headers(
            "/grafana",
            &signed_headers(&body, SECRET, now()),
            body.clone(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"].as_array().unwrap().len(),
        1,
        "both alerts name one balancer"
    );
    assert_eq!(answer["results"][0]["terminated-instance-ids"], json!(bad));
    assert!(
        answer["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("triggered for zone us-1")
    );
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    assert!(fleet.none_terminated(&good).await);

    let (status, again) = app
        .post_with_headers(
            "/grafana",
            &signed_headers(&body, SECRET, now()),
            body.clone(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["results"][0]["duplicate"], true);
    let request = app
        .audit_records()
        .await
        .into_iter()
        .find(|r| {
            r.source == "grafana" && r.outcome == "completed" && r.detail.get("runs").is_some()
        })
        .unwrap();
    assert_eq!(request.auth, "passed");
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_bad_payloads_are_refused_and_audited() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("grafbad");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = app(moto, &lb).await;
    let body = payload(&lb);
    let mut tampered: Value = serde_json::from_str(&body).unwrap();
    tampered["status"] = json!("resolved");
    let mut wrong_version: Value = serde_json::from_str(&body).unwrap();
    wrong_version["version"] = json!("0");
    let wrong_version = wrong_version.to_string();

    let cases: Vec<(Headers, String, u16, &str)> = vec![
        (vec![], body.clone(), 401, "missing-signature"),
        (
            signed_headers(&body, "another-secret-0123456789", now()),
            body.clone(),
            401,
            "bad-signature",
        ),
        (
            signed_headers(&body, SECRET, now()),
            tampered.to_string(),
            401,
            "bad-signature",
        ),
        (
            signed_headers(&body, SECRET, now() - 600),
            body.clone(),
            401,
            "stale-signature",
        ),
        (
            signed_headers(&body, SECRET, now() + 600),
            body.clone(),
            401,
            "stale-signature",
        ),
        (
            signed_headers(&body, SECRET, now())[..1].to_vec(),
            body.clone(),
            401,
            "bad-timestamp",
        ),
        (
            vec![("Authorization", "Bearer wrong-token-0123456789".into())],
            body.clone(),
            401,
            "invalid-token",
        ),
        (
            signed_headers(&wrong_version, SECRET, now()),
            wrong_version.clone(),
            400,
            "unsupported-version",
        ),
        (
            signed_headers("{oops", SECRET, now()),
            "{oops".into(),
            400,
            "malformed-json",
        ),
        (vec![], "x".repeat(5000), 413, "payload-too-large"),
    ];
    for (headers, body, want_status, want_code) in &cases {
        let (status, answer) = app
            .post_with_headers("/grafana", headers, body.clone())
            .await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap_or_default()),
            (*want_status, *want_code),
            "{answer}"
        );
    }
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    assert_eq!(records.len(), cases.len());
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "rejected" && r.acted == 0)
    );

    // Grafana's bearer-token option works too.
    let (status, answer) = app
        .post_with_headers(
            "/grafana",
            &[("Authorization", format!("Bearer {TOKEN}"))],
            body,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["terminated-instance-ids"], json!(bad));
}
