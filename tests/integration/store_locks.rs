//! No replica can stall the others on PostgreSQL: a transaction left open on the chain's head bounds every
//! answer (lock_timeout) instead of hanging them, and one held by a dead reflex process is broken.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection as _, Executor as _};

use crate::common::postgres::Postgres;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

/// reflex on `postgres`, allowed to act on `lb`.
async fn app(postgres: &Postgres, lb: &str) -> TestApp {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("unused.db"),
        &[lb],
        PERMISSIVE,
    );
    TestApp::spawn_with_config(dir, &postgres.config(&text)).await
}

/// A session of the test's own holding the chain's head, as a replica's transaction would.
async fn hold_the_head(postgres: &Postgres, name: &str) -> sqlx::PgConnection {
    let mut holder = sqlx::PgConnection::connect(&postgres.url).await.unwrap();
    holder
        .execute(format!("SET application_name = '{name}'").as_str())
        .await
        .unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT head_seq FROM audit_chain WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn a_transaction_left_open_on_the_chain_head_bounds_every_answer_and_its_end_heals_at_once() {
    let postgres = Postgres::fresh().await;
    let fleet = Fleet::new(&Moto::shared().endpoint).await;
    let lb = unique("lockweb");
    fleet.balancer_with(&lb, 2, 0).await;
    let app = app(&postgres, &lb).await;
    assert_eq!(app.get("/readyz", None).await.0, 200);

    let mut holder = hold_the_head(&postgres, "someone-else").await;
    let started = Instant::now();
    let (ready, _) = app.get("/readyz", None).await;
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "dry_run": true}))
        .await;
    let waited = started.elapsed();
    assert!(matches!(ready, 200 | 503), "/readyz answers: {ready}");
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("audit-unavailable")),
        "{body}"
    );
    assert!(
        waited < Duration::from_secs(20),
        "answered within the lock bounds: {waited:?}"
    );

    holder.execute("ROLLBACK").await.unwrap();
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get("/readyz", None).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_lock_held_by_a_reflex_process_whose_heartbeat_stopped_is_broken() {
    let postgres = Postgres::fresh().await;
    let fleet = Fleet::new(&Moto::shared().endpoint).await;
    let lb = unique("deadlock");
    fleet.balancer_with(&lb, 2, 0).await;
    let app = app(&postgres, &lb).await;

    // A replica that froze inside a transaction a minute ago: its session is named after it, its heartbeat
    // stopped then.
    let mut admin = sqlx::PgConnection::connect(&postgres.url).await.unwrap();
    admin
        .execute(
            "INSERT INTO processes (owner, started_ms, heartbeat_ms) VALUES ('frozen-replica', \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) - 60000, \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) - 60000)",
        )
        .await
        .unwrap();
    let mut frozen = hold_the_head(&postgres, "reflex:frozen-replica").await;

    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "the dead holder's lock was broken: {body}");
    assert!(
        frozen.execute("SELECT 1").await.is_err(),
        "the frozen replica's session was ended"
    );
    app.stop().await;
}
