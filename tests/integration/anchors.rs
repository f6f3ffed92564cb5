//! The chain proves what it claims: `reflex audit verify` answers consistently while the server writes, fails
//! on a row appended by hand after the head, and, with anchors kept outside the database
//! (`reflex audit anchor`), on a faked prune.

use serde_json::json;
use sqlx::{Connection as _, Executor as _};

use crate::common::process::reflex;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, unique};

fn verify(config: &str, anchors: Option<&std::path::Path>) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify", "--config", config];
    if let Some(file) = anchors {
        args.extend(["--anchor", file.to_str().unwrap()]);
    }
    let out = reflex(args);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), said)
}

fn anchor(config: &str) -> String {
    let out = reflex(["audit", "anchor", "--config", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn verify_is_consistent_while_writing_and_anchors_catch_a_hand_appended_row_and_a_faked_prune()
 {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("anchor");
    fleet.balancer_with(&lb, 2, 0).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let config = app.config_path.to_str().unwrap().to_owned();
    let dry_run = json!({"load_balancer": lb, "dry_run": true});
    for _ in 0..3 {
        assert_eq!(app.remediate(dry_run.clone()).await.0, 200);
    }
    let anchors = tempfile::NamedTempFile::new().unwrap();
    let first = anchor(&config);
    let first_seq: i64 = first.split_whitespace().next().unwrap().parse().unwrap();

    // While runs are written, every verify sees one consistent chain.
    let writing = {
        let (base, body) = (app.base.clone(), dry_run.to_string());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in 0..60 {
                client
                    .post(format!("{base}/remediate"))
                    .bearer_auth(crate::common::MANUAL_TOKEN)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..4 {
        let (code, said) = tokio::task::spawn_blocking({
            let config = config.clone();
            move || verify(&config, None)
        })
        .await
        .unwrap();
        assert_eq!(code, Some(0), "{said}");
    }
    writing.await.unwrap();
    let second = anchor(&config);
    std::fs::write(anchors.path(), format!("{first}{second}")).unwrap();
    let (code, said) = verify(&config, Some(anchors.path()));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("2 anchors matched"), "{said}");

    let url = format!(
        "sqlite://{}",
        app.config_path.with_file_name("audit.db").display()
    );
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();

    // A row appended by hand after the head.
    db.execute(
        "CREATE TEMP TABLE copied AS SELECT * FROM audit_entries WHERE seq = (SELECT MAX(seq) FROM audit_entries); \
         UPDATE copied SET seq = seq + 1, id = 'hand-made'; INSERT INTO audit_entries SELECT * FROM copied",
    )
    .await
    .unwrap();
    let (code, said) = verify(&config, None);
    assert_eq!(code, Some(1), "{said}");
    db.execute("DELETE FROM audit_entries WHERE id = 'hand-made'")
        .await
        .unwrap();
    assert_eq!(verify(&config, None).0, Some(0));

    // A faked prune: today's first entries removed, the checkpoint set to the last removed one's hash. The chain
    // alone cannot tell it from a prune; the anchor taken today can.
    let cut = first_seq + 1;
    db.execute(
        format!(
            "UPDATE audit_chain SET checkpoint_seq = {cut}, checkpoint_hash = \
             (SELECT hash FROM audit_entries WHERE seq = {cut}) WHERE id = 1; \
             DELETE FROM audit_entries WHERE seq <= {cut}"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let (code, said) = verify(&config, None);
    assert_eq!(code, Some(0), "the chain alone still verifies: {said}");
    let (code, said) = verify(&config, Some(anchors.path()));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("checkpoint was edited") || said.contains("the checkpoint edited"),
        "{said}"
    );
}
