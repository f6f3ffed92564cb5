//! A store the previous release wrote opens in this one, and what it left under way completes, on SQLite and
//! on PostgreSQL: a replacement's check and a reboot's check (jobs of kinds this release no longer schedules),
//! a held approval (whose decision and evidence name no action kind), and a decision in flight when its process
//! died (taken over by the alarm's redelivery). The rows are the ones the previous release wrote
//! (`tests/fixtures/previous_release.json`), with this test's balancers and instances in place of those they
//! were captured with.

use std::time::{Duration, Instant};

use reflex::audit::{AuditRecord, AuditStore, Outcome, RequestMeta, Source};
use serde_json::{Value, json};

use crate::common::postgres::Postgres;
use crate::common::sns::{alarm as sns_alarm, captured_delivery, topic};
use crate::common::{Fleet, Moto, TestApp, config_text, unique};

/// The approver's token of the test's config.
const APPROVER: &str = "migration-approver-token-0123456789";

/// What the previous release left under way, as it wrote it.
const FIXTURE: &str = include_str!("../fixtures/previous_release.json");

#[tokio::test]
async fn a_sqlite_store_of_the_previous_release_opens_and_what_it_left_under_way_completes() {
    previous_release_store(None).await;
}

#[tokio::test]
async fn a_postgres_store_of_the_previous_release_opens_and_what_it_left_under_way_completes() {
    previous_release_store(Some(Postgres::fresh().await)).await;
}

/// One balancer of the test: its name, its InService instances and its stopped one.
struct Balancer {
    name: String,
    good: Vec<String>,
    bad: String,
}

impl Balancer {
    /// A balancer of two healthy instances and a stopped one, as the fixture was captured with.
    async fn new(fleet: &Fleet, prefix: &str) -> Self {
        let name = unique(prefix);
        let (good, bad) = fleet.balancer_with(&name, 2, 1).await;
        Self {
            name,
            good,
            bad: bad[0].clone(),
        }
    }

    /// The fixture's placeholders of the balancer captured as `captured` replaced by this one.
    fn fill(&self, text: &str, captured: &str) -> String {
        text.replace(&format!("@{captured}@"), &self.name)
            .replace(&format!("@{captured}_BAD@"), &self.bad)
            .replace(&format!("@{captured}_GOOD_0@"), &self.good[0])
            .replace(&format!("@{captured}_GOOD_1@"), &self.good[1])
    }
}

async fn previous_release_store(postgres: Option<Postgres>) {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let held = Balancer::new(&fleet, "migrated-held").await;
    let ladder = Balancer::new(&fleet, "migrated-ladder").await;
    let replaced = Balancer::new(&fleet, "migrated-replace").await;
    let in_flight = Balancer::new(&fleet, "migrated-in-flight").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let topic_arn = topic(&fleet, &unique("migrated-alarms")).await;
    let text = config(
        &moto.endpoint,
        &db,
        [&held, &ladder, &replaced, &in_flight],
        &topic_arn,
    );
    let (text, url) = match &postgres {
        Some(postgres) => (postgres.config(&text), postgres.url.clone()),
        None => (text, format!("sqlite://{}", db.display())),
    };

    // The rows the previous release left, with this test's fleet in them.
    let mut fixture = FIXTURE.to_owned();
    for (balancer, captured) in [(&held, "HELD"), (&ladder, "LADDER"), (&replaced, "REPLACE")] {
        fixture = balancer.fill(&fixture, captured);
    }
    let rows: Value = serde_json::from_str(&fixture).unwrap();
    let in_flight_rows: Value = serde_json::from_str(&in_flight.fill(FIXTURE, "REPLACE")).unwrap();
    let alarm = captured_delivery(&fleet, &topic_arn, &sns_alarm(&in_flight.name, "ALARM")).await;
    let dead = write_previous_release(&url, &rows, &in_flight_rows["decision"], &alarm).await;

    let app = TestApp::spawn_with_config(dir, &text).await;

    // Both checks run as this release's one check, each once.
    let replace_run = rows["replacement_check"]["run"].as_str().unwrap();
    let ladder_run = rows["reboot_check"]["run"].as_str().unwrap();
    let replacement = check_of(&app, "recovery", replace_run).await;
    assert_eq!(replacement.target.as_deref(), Some(replaced.name.as_str()));
    assert!(
        [Outcome::Recovered, Outcome::NotRecovered].contains(&replacement.outcome),
        "{replacement:?}"
    );
    let reboot = check_of(&app, "ladder", ladder_run).await;
    assert_eq!(reboot.outcome, Outcome::NotRecovered, "{reboot:?}");
    assert_eq!(reboot.detail["ladder"]["still_down"], json!([ladder.bad]));
    // The instance the reboot did not fix goes to the ladder's next step, a replacement.
    let next = reboot.detail["next"]["run"]
        .as_str()
        .expect("the next step ran");
    let next = app.audit.get(next).await.unwrap().unwrap();
    assert_eq!(
        next.detail["answer"]["terminated-instance-ids"],
        json!([ladder.bad])
    );

    // The held approval shows what it would do, and its approval acts on it.
    let approval = rows["approval"]["id"].as_str().unwrap();
    let stored = app.audit.approval(approval).await.unwrap().unwrap();
    let would = reflex::evidence::WouldDo::of(&stored.body["evidence"]);
    assert_eq!(
        (would.verb.as_str(), would.instances),
        ("replace", vec![held.bad.clone()])
    );
    let path = format!("/admin/approvals/{approval}/approve");
    let (status, voted) = app.post(&path, Some(APPROVER), "{}".to_owned()).await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(
        voted["summary"]["terminated-instance-ids"],
        json!([held.bad])
    );
    assert!(fleet.none_terminated(&held.good).await);

    // The alarm's redelivery takes over the decision in flight and finishes it.
    let (status, answer) = app.post_sns(alarm.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["terminated-instance-ids"], json!([in_flight.bad]));
    let run = answer["audit-id"].as_str().unwrap();
    let run = app.audit.get(run).await.unwrap().unwrap();
    assert_eq!(run.detail["takeover"]["of"], dead.as_str(), "{run:?}");

    // Nothing is left under way, and the chain holds across both releases' rows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .audit
        .jobs_waiting()
        .await
        .unwrap()
        .iter()
        .all(|(kind, _)| {
            !["recovery-check", "ladder-check", "approval-act"].contains(&kind.as_str())
        })
    {
        assert!(
            Instant::now() < deadline,
            "a previous release's job is left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.audit.verify().await.unwrap().is_ok());
    app.stop().await;
}

/// The config of the four targets (the held one in approve mode, the ladder's rebooting first), with alarms
/// from `topic_arn`.
fn config(
    endpoint: &str,
    db: &std::path::Path,
    balancers: [&Balancer; 4],
    topic_arn: &str,
) -> String {
    let [held, ladder, replaced, in_flight] = balancers;
    let remediation = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 1\n\
                       reboot_verify_secs = 1\nmax_removed_fraction_per_hour = 1.0\n\
                       max_unhealthy_fraction = 0.9\n";
    let mut text = config_text(
        endpoint,
        db,
        &[&replaced.name, &in_flight.name],
        remediation,
    );
    text.push_str(&format!(
        "\n[[targets]]\nload_balancer = \"{}\"\nmode = \"approve\"\n\
         \n[[targets]]\nload_balancer = \"{}\"\nladder = [\"reboot\", \"replace\"]\n\
         \n[approvals]\ntokens = [\"{APPROVER}\"]\n\
         \n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n",
        held.name, ladder.name
    ));
    text
}

/// Writes into the store at `url` what the previous release left: its jobs and held approval as they are in
/// `rows`, and `decision`, the intent of a run whose process died while acting on the SNS delivery `alarm`
/// (its claim held by a process that is gone). The dead run's audit id.
async fn write_previous_release(url: &str, rows: &Value, decision: &Value, alarm: &[u8]) -> String {
    let (store, writer) = AuditStore::open(url).await.unwrap();
    let mut intent = RequestMeta::new(Source::Sns, None);
    intent.target = Some(decision["target"].as_str().unwrap().to_owned());
    intent.place = Some(("123456789012".to_owned(), "us-east-1".to_owned()));
    let dead = intent.id.clone();
    let body = decision["body"]
        .as_str()
        .unwrap()
        .replace("@REPLACE_RUN@", &dead);
    let record: AuditRecord = intent.into_record(Outcome::Acting, 0, None, 1);
    assert!(store.put_intent(record, body).await.unwrap().is_none());
    drop(store);
    writer.finish().await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for job in rows["jobs"].as_array().unwrap() {
        sqlx::query(
            "INSERT INTO jobs (id, kind, dedup_key, due_ms, payload, attempts) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(job["id"].as_str().unwrap())
        .bind(job["kind"].as_str().unwrap())
        .bind(job["dedup_key"].as_str())
        .bind(now + job["due_in_ms"].as_i64().unwrap())
        .bind(job["payload"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    }
    let approval = &rows["approval"];
    sqlx::query(
        "INSERT INTO approvals (id, account, region, target, state, required, approvers, created_ms, \
         expires_ms, body) VALUES ($1, $2, $3, $4, 'pending', $5, '[]', $6, $7, $8)",
    )
    .bind(approval["id"].as_str().unwrap())
    .bind(approval["account"].as_str().unwrap())
    .bind(approval["region"].as_str().unwrap())
    .bind(approval["target"].as_str().unwrap())
    .bind(approval["required"].as_i64().unwrap())
    .bind(now)
    .bind(now + 3_600_000)
    .bind(approval["body"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let key = reflex::sns::Unverified::parse(alarm)
        .unwrap()
        .delivery_key();
    sqlx::query("INSERT INTO deliveries (key, audit_id, at_ms, owner) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(dead.as_str())
        .bind(now)
        .bind("a-process-that-is-gone")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    dead
}

/// Waits (up to 30 s) for the record of the check of `run`, whose detail names it under `key`.
async fn check_of(app: &TestApp, key: &str, run: &str) -> AuditRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = app.audit_records().await.into_iter().find(|record| {
            record.source == Source::RecoveryCheck && record.detail[key]["run"] == run
        });
        if let Some(record) = found {
            return record;
        }
        assert!(Instant::now() < deadline, "the check of {run} never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
