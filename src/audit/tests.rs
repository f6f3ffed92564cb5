//! The store against a real SQLite file and a real PostgreSQL database (every case runs on both): group
//! commit, replacement of a record by id, cooldown reads, the claim-or-replay primitive, leases.

use std::time::Duration;

use bytes::Bytes;
use time::OffsetDateTime;

use super::*;

/// The account and region of the test's targets.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// The identity of the test's target `name`.
fn id(name: &str) -> crate::target::TargetId {
    crate::target::TargetId::new(
        ACCOUNT,
        REGION,
        crate::target::TargetKind::LoadBalancer,
        name,
    )
}

fn record(id: &str, target: &str, acted: u32) -> AuditRecord {
    AuditRecord {
        account: Some(ACCOUNT.into()),
        region: Some(REGION.into()),
        id: id.into(),
        at: OffsetDateTime::now_utc(),
        source: Source::Manual,
        caller: Some("127.0.0.1:1".into()),
        auth: Auth::Passed,
        target: Some(target.into()),
        outcome: Outcome::Completed,
        status: 200,
        error: None,
        dry_run: false,
        acted,
        duration_ms: 3,
        acted_at: None,
        detail: serde_json::json!({"k": "v"}),
    }
}

/// A store of its own for one test: a SQLite file in a temporary folder, or a fresh PostgreSQL database
/// (dropped at the end) on the server at `REFLEX_TEST_POSTGRES_URL` (default `127.0.0.1:5432`, trust auth).
struct TestDb {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(#[allow(dead_code)] tempfile::TempDir),
    Database { admin: String, name: String },
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}", dir.path().join("a.db").display()),
            cleanup: Cleanup::Folder(dir),
        }
    }

    async fn postgres() -> Self {
        use sqlx::{Connection as _, Executor as _};
        let admin = std::env::var("REFLEX_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("reflex_unit_{}", super::next_id().to_lowercase());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL at REFLEX_TEST_POSTGRES_URL (scripts/setup-test-deps starts one)");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            cleanup: Cleanup::Database { admin, name },
        }
    }

    async fn open(&self) -> (AuditStore, WriterTask) {
        AuditStore::open(&self.url).await.unwrap()
    }

    /// A connection to the store with only its first `count` migrations run: the schema of an earlier
    /// release, for rows as that release wrote them.
    async fn at_migration(&self, count: usize) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let full = if self.url.starts_with("postgres") {
            sqlx::migrate!("migrations/postgres")
        } else {
            sqlx::migrate!("migrations/sqlite")
        };
        let earlier = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(full.migrations[..count].to_vec()),
            ..full
        };
        let url = if self.url.starts_with("sqlite") {
            format!("{}?mode=rwc", self.url)
        } else {
            self.url.clone()
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        earlier.run(&mut conn).await.unwrap();
        conn
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Database { admin, name } = &self.cleanup {
            let (admin, name) = (admin.clone(), name.clone());
            let _ = std::thread::spawn(move || {
                use sqlx::{Connection as _, Executor as _};
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs each listed case once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::TestDb::sqlite().await).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::TestDb::postgres().await).await
            })*
        }
    };
}

/// The identity of the instance `id` in the test's account and `region`.
fn instance(id: &str, region: &str) -> crate::target::TargetId {
    crate::target::TargetId::new(ACCOUNT, region, crate::target::TargetKind::Instance, id)
}

/// An instance paused or silenced on its own is in the brakes of every target of its account and region, a
/// pause winning over a silence, and is no brake on the target itself; its rows show it as `instance/ID`.
async fn an_instances_own_brakes_hold_it_back_in_its_place_only_and_stop_no_target(db: TestDb) {
    let (store, _writer) = db.open().await;
    let hour = Duration::from_secs(3600);
    store
        .pause(Scope::Target(&instance("i-0aaa1111", REGION)), "forensics")
        .await
        .unwrap();
    for silenced in ["i-0aaa1111", "i-0bbb2222"] {
        store
            .silence(
                Scope::Target(&instance(silenced, REGION)),
                "deploy",
                "ops",
                hour,
            )
            .await
            .unwrap();
    }
    store
        .pause(
            Scope::Target(&instance("i-0ccc3333", "eu-west-1")),
            "elsewhere",
        )
        .await
        .unwrap();
    let brakes = store.brakes_of(&id("web")).await.unwrap();
    assert!(!brakes.any(), "no brake on the target itself: {brakes:?}");
    assert_eq!(
        brakes.instances.into_iter().collect::<Vec<_>>(),
        [
            ("i-0aaa1111".to_owned(), InstanceBrake::Paused),
            ("i-0bbb2222".to_owned(), InstanceBrake::Silenced),
        ]
    );
    let pauses = store.pauses().await.unwrap();
    assert!(
        pauses
            .iter()
            .any(|p| p.target.as_deref() == Some("instance/i-0aaa1111"))
    );
    assert!(
        store
            .resume(Scope::Target(&instance("i-0aaa1111", REGION)))
            .await
            .unwrap()
    );
    let brakes = store.brakes_of(&id("web")).await.unwrap();
    assert_eq!(
        brakes.instances.get("i-0aaa1111"),
        Some(&InstanceBrake::Silenced),
        "its silence still holds once its pause is lifted"
    );
}

/// A store as the release before targets had accounts left it (migrations 1 to 6), with a chained record, a
/// breaker, a pause, a lease and a recovery check in it; opened now, every row is the home's and the chain
/// still verifies.
async fn a_store_of_the_previous_release_opens_and_its_rows_become_the_homes(db: TestDb) {
    {
        let mut conn = db.at_migration(6).await;
        for sql in [
            "INSERT INTO audit_entries (seq, id, at_ms, source, auth, target, outcome, status, dry_run, acted, \
             duration_ms, detail, acted_ms) VALUES (1, 'OLD', 1000, 'manual', 'passed', 'web', 'completed', 200, 0, \
             1, 1, '{}', 1000)",
            "INSERT INTO breakers (target, failures, open_reason, opened_ms) VALUES ('web', 0, 'budget', 1000)",
            "INSERT INTO pauses (target, reason, at_ms) VALUES ('api', 'deploy', 1000)",
            "INSERT INTO pauses (target, reason, at_ms) VALUES ('*', 'incident', 1000)",
            "INSERT INTO target_leases (target, owner, audit_id, expires_ms) VALUES ('web', 'gone', 'R0', 1)",
            "INSERT INTO recovery_checks (run_id, target, due_ms, expected_in_service) VALUES ('OLD', 'web', 1, 4)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
    let (store, writer) = db.open().await;
    let home = Home {
        account: ACCOUNT.into(),
        region: REGION.into(),
    };
    assert_eq!(store.settle_home(home.clone()).await.unwrap(), home);
    let old = store.get("OLD").await.unwrap().unwrap();
    assert_eq!(
        (old.account.as_deref(), old.region.as_deref()),
        (Some(ACCOUNT), Some(REGION))
    );
    assert!(
        store
            .last_action(&id("web"), &[])
            .await
            .unwrap()
            .at
            .is_some(),
        "its cooldown still counts"
    );
    let breakers = store.breakers().await.unwrap();
    assert_eq!(
        (breakers[0].account.as_str(), breakers[0].region.as_str()),
        (ACCOUNT, REGION)
    );
    let brakes = store.brakes_of(&id("web")).await.unwrap();
    assert_eq!(brakes.breaker.unwrap().reason, "budget");
    assert_eq!(
        brakes.pause.unwrap().reason,
        "incident",
        "the pause of everything stays everything's"
    );
    let pauses = store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 2);
    assert_eq!(pauses[1].account.as_deref(), Some(ACCOUNT));
    assert!(store.resume(Scope::Target(&id("api"))).await.unwrap());
    assert!(
        store
            .take_lease(Lease::Target(&id("web")), "R1", Duration::ZERO)
            .await
            .unwrap(),
        "the dead holder's lease is taken"
    );
    assert_eq!(
        store.jobs_waiting().await.unwrap(),
        [("recovery-check".to_owned(), 1)]
    );
    let job = store.claim_job().await.unwrap().unwrap();
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!(payload["target"], "web");
    assert_eq!(payload["expected-in-service"], 4);
    store.put(record("NEW", "web", 0)).await.unwrap();
    let verified = store.verify().await.unwrap().unwrap();
    assert_eq!(
        verified.entries, 2,
        "the old entry kept its hash and the new one chains on"
    );
    // Another process started with other credentials keeps the recorded home.
    let elsewhere = Home {
        account: "999999999999".into(),
        region: REGION.into(),
    };
    assert_eq!(store.settle_home(elsewhere).await.unwrap(), home);
    drop(store);
    writer.finish().await;
}

/// The same balancer name in two accounts is two targets: cooldowns, breakers, pauses, budgets and leases are
/// kept apart.
async fn the_same_name_in_two_accounts_keeps_everything_apart(db: TestDb) {
    let (store, writer) = db.open().await;
    let a = id("web");
    let b = crate::target::TargetId::new(
        "222222222222",
        REGION,
        crate::target::TargetKind::LoadBalancer,
        "web",
    );
    let mut acted = record("A1", "web", 1);
    acted.acted_at = Some(OffsetDateTime::now_utc());
    store.put(acted).await.unwrap();
    assert!(store.last_action(&a, &[]).await.unwrap().at.is_some());
    assert_eq!(
        store.last_action(&b, &[]).await.unwrap().at,
        None,
        "no cooldown in the other account"
    );
    let hour = OffsetDateTime::now_utc() - time::Duration::HOUR;
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(store.acted_between(Some(&a), hour, now).await.unwrap(), 1);
    assert_eq!(store.acted_between(Some(&b), hour, now).await.unwrap(), 0);
    assert_eq!(
        store.acted_between(None, hour, now).await.unwrap(),
        1,
        "the global budget counts both"
    );
    assert!(store.trip_breaker(&a, "budget").await.unwrap());
    assert!(store.brakes_of(&b).await.unwrap().breaker.is_none());
    store.pause(Scope::Target(&b), "deploy").await.unwrap();
    assert!(store.brakes_of(&a).await.unwrap().pause.is_none());
    assert_eq!(
        store
            .brakes_of(&b)
            .await
            .unwrap()
            .pause
            .unwrap()
            .account
            .as_deref(),
        Some("222222222222")
    );
    let short = Duration::ZERO;
    assert!(
        store
            .take_lease(Lease::Target(&a), "R1", short)
            .await
            .unwrap()
    );
    let (other, other_writer) = db.open().await;
    assert!(
        !other
            .take_lease(Lease::Target(&a), "R2", short)
            .await
            .unwrap()
    );
    assert!(
        other
            .take_lease(Lease::Target(&b), "R2", short)
            .await
            .unwrap(),
        "the other account's lease is free"
    );
    drop((store, other));
    writer.finish().await;
    other_writer.finish().await;
}

on_both_stores!(
    a_store_of_the_previous_release_opens_and_its_rows_become_the_homes,
    an_instances_own_brakes_hold_it_back_in_its_place_only_and_stop_no_target,
    the_same_name_in_two_accounts_keeps_everything_apart,
    concurrent_puts_are_all_committed_and_listed_newest_first,
    a_put_with_the_same_id_replaces_the_outcome_and_drives_the_cooldown,
    a_completed_claim_is_replayed_and_a_released_one_is_claimed_again,
    a_delivery_claimed_with_its_record_is_recorded_once_and_never_over_another_claim,
    a_claim_older_than_its_window_is_taken_over,
    of_many_concurrent_claims_of_one_key_exactly_one_wins_and_the_rest_replay_its_answer,
    prune_removes_old_records_but_never_a_run_still_acting,
    the_chain_verifies_untouched_and_names_an_edit_a_removal_and_a_swap,
    a_row_appended_after_the_head_by_hand_is_tampering_and_never_adopted,
    a_process_silent_for_a_day_is_forgotten_when_the_store_opens,
    a_job_a_live_process_runs_is_never_taken_over_however_long_it_runs,
    an_unsettled_claim_of_a_dead_process_is_taken_over_and_names_the_dead_attempt,
    one_process_at_a_time_holds_a_target_lease_until_its_run_records_its_end,
    the_cooldown_counts_from_when_a_run_acted_and_can_leave_one_run_out,
    budgets_count_real_runs_in_their_window_at_a_chosen_clock,
    a_breaker_opens_once_and_stays_open_for_every_process_until_reset,
    a_job_is_claimed_by_one_process_runs_once_and_is_retried_or_taken_over,
    a_held_record_counts_as_written_once_its_final_version_is_in_the_chain,
    the_runs_only_search_leaves_access_records_and_suppressed_summaries_out,
    a_held_decision_counts_each_approver_once_and_closes_once,
    a_targets_health_points_are_its_readings_in_the_range_oldest_first,
    an_episode_reads_back_as_its_steps_in_order_and_the_relapse_memory_marks_once,
    records_are_grouped_per_period_source_and_outcome_for_one_target_or_all,
    a_runs_check_is_found_by_its_run_whether_recorded_before_the_index_or_after,
    a_targets_decisions_since_a_time_are_read_newest_first,
);

/// A store as the previous release left it (migrations 1 to 15) with two check records: opened now, each
/// run's check is found through the index the new migration carried them over into. A check's mention of the
/// next step's run is no check of that run, and a record that is no check is none either. A check written
/// now is found too, the newest first.
async fn a_runs_check_is_found_by_its_run_whether_recorded_before_the_index_or_after(db: TestDb) {
    {
        let mut conn = db.at_migration(15).await;
        for (seq, id, source, detail) in [
            (
                1,
                "C1",
                "recovery-check",
                r#"{"recovery":{"run":"R1","expected_in_service":3},"in_service":3}"#,
            ),
            (
                2,
                "C2",
                "recovery-check",
                r#"{"ladder":{"run":"R2","still_down":["i-1"]},"next":{"run":"R3"}}"#,
            ),
            (3, "M1", "manual", r#"{"recovery":{"run":"R4"}}"#),
        ] {
            sqlx::query(
                "INSERT INTO audit_entries (seq, id, at_ms, source, auth, target, outcome, status, dry_run, \
                 acted, duration_ms, detail) VALUES ($1, $2, 1000, $3, 'passed', 'web', 'completed', 200, 0, 0, 1, $4)",
            )
            .bind(seq)
            .bind(id)
            .bind(source)
            .bind(detail)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    let (store, writer) = db.open().await;
    let check_of = |run: &'static str| {
        let store = store.clone();
        async move { store.recovery_of(run).await.unwrap().map(|check| check.id) }
    };
    assert_eq!(check_of("R1").await.as_deref(), Some("C1"));
    assert_eq!(check_of("R2").await.as_deref(), Some("C2"));
    assert_eq!(
        check_of("R3").await,
        None,
        "the next step's run is not checked by C2"
    );
    assert_eq!(check_of("R4").await, None, "a manual record is no check");
    let mut watch = record("W1", "web", 0);
    watch.source = Source::RecoveryCheck;
    watch.detail = serde_json::json!({"recovery": {"run": "R1"}, "in_service": 4});
    store.put(watch).await.unwrap();
    assert_eq!(check_of("R1").await.as_deref(), Some("W1"));
    drop(store);
    writer.finish().await;
}

async fn records_are_grouped_per_period_source_and_outcome_for_one_target_or_all(db: TestDb) {
    let (store, writer) = db.open().await;
    let now = OffsetDateTime::now_utc();
    let put = |id: &str, target: &str, acted: u32, outcome: Outcome, source: Source, ago: i64| {
        let mut record = record(id, target, acted);
        record.outcome = outcome;
        record.source = source;
        record.at = now - time::Duration::minutes(ago);
        record
    };
    for record in [
        put("A1", "web", 1, Outcome::Completed, Source::Sns, 10),
        put("A2", "web", 0, Outcome::Refused, Source::Sns, 11),
        put("A3", "web", 0, Outcome::Refused, Source::Sns, 12),
        put("A4", "api", 0, Outcome::Held, Source::Manual, 13),
        put(
            "A5",
            "web",
            0,
            Outcome::NotRecovered,
            Source::RecoveryCheck,
            14,
        ),
        put("A6", "web", 0, Outcome::Completed, Source::Sns, 15),
        put("A8", "web", 1, Outcome::Completed, Source::Sns, 60 * 30),
    ] {
        store.put(record).await.unwrap();
    }
    let mut page_view = record("A7", "web", 0);
    page_view.target = None;
    page_view.source = Source::AuditRead;
    store.put(page_view).await.unwrap();
    let since = now - time::Duration::hours(2);
    // One period holding the whole range: the groups do not depend on where midnight falls.
    let week_ms = 7 * 86_400_000;
    let mut all: Vec<(String, String, i64, i64)> = store
        .activity(None, since, week_ms)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, source, outcome, records, acted)| (source, outcome, records, acted))
        .collect();
    all.sort();
    let row = |source: &str, outcome: &str, records, acted| {
        (source.to_owned(), outcome.to_owned(), records, acted)
    };
    let expected = [
        row("manual", "held", 1, 0),
        row("recovery-check", "not-recovered", 1, 0),
        row("sns", "completed", 2, 1),
        row("sns", "refused", 2, 0),
    ];
    let periods: std::collections::BTreeSet<i64> = store
        .activity(None, since, week_ms)
        .await
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    if periods.len() == 1 {
        assert_eq!(all, expected, "the page view and the old run are left out");
    }
    let web = store
        .activity(Some(&id("web")), since, 3_600_000)
        .await
        .unwrap();
    let total: i64 = web.iter().map(|r| r.3).sum();
    assert_eq!(total, 5, "api's held run is not web's: {web:?}");
    assert!(web.iter().all(|r| r.0 % 3_600_000 == 0));
    writer.finish().await;
}

async fn an_episode_reads_back_as_its_steps_in_order_and_the_relapse_memory_marks_once(db: TestDb) {
    use super::{EpisodeWrite, Joined};
    let (store, writer) = db.open().await;
    let web = id("web");
    let step = |name: &'static str| Some(EpisodeWrite::step("E1", &web, name));
    // Written out of order, as a check commits after the next step it starts: read back by record.
    store
        .put_run(
            record("E1", "web", 1),
            None,
            Vec::new(),
            None,
            step("reboot"),
        )
        .await
        .unwrap();
    store
        .put_run(
            record("E3", "web", 1),
            None,
            Vec::new(),
            None,
            step("replace"),
        )
        .await
        .unwrap();
    let joined = Joined {
        instance_id: "i-new".into(),
        run_id: "E3".into(),
        replaced: vec!["i-old".into()],
        image_id: Some("ami-1".into()),
        launch_template: None,
    };
    let mut check = EpisodeWrite::step("E1", &web, "check");
    check.joined = vec![joined.clone()];
    store
        .put_run(record("E2", "web", 0), None, Vec::new(), None, Some(check))
        .await
        .unwrap();
    store
        .put_run(record("X1", "web", 0), None, Vec::new(), None, None)
        .await
        .unwrap();
    let (episode, steps) = store.episode_story("E3").await.unwrap().unwrap();
    assert_eq!(episode, "E1");
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s.step.as_str(), s.record_id.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("reboot", "E1"), ("check", "E2"), ("replace", "E3")]
    );
    assert!(store.episode_story("X1").await.unwrap().is_none());
    // What joined is remembered once; a relapse is marked once, with the run that found it.
    let recent = store.replacements_since(&web, 0).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].joined, joined);
    assert_eq!(recent[0].relapsed_ms, None);
    for run in ["R1", "R2"] {
        let mut relapse = EpisodeWrite::step(run, &web, "replace");
        relapse.relapsed = vec!["i-new".into()];
        store
            .put_run(record(run, "web", 1), None, Vec::new(), None, Some(relapse))
            .await
            .unwrap();
    }
    let recent = store.replacements_since(&web, 0).await.unwrap();
    assert_eq!(recent[0].relapse_run.as_deref(), Some("R1"));
    assert!(recent[0].relapsed_ms.is_some());
    assert!(
        store
            .replacements_since(&id("api"), 0)
            .await
            .unwrap()
            .is_empty()
    );
    let later = recent[0].joined_ms + 1;
    assert!(
        store
            .replacements_since(&web, later)
            .await
            .unwrap()
            .is_empty(),
        "joined before the window"
    );
    writer.finish().await;
}

async fn a_targets_health_points_are_its_readings_in_the_range_oldest_first(db: TestDb) {
    let (store, writer) = db.open().await;
    let seen = |states: &[&str]| {
        let instances: Vec<serde_json::Value> = states
            .iter()
            .map(|state| serde_json::json!({"instance_id": "i", "health": {"state": state}}))
            .collect();
        serde_json::json!({"seen": {"target": "web", "instances": instances}})
    };
    let now = OffsetDateTime::now_utc();
    let mut old = record("P1", "web", 0);
    old.at = now - time::Duration::days(2);
    old.detail = seen(&["InService", "OutOfService"]);
    let mut acted = record("P2", "web", 1);
    acted.detail = seen(&["InService", "InService", "OutOfService"]);
    let mut check = record("P3", "web", 0);
    check.detail = seen(&["InService", "InService", "InService"]);
    let mut other = record("P4", "api", 0);
    other.detail = seen(&["OutOfService"]);
    let unread = record("P5", "web", 0);
    for put in [old, acted, check, other, unread] {
        store.put(put).await.unwrap();
    }
    let day = now - time::Duration::days(1);
    let points = store.health_points(&id("web"), day, 10).await.unwrap();
    let seen: Vec<(&str, u32, u32, u32)> = points
        .iter()
        .map(|p| (p.id.as_str(), p.in_service, p.not_in_service, p.acted))
        .collect();
    assert_eq!(seen, [("P2", 2, 1, 1), ("P3", 3, 0, 0)]);
    let newest = store.health_points(&id("web"), day, 1).await.unwrap();
    assert_eq!(newest[0].id, "P3", "the newest of the range when bounded");
    drop(store);
    writer.finish().await;
}

async fn the_runs_only_search_leaves_access_records_and_suppressed_summaries_out(db: TestDb) {
    let (store, writer) = db.open().await;
    let mut login = record("A1", "web", 0);
    login.source = Source::AuditRead;
    let mut suppressed = record("A2", "web", 0);
    suppressed.outcome = Outcome::Rejected;
    suppressed.error = Some("suppressed".into());
    for put in [login, suppressed, record("A3", "web", 1)] {
        store.put(put).await.unwrap();
    }
    let ids = |records: Vec<AuditRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let runs = Filter {
        runs_only: true,
        ..Filter::default()
    };
    assert_eq!(ids(store.search(&runs, 10).await.unwrap()), ["A3"]);
    assert_eq!(
        ids(store.search(&Filter::default(), 10).await.unwrap()),
        ["A3", "A2", "A1"]
    );
    drop(store);
    writer.finish().await;
}

async fn a_held_decision_counts_each_approver_once_and_closes_once(db: TestDb) {
    let (store, writer) = db.open().await;
    let approver = |who: &str| Approver {
        who: who.into(),
        door: "api".into(),
        name: None,
        at: String::new(),
        aliases: Vec::new(),
    };
    let hold = |held: &str, ttl: time::Duration| {
        ApprovalWrite::Hold(NewApproval::new(
            held.into(),
            &id("web"),
            2,
            OffsetDateTime::now_utc() + ttl,
            serde_json::json!({"decision": {"steps": []}}),
        ))
    };
    let held = record("H1", "web", 0);
    let long = time::Duration::hours(1);
    store
        .put_run(held, None, Vec::new(), Some(hold("H1", long)), None)
        .await
        .unwrap();
    let act_after = Duration::from_secs(60);
    let first = store.approve("H1", approver("a"), act_after).await.unwrap();
    assert!(matches!(first, Vote::Counted(_)), "{first:?}");
    let again = store.approve("H1", approver("a"), act_after).await.unwrap();
    assert!(matches!(again, Vote::Again(_)), "{again:?}");
    // The same person, who an earlier release recorded as "a", approving under their name now: counted once.
    let renamed = Approver {
        aliases: vec!["a".into()],
        ..approver("person:a")
    };
    let again = store.approve("H1", renamed, act_after).await.unwrap();
    assert!(matches!(again, Vote::Again(_)), "{again:?}");
    assert_eq!(store.pending_approvals().await.unwrap().len(), 1);
    let second = store.approve("H1", approver("b"), act_after).await.unwrap();
    let Vote::Closed(closed) = second else {
        panic!("{second:?}")
    };
    assert_eq!(closed.state, ApprovalState::Approved);
    let late = store.approve("H1", approver("c"), act_after).await.unwrap();
    assert!(matches!(late, Vote::TooLate(_)), "{late:?}");
    assert!(store.pending_approvals().await.unwrap().is_empty());
    // A decision past its expiry takes no vote, and its expiry closes it once; it counts as expired.
    let short = time::Duration::milliseconds(-1);
    store
        .put_run(
            record("H2", "web", 0),
            None,
            Vec::new(),
            Some(hold("H2", short)),
            None,
        )
        .await
        .unwrap();
    let late = store.approve("H2", approver("a"), act_after).await.unwrap();
    assert!(matches!(late, Vote::TooLate(_)), "{late:?}");
    assert!(matches!(store.expire("H2").await.unwrap(), Vote::Closed(_)));
    assert!(matches!(
        store.expire("H2").await.unwrap(),
        Vote::TooLate(_)
    ));
    let mut counts: Vec<(String, i64)> = store
        .approval_counts(OffsetDateTime::now_utc() - time::Duration::days(1))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, _, _, state, n)| (state, n))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("approved".to_owned(), 1), ("expired".to_owned(), 1)]
    );
    assert!(matches!(
        store
            .approve("nope", approver("a"), act_after)
            .await
            .unwrap(),
        Vote::Unknown
    ));
    drop(store);
    writer.finish().await;
}

/// What the writer asks before writing a held record again: a commit reported failed may have landed.
async fn a_held_record_counts_as_written_once_its_final_version_is_in_the_chain(db: TestDb) {
    use sqlx::Connection as _;
    let (store, writer) = db.open().await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    assert!(!super::entries::has_final(&mut conn, "H1").await.unwrap());
    let mut intent = record("H1", "web", 1);
    intent.outcome = Outcome::Acting;
    store.put(intent).await.unwrap();
    assert!(
        !super::entries::has_final(&mut conn, "H1").await.unwrap(),
        "an intent is not the final version"
    );
    store.put(record("H1", "web", 1)).await.unwrap();
    assert!(super::entries::has_final(&mut conn, "H1").await.unwrap());
    drop(store);
    writer.finish().await;
}

async fn budgets_count_real_runs_in_their_window_at_a_chosen_clock(db: TestDb) {
    use crate::engine::budget::{Budgets, Left, usage};
    let (store, writer) = db.open().await;
    // The test's clock: a fixed moment two days ago, and runs placed around it.
    let now = OffsetDateTime::now_utc() - time::Duration::days(2);
    let at = |id: &str, target: &str, acted: u32, ago_min: i64| {
        let mut r = record(id, target, acted);
        r.at = now - time::Duration::minutes(ago_min);
        r.acted_at = Some(r.at);
        r
    };
    for r in [
        at("B1", "web", 2, 10),      // this hour
        at("B2", "web", 1, 23 * 60), // this day, not this hour
        at("B3", "web", 4, 25 * 60), // outside both
        at("B4", "api", 1, 30),      // another target, this hour
        at("B5", "web", 0, 5),       // acted on nothing
        at("B6", "web", 3, -10),     // after the clock: not yet
    ] {
        store.put(r).await.unwrap();
    }
    let mut dry = at("B7", "web", 5, 1);
    dry.dry_run = true;
    store.put(dry).await.unwrap();
    let used = usage(&store, &id("web"), now).await.unwrap();
    assert_eq!(
        (
            used.target_hour,
            used.target_day,
            used.all_hour,
            used.all_day
        ),
        (2, 3, 3, 4)
    );
    let budgets = Budgets {
        per_hour: 3,
        per_day: 3,
        all_per_hour: 10,
        all_per_day: 10,
    };
    // The per-day budget is spent although the hour has room.
    assert_eq!(Left::of(budgets, used).tightest(), ("max_acted_per_day", 0));
    // A day later by the test clock, only B6 is inside the day.
    let later = usage(&store, &id("web"), now + time::Duration::days(1))
        .await
        .unwrap();
    assert_eq!((later.target_hour, later.target_day), (0, 3));
    drop(store);
    writer.finish().await;
}

async fn a_breaker_opens_once_and_stays_open_for_every_process_until_reset(db: TestDb) {
    let (first, first_writer) = db.open().await;
    let (second, second_writer) = db.open().await;
    assert!(!first.breaker_failed(&id("web"), 2).await.unwrap());
    assert!(
        second.breaker_failed(&id("web"), 2).await.unwrap(),
        "the second failure opens it"
    );
    assert!(
        !first.breaker_failed(&id("web"), 2).await.unwrap(),
        "open already"
    );
    assert!(!first.trip_breaker(&id("web"), "again").await.unwrap());
    let open = second.brakes_of(&id("web")).await.unwrap().breaker.unwrap();
    assert_eq!(open.reason, "2 consecutive runs hit AWS errors");
    assert!(first.brakes_of(&id("api")).await.unwrap().breaker.is_none());
    assert!(second.reset_breaker(&id("web")).await.unwrap());
    assert!(first.brakes_of(&id("web")).await.unwrap().breaker.is_none());
    assert!(!first.reset_breaker(&id("web")).await.unwrap());
    assert!(
        first
            .trip_breaker(&id("web"), "budget exhausted")
            .await
            .unwrap()
    );
    // The pause and the breaker are read together.
    first.pause(Scope::Everything, "incident").await.unwrap();
    let brakes = second.brakes_of(&id("web")).await.unwrap();
    assert_eq!(brakes.pause.unwrap().reason, "incident");
    assert_eq!(brakes.breaker.unwrap().reason, "budget exhausted");
    drop((first, second));
    first_writer.finish().await;
    second_writer.finish().await;
}

fn job(kind: &'static str, key: Option<&str>, due_in_secs: i64, bounded: bool) -> NewJob {
    NewJob {
        kind,
        dedup_key: key.map(str::to_owned),
        delay_ms: due_in_secs * 1000,
        payload: format!("{{\"key\":{key:?}}}"),
        bounded,
    }
}

/// The repro: a job a live process had held for over ten minutes was taken over by another and ran twice.
/// Only a dead holder's jobs are taken over.
async fn a_job_a_live_process_runs_is_never_taken_over_however_long_it_runs(db: TestDb) {
    let (first, first_writer) = db.open().await;
    let (second, second_writer) = db.open().await;
    first
        .enqueue(vec![job("check", Some("R1"), 0, false)])
        .await
        .unwrap();
    assert!(first.claim_job().await.unwrap().is_some());
    tamper(
        &db.url,
        &["UPDATE jobs SET claimed_ms = claimed_ms - 3600000"],
    )
    .await;
    assert!(
        second.claim_job().await.unwrap().is_none(),
        "its holder is alive: an hour-old claim stays its"
    );
    drop((first, second));
    first_writer.finish().await;
    second_writer.finish().await;
}

async fn a_job_is_claimed_by_one_process_runs_once_and_is_retried_or_taken_over(db: TestDb) {
    let (first, first_writer) = db.open().await;
    let (second, second_writer) = db.open().await;
    let due = job("check", Some("R1"), -1, false);
    assert_eq!(
        first
            .enqueue(vec![
                due.clone(),
                due,
                job("check", Some("R2"), 3600, false)
            ])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        first.jobs_waiting().await.unwrap(),
        [("check".to_owned(), 2)],
        "the same key is one job"
    );
    assert!(second.any_job_due().await.unwrap());
    let (a, b) = tokio::join!(first.claim_job(), second.claim_job());
    let mut taken: Vec<_> = [(&first, a.unwrap()), (&second, b.unwrap())]
        .into_iter()
        .filter_map(|(store, job)| Some((store, job?)))
        .collect();
    assert_eq!(taken.len(), 1, "one process takes it");
    let (holder, claimed) = taken.pop().unwrap();
    assert_eq!((claimed.kind.as_str(), claimed.attempts), ("check", 1));
    assert!(claimed.payload.contains("R1"), "{}", claimed.payload);
    // Held by a live process, and R2 is not due: nothing to claim, nothing due.
    assert_eq!(second.claim_job().await.unwrap(), None);
    assert!(!first.any_job_due().await.unwrap());
    // Put back for a retry: claimed again, one attempt more.
    holder
        .retry_job(&claimed.id, Duration::ZERO, "try again".into())
        .await
        .unwrap();
    let again = second.claim_job().await.unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), again.attempts),
        (claimed.id.as_str(), 2)
    );
    // Finished with its record in one commit: it runs once.
    second
        .finish_job(record("C1", "web", 0), &again.id, Vec::new())
        .await
        .unwrap();
    assert_eq!(first.claim_job().await.unwrap(), None);
    assert!(first.get("C1").await.unwrap().is_some());
    // A job whose claimer died is taken over.
    first
        .enqueue(vec![job("check", Some("R3"), -1, false)])
        .await
        .unwrap();
    let orphan = first.claim_job().await.unwrap().unwrap();
    stop_heartbeats(&db.url).await;
    let taken_over = second.claim_job().await.unwrap().unwrap();
    assert_eq!(taken_over.id, orphan.id);
    // A bounded kind's queue drops what does not fit, and says how many.
    let many: Vec<NewJob> = (0..QUEUE_BOUND + 2)
        .map(|_| job("notify", None, 3600, true))
        .collect();
    assert_eq!(first.enqueue(many).await.unwrap(), 2);
    drop((first, second));
    first_writer.finish().await;
    second_writer.finish().await;
}

async fn concurrent_puts_are_all_committed_and_listed_newest_first(db: TestDb) {
    let (store, writer) = db.open().await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.put(record(&format!("{n:04}"), "web", 0)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let listed = store.list(500).await.unwrap();
    assert_eq!(listed.len(), 200);
    assert_eq!(listed[0].id, "0199");
    assert_eq!(listed[0].detail["k"], "v");
    assert_eq!(listed[0].source, Source::Manual);
    assert_eq!(listed[0].auth, Auth::Passed);
    drop(store);
    writer.finish().await;
}

async fn a_put_with_the_same_id_replaces_the_outcome_and_drives_the_cooldown(db: TestDb) {
    let (store, _writer) = db.open().await;
    assert_eq!(store.last_action(&id("web"), &[]).await.unwrap().at, None);
    let mut intent = record("1", "web", 2);
    intent.outcome = Outcome::Acting;
    store.put(intent).await.unwrap();
    assert!(
        store
            .last_action(&id("web"), &[])
            .await
            .unwrap()
            .at
            .is_some()
    );
    store.put(record("1", "web", 0)).await.unwrap();
    let listed = store.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].outcome, Outcome::Completed);
    assert_eq!(store.last_action(&id("web"), &[]).await.unwrap().at, None);
    assert_eq!(store.last_action(&id("other"), &[]).await.unwrap().at, None);
}

async fn a_completed_claim_is_replayed_and_a_released_one_is_claimed_again(db: TestDb) {
    let (store, _writer) = db.open().await;
    let Delivery::Claimed(key) = store.claim_delivery("k".into(), "1", None).await.unwrap() else {
        panic!("first claim must own the key");
    };
    let answer = Bytes::from_static(br#"{"duplicate":true}"#);
    store
        .put_settling(record("1", "web", 0), Some(key.complete(answer.clone())))
        .await
        .unwrap();
    match store.claim_delivery("k".into(), "2", None).await.unwrap() {
        Delivery::Replay {
            first_id,
            answer: replayed,
        } => {
            assert_eq!((first_id.as_str(), replayed), ("1", answer));
        }
        other => panic!("{other:?}"),
    }

    let Delivery::Claimed(key) = store.claim_delivery("r".into(), "3", None).await.unwrap() else {
        panic!("new key");
    };
    store
        .put_settling(record("3", "web", 0), Some(key.release()))
        .await
        .unwrap();
    assert!(matches!(
        store.claim_delivery("r".into(), "4", None).await.unwrap(),
        Delivery::Claimed(_)
    ));
}

async fn a_delivery_claimed_with_its_record_is_recorded_once_and_never_over_another_claim(
    db: TestDb,
) {
    let (store, _writer) = db.open().await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("F{n:03}");
            let answer = Bytes::from(format!("answer of {id}"));
            let won = store
                .put_first(record(&id, "web", 0), "first".into(), answer)
                .await
                .unwrap();
            won.then_some(id)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one delivery gets the key");
    let listed = store.list(100).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [winners[0].as_str()],
        "only the winner's record is written"
    );
    // A redelivery replays the winner's answer, from this process's memory and from the store.
    let (fresh, fresh_writer) = db.open().await;
    for store in [&store, &fresh] {
        match store
            .claim_delivery("first".into(), "R", None)
            .await
            .unwrap()
        {
            Delivery::Replay { first_id, answer } => {
                assert_eq!(first_id, winners[0]);
                assert_eq!(answer, Bytes::from(format!("answer of {}", winners[0])));
            }
            other => panic!("{other:?}"),
        }
    }
    // A key claimed by a delivery still being handled is not taken, and the record is not written.
    let Delivery::Claimed(_held) = store
        .claim_delivery("held".into(), "H", None)
        .await
        .unwrap()
    else {
        panic!("new key");
    };
    let won = store
        .put_first(record("L", "web", 0), "held".into(), Bytes::new())
        .await
        .unwrap();
    assert!(!won);
    assert!(store.get("L").await.unwrap().is_none());
    drop(fresh);
    fresh_writer.finish().await;
}

async fn a_claim_older_than_its_window_is_taken_over(db: TestDb) {
    let (store, _writer) = db.open().await;
    let window = Some(Duration::from_millis(50));
    assert!(matches!(
        store.claim_delivery("g".into(), "1", window).await.unwrap(),
        Delivery::Claimed(_)
    ));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(matches!(
        store.claim_delivery("g".into(), "2", window).await.unwrap(),
        Delivery::Claimed(_)
    ));
}

async fn of_many_concurrent_claims_of_one_key_exactly_one_wins_and_the_rest_replay_its_answer(
    db: TestDb,
) {
    let (store, _writer) = db.open().await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("{n:04}");
            match store
                .claim_delivery("same".into(), &id, None)
                .await
                .unwrap()
            {
                Delivery::Claimed(key) => {
                    let answer = Bytes::from(format!("first {id}"));
                    store
                        .put_settling(record(&id, "web", 0), Some(key.complete(answer)))
                        .await
                        .unwrap();
                    None
                }
                Delivery::Replay { answer, first_id } => Some((first_id, answer)),
                Delivery::InProgress { first_id } => panic!("{first_id} never answered"),
            }
        }));
    }
    let mut replays = Vec::new();
    for task in tasks {
        replays.push(task.await.unwrap());
    }
    let winners = replays.iter().filter(|r| r.is_none()).count();
    assert_eq!(winners, 1);
    let replays: Vec<_> = replays.into_iter().flatten().collect();
    assert_eq!(replays.len(), 49);
    let (first_id, answer) = &replays[0];
    assert_eq!(answer, &Bytes::from(format!("first {first_id}")));
    assert!(replays.iter().all(|r| r == &replays[0]));
}

async fn prune_removes_old_records_but_never_a_run_still_acting(db: TestDb) {
    let (store, _writer) = db.open().await;
    let mut ancient = record("0001", "web", 0);
    ancient.at = OffsetDateTime::now_utc() - time::Duration::days(100);
    let mut intent = record("0002", "web", 1);
    intent.at = OffsetDateTime::now_utc() - time::Duration::seconds(10);
    intent.outcome = Outcome::Acting;
    store.put(ancient).await.unwrap();
    store.put(intent).await.unwrap();
    store.put(record("0003", "web", 0)).await.unwrap();
    // Everything older than now, but the run still acting and what came after it stay.
    let removed = store.prune_older_than(0).await.unwrap();
    assert_eq!(removed, 1);
    let left: Vec<String> = store
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["0003", "0002"]);
    // The pruned chain still verifies, from its checkpoint.
    let verified = store.verify().await.unwrap().unwrap();
    assert_eq!((verified.from, verified.to, verified.entries), (1, 3, 2));

    // An attempt that died long ago ("acting" for 100 days) is pruned like any old record.
    let mut dead = record("0004", "web", 1);
    dead.at = OffsetDateTime::now_utc() - time::Duration::days(100);
    dead.outcome = Outcome::Acting;
    let mut finished = record("0002", "web", 1);
    finished.at = OffsetDateTime::now_utc() - time::Duration::days(99);
    store.put(finished).await.unwrap();
    store.put(dead).await.unwrap();
    let mut recent = record("0005", "web", 0);
    recent.at = OffsetDateTime::now_utc();
    store.put(recent).await.unwrap();
    assert_eq!(
        store.prune_older_than(90).await.unwrap(),
        0,
        "0003 is recent"
    );
    assert!(store.verify().await.unwrap().is_ok());
}

/// The repro: after a run that acted, a row inserted by hand after the chain's head (its id, `acted = 0`, no
/// hash) would make the run drop out of the budgets; every later open, `verify`'s own included, leaves it
/// unhashed, and verification names it.
async fn a_row_appended_after_the_head_by_hand_is_tampering_and_never_adopted(db: TestDb) {
    let (store, writer) = db.open().await;
    let mut intent = record("R1", "web", 1);
    intent.outcome = Outcome::Acting;
    store.put(intent).await.unwrap();
    store.put(record("R1", "web", 1)).await.unwrap();
    assert_eq!(store.verify().await.unwrap().unwrap().to, 2);
    drop(store);
    writer.finish().await;
    tamper(
        &db.url,
        &["INSERT INTO audit_entries (seq, id, at_ms, source, auth, target, outcome, status, dry_run, acted, \
           duration_ms, detail, account, region) \
           SELECT 3, id, at_ms + 1, source, auth, target, outcome, status, dry_run, 0, duration_ms, detail, \
           account, region FROM audit_entries WHERE seq = 2"],
    )
    .await;
    for _ in 0..2 {
        let (store, writer) = AuditStore::open(&db.url).await.unwrap();
        let broken = store.verify().await.unwrap().unwrap_err();
        assert!(
            matches!(&broken, Break::Changed { seq: 3, id } if id == "R1"),
            "{broken:?}"
        );
        drop(store);
        writer.finish().await;
    }
}

/// With `audit.retain_days = 0` nothing prunes the trail, yet the processes table must not grow with every
/// restart: a process silent for a day is forgotten at the next open; one dead an hour is kept (its claims are
/// still being taken over).
async fn a_process_silent_for_a_day_is_forgotten_when_the_store_opens(db: TestDb) {
    let (store, writer) = db.open().await;
    drop(store);
    writer.finish().await;
    let now = OffsetDateTime::now_utc();
    let ms = |ago: time::Duration| ((now - ago).unix_timestamp_nanos() / 1_000_000).to_string();
    let (old, recent) = (ms(time::Duration::days(2)), ms(time::Duration::hours(1)));
    tamper(
        &db.url,
        &[
            &format!("INSERT INTO processes (owner, started_ms, heartbeat_ms) VALUES ('old', {old}, {old})"),
            &format!(
                "INSERT INTO processes (owner, started_ms, heartbeat_ms) VALUES ('recent', {recent}, {recent})"
            ),
        ],
    )
    .await;
    let (store, writer) = db.open().await;
    drop(store);
    writer.finish().await;
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let owners: Vec<(String,)> = sqlx::query_as(
        "SELECT owner FROM processes WHERE owner IN ('old', 'recent') ORDER BY owner",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(owners, [("recent".to_owned(),)]);
}

/// The repro: the way up grouped over the whole trail on every page view. It counts a window: a record older
/// than `since` is not read.
#[tokio::test]
async fn the_way_up_counts_only_its_window() {
    let db = TestDb::sqlite().await;
    let (store, _writer) = db.open().await;
    let mut old = record("OLD", "web", 1);
    old.at = OffsetDateTime::now_utc() - time::Duration::days(40);
    store.put(old).await.unwrap();
    store.put(record("NEW", "web", 1)).await.unwrap();
    let since = OffsetDateTime::now_utc() - time::Duration::days(30);
    let counted: i64 = store
        .tally(since)
        .await
        .unwrap()
        .iter()
        .map(|row| row.5)
        .sum();
    assert_eq!(counted, 1);
    let all: i64 = store
        .tally(OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .iter()
        .map(|row| row.5)
        .sum();
    assert_eq!(all, 2);
}

/// Runs `sql` on the store at `url` by hand, as someone editing the trail would.
async fn tamper(url: &str, sql: &[&str]) {
    use sqlx::{Connection as _, Executor as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for statement in sql {
        conn.execute(*statement).await.unwrap();
    }
}

async fn the_chain_verifies_untouched_and_names_an_edit_a_removal_and_a_swap(db: TestDb) {
    let (store, writer) = db.open().await;
    for n in 1..=6 {
        let mut intent = record(&format!("R{n}"), "web", 1);
        intent.outcome = Outcome::Acting;
        store.put(intent).await.unwrap();
        store.put(record(&format!("R{n}"), "web", 1)).await.unwrap();
    }
    let verified = store.verify().await.unwrap().unwrap();
    assert_eq!((verified.entries, verified.from, verified.to), (12, 0, 12));
    // Intent and outcome are entries of their own; reads see the newest version.
    assert_eq!(store.list(100).await.unwrap().len(), 6);
    drop(store);
    writer.finish().await;

    let broken = |db: &TestDb| {
        let url = db.url.clone();
        async move {
            let (store, writer) = AuditStore::open(&url).await.unwrap();
            let result = store.verify().await.unwrap();
            drop(store);
            writer.finish().await;
            result.unwrap_err()
        }
    };
    // A swap of entries 9 and 10 (each keeps its content and hashes, they trade places).
    tamper(
        &db.url,
        &[
            "UPDATE audit_entries SET seq = -1 WHERE seq = 9",
            "UPDATE audit_entries SET seq = 9 WHERE seq = 10",
            "UPDATE audit_entries SET seq = 10 WHERE seq = -1",
        ],
    )
    .await;
    assert_eq!(
        broken(&db).await,
        Break::Reordered {
            seq: 9,
            id: "R5".into()
        }
    );
    // A removal before it: named first.
    tamper(&db.url, &["DELETE FROM audit_entries WHERE seq = 6"]).await;
    let removed = broken(&db).await;
    assert_eq!(
        removed,
        Break::Removed {
            from: 6,
            to: 6,
            id: "R4".into()
        }
    );
    assert!(removed.to_string().contains("entries 6..=6 were removed"));
    // An edit before both: an outcome turned into "no instance acted on".
    tamper(
        &db.url,
        &["UPDATE audit_entries SET acted = 0 WHERE seq = 4"],
    )
    .await;
    assert_eq!(
        broken(&db).await,
        Break::Changed {
            seq: 4,
            id: "R2".into()
        }
    );
    // The newest entry removed (nothing after it to notice): the recorded head does.
    let fresh = TestDb::sqlite().await;
    let (store, writer) = fresh.open().await;
    store.put(record("A", "web", 0)).await.unwrap();
    store.put(record("B", "web", 0)).await.unwrap();
    drop(store);
    writer.finish().await;
    tamper(&fresh.url, &["DELETE FROM audit_entries WHERE seq = 2"]).await;
    assert_eq!(broken(&fresh).await, Break::Truncated { last: 1, head: 2 });
}

/// Makes every process known to the store at `url` look dead: no heartbeat for longer than `DEAD_AFTER`.
async fn stop_heartbeats(url: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE processes SET heartbeat_ms = 0")
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn an_unsettled_claim_of_a_dead_process_is_taken_over_and_names_the_dead_attempt(db: TestDb) {
    let (first, first_writer) = db.open().await;
    let (second, second_writer) = db.open().await;
    let Delivery::Claimed(key) = first
        .claim_delivery("sns:m1".into(), "A1", None)
        .await
        .unwrap()
    else {
        panic!("the first claim wins");
    };
    assert_eq!(key.previous(), None);
    // The holder is alive: another process waits, then hears that it is still in progress.
    let busy = tokio::time::timeout(
        Duration::from_secs(30),
        second.claim_delivery("sns:m1".into(), "B1", None),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(busy, Delivery::InProgress { ref first_id } if first_id == "A1"),
        "{busy:?}"
    );
    assert!(second.stuck_claims().await.unwrap().is_empty());

    // The holder dies (killed: no clean stop, no heartbeat any more).
    drop(first);
    first_writer.abort();
    stop_heartbeats(&db.url).await;
    let stuck = second.stuck_claims().await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(
        (stuck[0].key.as_str(), stuck[0].audit_id.as_str()),
        ("sns:m1", "A1")
    );
    let Delivery::Claimed(key) = second
        .claim_delivery("sns:m1".into(), "B2", None)
        .await
        .unwrap()
    else {
        panic!("a dead holder's claim is taken over");
    };
    assert_eq!(key.previous(), Some("A1"));
    second
        .put_settling(record("B2", "web", 1), Some(key.complete("answer".into())))
        .await
        .unwrap();
    // Settled: a later redelivery replays it, even though its claimant's heartbeat is stale too.
    stop_heartbeats(&db.url).await;
    let replay = second
        .claim_delivery("sns:m1".into(), "B3", None)
        .await
        .unwrap();
    assert!(
        matches!(replay, Delivery::Replay { ref first_id, .. } if first_id == "B2"),
        "{replay:?}"
    );
    drop(second);
    second_writer.finish().await;
}

async fn one_process_at_a_time_holds_a_target_lease_until_its_run_records_its_end(db: TestDb) {
    let (first, first_writer) = db.open().await;
    let (second, second_writer) = db.open().await;
    let short = Duration::from_millis(300);
    assert!(
        first
            .take_lease(Lease::Target(&id("web")), "A1", short)
            .await
            .unwrap()
    );
    assert!(
        !second
            .take_lease(Lease::Target(&id("web")), "B1", short)
            .await
            .unwrap(),
        "held by a live process"
    );
    assert!(
        second
            .take_lease(Lease::Target(&id("api")), "B1", short)
            .await
            .unwrap(),
        "leases are per target"
    );
    // An intent keeps the lease; the final record gives it back.
    let mut intent = record("A1", "web", 1);
    intent.outcome = Outcome::Acting;
    first.put(intent).await.unwrap();
    assert!(
        !second
            .take_lease(Lease::Target(&id("web")), "B2", short)
            .await
            .unwrap()
    );
    // Its holder's final record gives it back; the run that waited for it is told so.
    let release = {
        let first = first.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            first.put(record("A1", "web", 1)).await.unwrap();
        })
    };
    assert_eq!(
        second
            .lease(Lease::Target(&id("web")), "B2", Duration::from_secs(5))
            .await
            .unwrap(),
        Leased::AfterWaiting
    );
    release.await.unwrap();
    assert_eq!(
        second
            .lease(Lease::Target(&id("api")), "B2", short)
            .await
            .unwrap(),
        Leased::AtOnce,
        "this process's own lease is taken at once"
    );

    // A holder that dies gives its lease up once its heartbeat is stale.
    assert!(
        first
            .take_lease(Lease::Target(&id("db")), "A2", short)
            .await
            .unwrap()
    );
    drop(first);
    first_writer.abort();
    assert!(
        !second
            .take_lease(Lease::Target(&id("db")), "B3", short)
            .await
            .unwrap()
    );
    stop_heartbeats(&db.url).await;
    assert!(
        second
            .take_lease(Lease::Target(&id("db")), "B3", short)
            .await
            .unwrap()
    );
    drop(second);
    second_writer.finish().await;
}

async fn the_cooldown_counts_from_when_a_run_acted_and_can_leave_one_run_out(db: TestDb) {
    let (store, writer) = db.open().await;
    let mut old_arrival = record("R1", "web", 1);
    old_arrival.at = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let acted = OffsetDateTime::now_utc() - Duration::from_secs(5);
    old_arrival.acted_at = Some(acted);
    store.put(old_arrival).await.unwrap();
    let last = store
        .last_action(&id("web"), &[])
        .await
        .unwrap()
        .at
        .unwrap();
    assert!(
        (last - acted).abs() < time::Duration::milliseconds(2),
        "{last} {acted}"
    );
    assert_eq!(
        store.last_action(&id("web"), &["R1"]).await.unwrap().at,
        None
    );
    drop(store);
    writer.finish().await;
}

#[tokio::test]
async fn a_store_from_before_the_chain_is_chained_once_when_opened() {
    use sqlx::Connection as _;
    let db = TestDb::sqlite().await;
    let full = sqlx::migrate!("migrations/sqlite");
    let before_chain = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(full.migrations[..3].to_vec()),
        ..full
    };
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url))
            .await
            .unwrap();
        before_chain.run(&mut conn).await.unwrap();
        for (id, at_ms) in [("OLD2", 2_000), ("OLD1", 1_000)] {
            sqlx::query(
                "INSERT INTO audit_records (id, at_ms, source, auth, outcome, status, dry_run, acted, \
                 duration_ms, detail) VALUES (?, ?, 'manual', 'passed', 'completed', 200, 0, 0, 1, '{}')",
            )
            .bind(id)
            .bind(at_ms)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    let (store, writer) = db.open().await;
    let verified = store.verify().await.unwrap().unwrap();
    assert_eq!((verified.entries, verified.to), (2, 2));
    store.put(record("NEW", "web", 0)).await.unwrap();
    let verified = store.verify().await.unwrap().unwrap();
    assert_eq!(verified.entries, 3);
    let ids: Vec<String> = store
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["OLD2", "OLD1", "NEW"]);
    drop(store);
    writer.finish().await;
}

#[test]
fn a_failed_commit_holds_run_results_and_settlements_but_not_intents_or_refused_requests() {
    use super::held::Held;
    use super::ops::{Op, Put};
    let op = |put: Put| Op::Put(Box::new(put));
    assert!(Held::keeps(&op(Put::record(record("R1", "web", 1)))));
    let mut intent = record("R2", "web", 1);
    intent.outcome = Outcome::Acting;
    assert!(!Held::keeps(&op(Put::record(intent.clone()))));
    let mut untargeted = record("R3", "web", 0);
    untargeted.target = None;
    assert!(!Held::keeps(&op(Put::record(untargeted.clone()))));
    let released = Put {
        settle: Some(DeliveryUpdate::Release {
            key: "sns:1".into(),
        }),
        ..Put::record(untargeted.clone())
    };
    assert!(Held::keeps(&op(released)));
    let first = Put {
        settle: Some(DeliveryUpdate::First {
            key: "sns:2".into(),
            answer: Bytes::from_static(b"{}"),
        }),
        ..Put::record(untargeted)
    };
    assert!(!Held::keeps(&op(first)), "its request is retried whole");
    assert!(!Held::keeps(&Op::Probe));

    let mut held = Held::new();
    held.hold(op(Put::record(record("R1", "web", 1))), "connection lost");
    assert_eq!(held.len(), 1);
    let (pending, _) = held.take().unwrap();
    let Op::Put(put) = &pending.op else {
        panic!("a put")
    };
    assert_eq!(
        put.record.detail["committed_late"]["first_commit_failed"],
        "connection lost"
    );
    assert!(held.is_empty());
}

/// What an `[[actions]]` entry's limits count from: the decisions of one target's acting runs since a time.
async fn a_targets_decisions_since_a_time_are_read_newest_first(db: TestDb) {
    let (store, writer) = db.open().await;
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    for (run, target) in [("D1", "web"), ("D2", "api"), ("D3", "web")] {
        let mut intent = record(run, target, 1);
        intent.outcome = Outcome::Acting;
        let body = format!("{{\"run-id\":\"{run}\"}}");
        store.put_intent(intent, body).await.unwrap();
    }
    let read = store
        .decisions_since(&id("web"), millis(before))
        .await
        .unwrap();
    let runs: Vec<&str> = read.iter().map(|(run, ..)| run.as_str()).collect();
    assert_eq!(runs, ["D3", "D1"]);
    assert!(read[0].1 >= read[1].1 && read[1].1 >= millis(before));
    assert_eq!(read[0].2, "{\"run-id\":\"D3\"}");
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    assert!(
        store
            .decisions_since(&id("web"), millis(later))
            .await
            .unwrap()
            .is_empty()
    );
    drop(store);
    writer.finish().await;
}
