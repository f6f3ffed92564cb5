//! A run whose final commit fails is not lost: the store goes away after the run's intent is written (PostgreSQL
//! stopped and started again; SQLite locked by another connection past reflex's busy timeout), the run acts and
//! is answered with the store's failure, and once the store is back the run's record is completed, its claim
//! and leases given back: the SNS redelivery gets the run's answer, the instance was replaced once, and another
//! replica's run on another target, sent the moment the store is back, is not answered `target-busy`.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::Value;
use sqlx::{Connection as _, Executor as _};

use crate::common::own_postgres::OwnPostgres;
use crate::common::postgres::with_store;
use crate::common::process::{ReflexProcess, remediate_at};
use crate::common::slow_proxy::SlowProxy;
use crate::common::{Fleet, Moto, PERMISSIVE, config_text, unique};
use crate::sns::{alarm, captured_delivery, topic};
use crate::takeover::audit;

/// The store under test, and how the test takes it away and gives it back.
enum Store {
    /// A SQLite file; while `lock` is open it holds the file's write lock.
    Sqlite {
        url: String,
        lock: Option<sqlx::SqliteConnection>,
    },
    /// A PostgreSQL server of the test's own.
    Postgres(OwnPostgres),
}

impl Store {
    /// Takes the store away from every reflex process.
    async fn fail(&mut self) {
        match self {
            Self::Sqlite { url, lock } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                conn.execute("BEGIN EXCLUSIVE").await.unwrap();
                *lock = Some(conn);
            }
            Self::Postgres(server) => server.stop(),
        }
    }

    /// Gives the store back.
    async fn mend(&mut self) {
        match self {
            Self::Sqlite { lock, .. } => {
                let mut conn = lock.take().unwrap();
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
            Self::Postgres(server) => server.resume(),
        }
    }

    /// The count `sql` (a `SELECT COUNT(*)`) answers.
    async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Self::Postgres(server) => {
                let mut conn = sqlx::PgConnection::connect(&server.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }
}

#[tokio::test]
async fn a_run_finished_while_sqlite_is_locked_is_recorded_once_the_lock_goes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    results_survive(Store::Sqlite { url, lock: None }, dir).await;
}

#[tokio::test]
async fn a_run_finished_while_postgres_restarts_is_recorded_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    results_survive(Store::Postgres(OwnPostgres::start()), dir).await;
}

async fn results_survive(mut store: Store, dir: tempfile::TempDir) {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let (first_lb, second_lb) = (unique("mended"), unique("bystander"));
    let (good, bad) = fleet.balancer_with(&first_lb, 3, 1).await;
    let (_, other_bad) = fleet.balancer_with(&second_lb, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("mend")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&first_lb, "ALARM")).await;
    let store_url = match &store {
        Store::Sqlite { url, .. } => url.clone(),
        Store::Postgres(server) => server.url.clone(),
    };
    let config = |endpoint: &str| {
        let db = dir.path().join("audit.db");
        let mut text = config_text(endpoint, &db, &[&first_lb, &second_lb], PERMISSIVE)
            // While SQLite is locked each of the writer's batches (heartbeats, probes, the run's writes) waits
            // out the 5 s busy timeout: the run's answer may take longer than the default 60 s.
            .replace("[server]\n", "[server]\nrequest_timeout_secs = 180\n");
        text.push_str(&format!(
            "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n"
        ));
        with_store(&text, &store_url)
    };
    let client = reqwest::Client::new();

    // The first process reaches AWS through a slow relay: its run is still acting when the store goes.
    let slow = SlowProxy::start(&moto.endpoint, Duration::from_millis(1500)).await;
    let first_dir = tempfile::tempdir().unwrap();
    let first =
        ReflexProcess::start_logged(first_dir.path(), &config(&slow.endpoint), &client).await;
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = ReflexProcess::start(replica_dir.path(), &config(&moto.endpoint), &client).await;

    let pending = tokio::spawn({
        let request = client
            .post(format!("{}/sns", first.base))
            .body(delivery.clone());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read straight from the store: it goes as soon as the intent is there, well before the run's
    // TerminateInstances (held 1.5 s in the relay) is answered.
    let intents = "SELECT COUNT(*) FROM audit_entries WHERE outcome = 'acting'";
    while store.count(intents).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never recorded its intent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.fail().await;
    let (status, answer) = pending.await.unwrap();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "audit-unavailable", "{answer}");
    // The run did act: its TerminateInstances left before the final commit failed.
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    store.mend().await;
    // At once, another replica acts on another target: the budget lease the held record still holds is given
    // back as soon as the record lands, well within the run's wait for it.
    let bystander = tokio::spawn({
        let (client, base, lb) = (client.clone(), replica.base.clone(), second_lb.clone());
        async move { remediate_at(&client, &base, &lb).await }
    });

    // Once the store is back the run's record is completed, and it holds nothing any more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let records: Vec<Value> = audit(&[], &first.config)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        if let Some(done) = records
            .iter()
            .find(|record| record["source"] == "sns" && record["outcome"] == "completed")
        {
            break done.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the run's result never reached the store: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["acted"], 1, "{record}");
    assert!(
        record["detail"]["committed_late"]["first_commit_failed"].is_string(),
        "{record}"
    );
    let id = record["id"].as_str().unwrap();
    let check = format!("SELECT COUNT(*) FROM jobs WHERE dedup_key = 'check:{id}'");
    assert_eq!(
        store.count(&check).await,
        1,
        "the recovery check rides with the record"
    );
    let settled =
        format!("SELECT COUNT(*) FROM deliveries WHERE audit_id = '{id}' AND summary IS NOT NULL");
    assert_eq!(
        store.count(&settled).await,
        1,
        "the delivery claim is completed"
    );
    let (status, other) = bystander.await.unwrap();
    assert_eq!(status, 200, "{other}");
    assert_eq!(
        other["terminated-instance-ids"],
        serde_json::json!(other_bad)
    );
    assert_eq!(
        store.count("SELECT COUNT(*) FROM target_leases").await,
        0,
        "every lease is given back"
    );

    // The redelivery SNS sends gets the run's answer: the instance was replaced, once.
    let response = client
        .post(format!("{}/sns", replica.base))
        .body(delivery)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let replayed: Value = response.json().await.unwrap();
    assert_eq!(replayed["duplicate"], true, "{replayed}");
    assert_eq!(replayed["audit-id"], record["id"], "{replayed}");
    assert_eq!(replayed["terminated-instance-ids"], serde_json::json!(bad));
    assert!(fleet.none_terminated(&good).await);

    drop(slow);
}
