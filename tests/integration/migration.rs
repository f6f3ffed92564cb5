//! A store the previous release wrote opens in this one (which migrates it), and what it left under way
//! completes, on SQLite and on PostgreSQL: a replacement's check and a reboot's check (jobs of kinds this
//! release no longer schedules), a held approval (whose decision and evidence name no action kind; its
//! approval cancels its expiry job), and a decision in flight when its process died (taken over by the alarm's redelivery). The rows
//! are the ones the previous release wrote (`tests/fixtures/previous_release.json`, captured from release
//! 24b673a), with this test's balancers and instances in place of those they were captured with, written into
//! that release's schema.

use std::time::{Duration, Instant};

use reflex::audit::{AuditRecord, Outcome, RequestMeta, Source};
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
    let balancers = [&held, &ladder, &replaced, &in_flight];
    let text = config(&moto.endpoint, &db, balancers, &topic_arn);
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
    checks_complete(&app, &rows, &replaced, &ladder).await;
    held_approval_acts(&app, &fleet, &rows, &held).await;

    // The alarm's redelivery takes over the decision in flight and finishes it.
    let (status, answer) = app.post_sns(alarm.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["terminated-instance-ids"], json!([in_flight.bad]));
    let run = answer["audit-id"].as_str().unwrap();
    let run = app.audit.get(run).await.unwrap().unwrap();
    assert_eq!(run.detail["takeover"]["of"], dead.as_str(), "{run:?}");

    // No job of the previous release is left (the approval cancelled its expiry), and the chain holds.
    let waiting = app.audit.jobs_waiting().await.unwrap();
    assert!(
        waiting.iter().all(|(kind, _)| ![
            "recovery-check",
            "ladder-check",
            "approval-act",
            "approval-expire"
        ]
        .contains(&kind.as_str())),
        "{waiting:?}"
    );
    assert!(app.audit.verify().await.unwrap().is_ok());
    app.stop().await;
}

/// The replacement's check and the reboot's check (jobs of kinds this release no longer schedules) each run
/// once as this release's one check, judged as their step's kind declares, and each run's page finds its check.
async fn checks_complete(app: &TestApp, rows: &Value, replaced: &Balancer, ladder: &Balancer) {
    let replace_run = rows["replacement_check"]["run"].as_str().unwrap();
    let ladder_run = rows["reboot_check"]["run"].as_str().unwrap();
    // The replaced instance is still there and stopped (this test's fleet replaces nothing): short, escalated.
    let replacement = check_of(app, "recovery", replace_run).await;
    assert_eq!(replacement.target.as_deref(), Some(replaced.name.as_str()));
    assert_eq!(
        replacement.outcome,
        Outcome::NotRecovered,
        "{replacement:?}"
    );
    assert_eq!(replacement.detail["recovery"]["expected_in_service"], 3);
    assert_eq!(replacement.detail["breaker"]["tripped"], "escalated");
    let reboot = check_of(app, "ladder", ladder_run).await;
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
    for (run, check) in [(replace_run, &replacement), (ladder_run, &reboot)] {
        let found = app.audit.recovery_of(run).await.unwrap();
        assert_eq!(found.map(|found| found.id), Some(check.id.clone()));
        let checks = app
            .audit_records()
            .await
            .into_iter()
            .filter(|record| {
                record.source == Source::RecoveryCheck
                    && reflex::detail::checked_run(&record.detail) == Some(run)
            })
            .count();
        assert_eq!(checks, 1, "the check of {run} ran once");
    }
}

/// The held approval (whose decision and evidence name no action kind) shows what it would do, and its
/// approval acts on it (and cancels the previous release's expiry job of it).
async fn held_approval_acts(app: &TestApp, fleet: &Fleet, rows: &Value, held: &Balancer) {
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

/// The migrations of the previous release's schema (this release adds the ones after them).
const PREVIOUS_RELEASE_MIGRATIONS: usize = 15;

/// Writes into a new store at `url`, in the previous release's schema, what that release left: its jobs and
/// held approval as they are in `rows`, and `decision`, the decision of a run whose process died while acting
/// on the SNS delivery `alarm` (its claim held by a process that is gone). The dead run's audit id.
async fn write_previous_release(url: &str, rows: &Value, decision: &Value, alarm: &[u8]) -> String {
    sqlx::any::install_default_drivers();
    let full = if url.starts_with("postgres") {
        sqlx::migrate!("migrations/postgres")
    } else {
        sqlx::migrate!("migrations/sqlite")
    };
    let previous_release = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            full.migrations[..PREVIOUS_RELEASE_MIGRATIONS].to_vec(),
        ),
        ..full
    };
    let connect = if url.starts_with("sqlite") {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = sqlx::AnyPool::connect(&connect).await.unwrap();
    previous_release.run(&pool).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let dead = RequestMeta::new(Source::Sns, None).id;
    sqlx::query(
        "INSERT INTO decisions (run_id, target, decided_ms, steps, body, account, region) \
         VALUES ($1, $2, $3, 1, $4, '123456789012', 'us-east-1')",
    )
    .bind(dead.as_str())
    .bind(decision["target"].as_str().unwrap())
    .bind(now)
    .bind(
        decision["body"]
            .as_str()
            .unwrap()
            .replace("@REPLACE_RUN@", &dead),
    )
    .execute(&pool)
    .await
    .unwrap();
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
