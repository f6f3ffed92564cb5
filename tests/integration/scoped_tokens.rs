//! A sender trusted for some accounts only: an Alertmanager bearer token listed under
//! `[[alertmanager.scoped]]` may name targets in its accounts, and a delivery naming a target elsewhere is
//! refused (403 `account-not-allowed`, audited) before anything is read or done.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;

use crate::accounts::prod_account;
use crate::alertmanager::vector;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, sha256_hex, unique};

const PROD_ONLY: &str = "scoped-prod-token-0123456789abcdef";
const LOCAL_TOO: &str = "scoped-local-token-0123456789abcdef";
const UNSCOPED: &str = "unscoped-token-0123456789abcdef";

#[tokio::test]
async fn a_scoped_token_acts_only_on_targets_of_its_accounts() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("amscope");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    );
    text.push_str(&prod_account("reflex-member", ""));
    text.push_str(&format!(
        "\n[alertmanager]\ntokens = [\"{UNSCOPED}\"]\n[[alertmanager.scoped]]\ntoken_sha256 = \"{}\"\naccounts = [\"prod\"]\n\
         [[alertmanager.scoped]]\ntoken_sha256 = \"{}\"\naccounts = [\"prod\", \"local\"]\n",
        sha256_hex(PROD_ONLY),
        sha256_hex(LOCAL_TOO)
    ));
    let app = TestApp::spawn_with_config(dir, &text).await;
    let mut payload = vector("am_v4_legacy_msteams_no_fingerprint.json");
    payload["alerts"][0]["labels"]["load_balancer"] = json!(lb);

    // The prod-only token names a local target: refused, nothing read or done, audited.
    let (status, refused) = app
        .post("/alertmanager", Some(PROD_ONLY), payload.to_string())
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("account-not-allowed")),
        "{refused}"
    );
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    let records = app.audit_records().await;
    let record = records
        .iter()
        .find(|r| r.error.as_deref() == Some("account-not-allowed"))
        .expect("the refusal is audited");
    assert_eq!(record.detail["scoped_accounts"], json!(["prod"]));
    assert_eq!(record.detail["outside_scope"]["target"], json!(lb));
    let said = refused["detail"].as_str().unwrap();
    assert!(
        !said.contains(&lb),
        "the answer does not name what exists: {said}"
    );
    // The token is Alertmanager's only.
    let (status, _) = app
        .post(
            "/grafana",
            Some(PROD_ONLY),
            json!({"version": "1"}).to_string(),
        )
        .await;
    assert_eq!(status, 401);

    // A token scoped to the local account too acts.
    let (status, answer) = app
        .post("/alertmanager", Some(LOCAL_TOO), payload.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["terminated-instance-ids"], json!(bad));
    // A scoped sender's deliveries are deduplicated apart: the same notification with another token is not
    // answered as a duplicate of it (nor could the scoped one replay another sender's answer).
    let (status, again) = app
        .post("/alertmanager", Some(UNSCOPED), payload.to_string())
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["results"][0]["duplicate"], false, "{again}");
    app.stop().await;
}
