//! The engine's own paths, with a fake fleet and a real (temporary) audit store: single flight per target,
//! `Busy`, the intent written before any write, failed writes reported, and AWS failures classified.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::port::{
    BoxFuture, Ec2Facts, FailureKind, FleetError, GroupChange, HealthState, InstanceView, Snapshot,
    TargetGroupInfo, TargetRef,
};
use super::*;
use crate::audit::{Auth, Outcome, Scope, Source, WriterTask};
use crate::notify::Notifier;

/// A fleet whose answers the test sets, and which notes what the engine did to it.
#[derive(Debug, Default)]
struct FakeFleet {
    /// A snapshot error to answer instead of the fleet.
    snapshot_error: Option<FleetError>,
    /// This many snapshots fail (transiently) before the fleet answers again.
    failing_snapshots: AtomicUsize,
    /// Instances whose TerminateInstances (and RebootInstances) fails.
    failing: HashSet<String>,
    /// Snapshots of this target wait until `release` is notified.
    hold: Option<(String, Notify)>,
    /// Snapshots taken (each one is a DescribeInstanceHealth, or DescribeTargetHealth).
    snapshots: AtomicUsize,
    /// Snapshots in flight now, and the most seen at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// For each TerminateInstances: whether the store already held the run's `acting` record.
    intent_seen: StdMutex<Vec<bool>>,
    store: StdMutex<Option<AuditStore>>,
    /// Target groups by name (`web-tg` is an instance group unless the test says otherwise).
    target_groups: HashMap<String, TargetGroupInfo>,
    /// Instance → Auto Scaling group.
    groups: HashMap<String, String>,
    /// DescribeAutoScalingInstances calls made.
    group_calls: AtomicUsize,
    /// What was done to which instance: ("terminate" | "mark-unhealthy", id).
    done: StdMutex<Vec<(&'static str, String)>>,
    /// EC2 states other than `running`, by instance.
    ec2_states: HashMap<String, String>,
    /// CloudWatch alarms by name, as a test sets them.
    alarms: StdMutex<HashMap<String, super::port::AlarmState>>,
    /// Each snapshot pauses everything (or, with `false`, opens the target's breaker) while the run reads.
    brake_while_reading: Option<bool>,
    /// The first TerminateInstances pauses everything once it is answered.
    pause_after_first_terminate: bool,
    /// The first TerminateInstances makes the store's brakes unreadable (its `silences` table renamed away)
    /// once it is answered, as a database restarting between two acts would.
    unreadable_brakes_after_first_terminate: bool,
    /// The store's URL, for faults injected below the store.
    store_url: StdMutex<Option<String>>,
    /// A wider fleet instead of four healthy and `i-bad`: this many InService (`i-ok1`...) and this many
    /// OutOfService (`i-bad1`...), whose terminated instances EC2 shows `terminated` afterwards.
    wide: Option<(usize, usize)>,
    /// Instances of the wide fleet no longer registered with the target.
    deregistered: HashSet<String>,
    /// Availability Zones by instance (none: EC2 says no zone).
    zones: HashMap<String, String>,
    /// What DescribeAutoScalingGroups and DescribeScalingActivities show of each group (none: no change).
    changes: Vec<GroupChange>,
    /// Reading the groups' changes fails so.
    changes_fail: Option<FleetError>,
    /// Group-change reads made.
    change_calls: AtomicUsize,
}

const TG_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef";

fn instance_group(target_type: &str) -> TargetGroupInfo {
    TargetGroupInfo {
        arn: TG_ARN.into(),
        target_type: target_type.into(),
        load_balancers: vec!["app/web-alb/1".into()],
    }
}

impl FakeFleet {
    /// Renames a table of the store's database behind the store's back (a fault for the store to meet).
    async fn rename_table(&self, from: &str, to: &str) {
        use sqlx::Connection as _;
        let url = self.store_url.lock().unwrap().clone().unwrap();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    fn with_target_group(target_type: &str) -> Self {
        Self {
            target_groups: HashMap::from([("web-tg".to_owned(), instance_group(target_type))]),
            ..Self::default()
        }
    }
}

impl FakeFleet {
    fn healthy_but_one(&self, target: &str) -> Snapshot {
        let old = OffsetDateTime::now_utc() - Duration::from_secs(86_400);
        let group = target == TG_ARN;
        let instance = |id: String, state: HealthState| InstanceView {
            health: match (state, group) {
                (HealthState::InService, false) => super::health::classic("InService", None, None),
                (_, false) => super::health::classic("OutOfService", Some("Instance"), None),
                (HealthState::InService, true) => {
                    super::health::target_group("healthy", None, None)
                }
                (_, true) => super::health::target_group(
                    "unhealthy",
                    Some("Target.FailedHealthChecks"),
                    None,
                ),
            },
            ec2: Some(Ec2Facts {
                state: self
                    .ec2_states
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| "running".into()),
                launch_time: Some(old),
                tags: vec![],
                zone: self.zones.get(&id).cloned(),
                image_id: None,
            }),
            auto_scaling_group: None,
            instance_id: id,
        };
        if let Some((healthy, broken)) = self.wide {
            let done = self.done.lock().unwrap().clone();
            let mut instances: Vec<_> = (1..=healthy)
                .map(|n| instance(format!("i-ok{n}"), HealthState::InService))
                .collect();
            for n in 1..=broken {
                let mut view = instance(format!("i-bad{n}"), HealthState::OutOfService);
                if done.iter().any(|(_, id)| *id == view.instance_id) {
                    view.ec2.as_mut().unwrap().state = "terminated".into();
                }
                instances.push(view);
            }
            instances.retain(|view| !self.deregistered.contains(&view.instance_id));
            return Snapshot {
                target: target.to_owned(),
                instances,
            };
        }
        let mut instances: Vec<_> = (1..=4)
            .map(|n| instance(format!("i-ok{n}"), HealthState::InService))
            .collect();
        instances.push(instance("i-bad".into(), HealthState::OutOfService));
        if group {
            instances.push(instance("i-bad2".into(), HealthState::OutOfService));
        }
        Snapshot {
            target: target.to_owned(),
            instances,
        }
    }
}

impl Fleet for FakeFleet {
    fn target_group<'a>(
        &'a self,
        name_or_arn: &'a str,
    ) -> BoxFuture<'a, Result<TargetGroupInfo, FleetError>> {
        Box::pin(async move {
            self.target_groups.get(name_or_arn).cloned().ok_or_else(|| {
                FleetError::new(
                    FailureKind::NotFound,
                    "DescribeTargetGroups",
                    Some("TargetGroupNotFound".into()),
                    "no such group",
                )
            })
        })
    }

    fn alarm<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::port::AlarmState>, FleetError>> {
        let state = self.alarms.lock().unwrap().get(name).cloned();
        Box::pin(async move { Ok(state) })
    }

    fn instances<'a>(
        &'a self,
        resources: &'a super::port::Resources,
    ) -> BoxFuture<'a, Result<HashMap<String, Ec2Facts>, FleetError>> {
        // Every instance named is running, but one named `i-gone...`; the tag role=checkout has two.
        let ids: Vec<String> = match resources {
            super::port::Resources::Instances(ids) => ids.clone(),
            super::port::Resources::Tagged { value, .. } if value == "checkout" => {
                vec!["i-tag1".into(), "i-tag2".into()]
            }
            _ => Vec::new(),
        };
        let old = OffsetDateTime::now_utc() - Duration::from_secs(86_400);
        Box::pin(async move {
            Ok(ids
                .into_iter()
                .filter(|id| !id.starts_with("i-gone"))
                .map(|id| {
                    let state = self.ec2_states.get(&id).cloned();
                    let facts = Ec2Facts {
                        state: state.unwrap_or_else(|| "running".into()),
                        launch_time: Some(old),
                        tags: vec![],
                        zone: self.zones.get(&id).cloned(),
                        image_id: None,
                    };
                    (id, facts)
                })
                .collect())
        })
    }

    fn auto_scaling_groups<'a>(
        &'a self,
        instance_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, FleetError>> {
        Box::pin(async move {
            self.group_calls.fetch_add(1, Ordering::SeqCst);
            Ok(instance_ids
                .iter()
                .filter_map(|id| Some((id.clone(), self.groups.get(id)?.clone())))
                .collect())
        })
    }

    fn group_changes<'a>(
        &'a self,
        groups: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<GroupChange>, FleetError>> {
        Box::pin(async move {
            self.change_calls.fetch_add(1, Ordering::SeqCst);
            if let Some(err) = &self.changes_fail {
                return Err(err.clone());
            }
            Ok(groups
                .iter()
                .map(|group| {
                    self.changes
                        .iter()
                        .find(|change| change.group == *group)
                        .cloned()
                        .unwrap_or_else(|| GroupChange {
                            group: group.clone(),
                            ..GroupChange::default()
                        })
                })
                .collect())
        })
    }

    fn mark_unhealthy<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async move {
            self.done
                .lock()
                .unwrap()
                .push(("mark-unhealthy", instance_id.to_owned()));
            Ok("Unhealthy".to_owned())
        })
    }

    fn reboot<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async move {
            self.done
                .lock()
                .unwrap()
                .push(("reboot", instance_id.to_owned()));
            if self.failing.contains(instance_id) {
                return Err(FleetError::new(
                    FailureKind::Permanent,
                    "RebootInstances",
                    Some("UnauthorizedOperation".into()),
                    "You are not authorized to perform this operation.",
                ));
            }
            Ok("rebooting".to_owned())
        })
    }

    fn start<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async move {
            self.done
                .lock()
                .unwrap()
                .push(("start", instance_id.to_owned()));
            Ok("pending".to_owned())
        })
    }

    fn snapshot<'a>(
        &'a self,
        target: &'a TargetRef,
    ) -> BoxFuture<'a, Result<Snapshot, FleetError>> {
        let target = target.value();
        Box::pin(async move {
            self.snapshots.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some((held, release)) = &self.hold
                && held == target
            {
                release.notified().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let store = self.store.lock().unwrap().clone();
            match (self.brake_while_reading, store) {
                (Some(true), Some(store)) => {
                    store
                        .pause(Scope::Everything, "paused mid-run")
                        .await
                        .unwrap();
                }
                (Some(false), Some(store)) => {
                    store
                        .trip_breaker(&id("web"), "tripped mid-run")
                        .await
                        .unwrap();
                }
                _ => {}
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let failing = self
                .failing_snapshots
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                let detail = "connection refused";
                let err = FleetError::new(
                    FailureKind::Transient,
                    "DescribeInstanceHealth",
                    None,
                    detail,
                );
                return Err(err);
            }
            match &self.snapshot_error {
                Some(err) => Err(err.clone()),
                None => Ok(self.healthy_but_one(target)),
            }
        })
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async move {
            let store = self.store.lock().unwrap().clone();
            if let Some(store) = store {
                let records = store.list(100).await.unwrap();
                let seen = records.iter().any(|r| r.outcome == Outcome::Acting);
                self.intent_seen.lock().unwrap().push(seen);
                if self.pause_after_first_terminate {
                    store
                        .pause(Scope::Everything, "paused between writes")
                        .await
                        .unwrap();
                }
                if self.unreadable_brakes_after_first_terminate {
                    self.rename_table("silences", "silences_away").await;
                }
            }
            self.done
                .lock()
                .unwrap()
                .push(("terminate", instance_id.to_owned()));
            if self.failing.contains(instance_id) {
                return Err(FleetError::new(
                    FailureKind::Permanent,
                    "TerminateInstances",
                    Some("UnauthorizedOperation".into()),
                    "You are not authorized to perform this operation.",
                ));
            }
            Ok("shutting-down".to_owned())
        })
    }
}

struct Harness {
    engine: Arc<Engine>,
    fleet: Arc<FakeFleet>,
    store: AuditStore,
    _writer: WriterTask,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A job runner over the harness's store and engine, notifying no one.
    fn jobs(&self) -> crate::jobs::Jobs {
        crate::jobs::Jobs::new(
            self.store.clone(),
            Arc::clone(&self.engine),
            Notifier::disabled(Arc::new(Metrics::default())),
        )
    }
}

async fn harness(fleet: FakeFleet, extra: &str) -> Harness {
    harness_with(fleet, extra, "").await
}

/// A harness whose config adds `targets` (TOML) to the two classic targets `web` and `api`.
async fn harness_with(fleet: FakeFleet, extra: &str, targets: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[audit]\nurl = \"sqlite://{}\"\n[remediation]\n{}\n{extra}\n\
         [[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\n{targets}",
        dir.path().join("audit.db").display(),
        if extra.contains("cooldown_secs") {
            ""
        } else {
            "cooldown_secs = 0"
        },
    );
    let config = Arc::new(crate::config::parse(&text, std::iter::empty()).unwrap());
    let (store, writer) = AuditStore::open(&config.audit.url).await.unwrap();
    store.settle_home(home()).await.unwrap();
    *fleet.store.lock().unwrap() = Some(store.clone());
    *fleet.store_url.lock().unwrap() = Some(config.audit.url.clone());
    let fleet = Arc::new(fleet);
    let metrics = Arc::new(Metrics::default());
    // The config's [[notify]] entries, if any: their jobs are queued (and never delivered by the harness).
    let notifier = Notifier::start(&config, Arc::clone(&metrics)).unwrap();
    let engine = Engine::start(
        config,
        home(),
        Arc::clone(&fleet) as Arc<dyn Fleet>,
        store.clone(),
        Arc::clone(&metrics),
        notifier,
        kinds(),
    )
    .await
    .unwrap();
    Harness {
        engine: Arc::new(engine),
        fleet,
        store,
        _writer: writer,
        _dir: dir,
    }
}

/// The action kinds of the harness: the built-in ones, and the test's own.
fn kinds() -> crate::engine::action::Kinds {
    crate::actions::builtin()
        .with(kind::Drain)
        .with(pending::Slow)
        .with(whole::Restart)
}

/// Where the test's targets are.
fn home() -> Home {
    Home {
        account: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

/// The identity of `name`, of `kind`, in the test's home.
fn home_id(kind: crate::target::TargetKind, name: &str) -> crate::target::TargetId {
    let home = home();
    crate::target::TargetId::new(home.account, home.region, kind, name)
}

/// The identity of the test's classic target `name` (its kind does not key the store).
fn id(name: &str) -> crate::target::TargetId {
    home_id(crate::target::TargetKind::LoadBalancer, name)
}

fn trigger(target: &str, dry_run: bool) -> Trigger {
    Trigger::new(
        Authenticated::issued(),
        TargetRef::LoadBalancer(target.to_owned()),
        "test".to_owned(),
        dry_run,
    )
}

fn meta() -> RequestMeta {
    let mut meta = RequestMeta::new(Source::Manual, None);
    meta.auth = Auth::Passed;
    meta
}

#[tokio::test]
async fn a_storm_during_the_cooldown_is_answered_without_reading_the_target() {
    let h = harness(FakeFleet::default(), "cooldown_secs = 600").await;
    let first = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    assert_eq!(first.summary.list("terminated-instance-ids"), ["i-bad"]);
    let storm: Vec<_> = (0..200)
        .map(|_| {
            let engine = Arc::clone(&h.engine);
            tokio::spawn(async move { engine.run(meta(), &trigger("web", false), None).await })
        })
        .collect();
    for run in storm {
        let run = run.await.unwrap().unwrap();
        let refused = run.summary.refused.clone().unwrap();
        assert!(refused.contains("cooldown ends in"), "{refused}");
        assert!(run.summary.list("terminated-instance-ids").is_empty());
    }
    assert_eq!(
        h.fleet.snapshots.load(Ordering::SeqCst),
        1,
        "one look at the target per cooldown window"
    );
    // A dry run still looks.
    h.engine
        .run(meta(), &trigger("web", true), None)
        .await
        .unwrap();
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_paused_target_is_refused_unread_until_resumed() {
    let h = harness(FakeFleet::default(), "").await;
    h.store
        .pause(Scope::Target(&id("web")), "deploy in progress")
        .await
        .unwrap();
    for dry_run in [false, true] {
        let run = h
            .engine
            .run(meta(), &trigger("web", dry_run), None)
            .await
            .unwrap();
        let refused = run.summary.refused.unwrap();
        assert!(
            refused.contains("paused") && refused.contains("deploy in progress"),
            "{refused}"
        );
    }
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), 0, "not even read");
    // Everything paused: other targets too; lifting that leaves web's own pause.
    h.store
        .pause(Scope::Everything, "incident 42")
        .await
        .unwrap();
    let api = h
        .engine
        .run(meta(), &trigger("api", false), None)
        .await
        .unwrap();
    assert!(api.summary.refused.unwrap().contains("incident 42"));
    assert!(h.store.resume(Scope::Everything).await.unwrap());
    assert!(
        !h.store.resume(Scope::Everything).await.unwrap(),
        "nothing left to resume"
    );
    let api = h
        .engine
        .run(meta(), &trigger("api", false), None)
        .await
        .unwrap();
    assert_eq!(api.summary.list("terminated-instance-ids"), ["i-bad"]);
    let web = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    assert!(web.summary.refused.unwrap().contains("deploy in progress"));
    assert!(h.store.resume(Scope::Target(&id("web"))).await.unwrap());
    let web = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    assert_eq!(web.summary.list("terminated-instance-ids"), ["i-bad"]);
}

/// One run of `target`, real, that must succeed.
async fn run_once(h: &Harness, target: &str) -> Run {
    h.engine
        .run(meta(), &trigger(target, false), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn budgets_leave_the_rest_skipped_and_open_the_breaker_until_reset() {
    let h = harness(FakeFleet::default(), "max_acted_per_hour = 2").await;
    for _ in 0..2 {
        assert_eq!(
            run_once(&h, "web")
                .await
                .summary
                .list("terminated-instance-ids"),
            ["i-bad"]
        );
    }
    let third = run_once(&h, "web").await;
    assert!(third.summary.list("terminated-instance-ids").is_empty());
    assert_eq!(
        third.summary.skipped,
        [Skip {
            instance_id: "i-bad".into(),
            reason: SkipReason::Budget
        }]
    );
    let Tripped { trip, reason } = third.tripped.clone().unwrap();
    assert_eq!(trip, Trip::Budget);
    assert!(reason.contains("max_acted_per_hour"), "{reason}");
    let record = h.store.get(&third.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["breaker"]["tripped"], "budget");
    assert_eq!(record.detail["budget_left"]["target_hour"], 0);
    // Open: refused without a look, for real and dry runs alike, until a person resets it.
    let reads = h.fleet.snapshots.load(Ordering::SeqCst);
    let fourth = run_once(&h, "web").await;
    assert_eq!(fourth.summary.refused_rule, Some("breaker-open"));
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), reads);
    // Another target has its own breaker and budget.
    assert_eq!(
        run_once(&h, "api")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
    assert!(h.store.reset_breaker(&id("web")).await.unwrap());
    assert!(
        !h.store.reset_breaker(&id("web")).await.unwrap(),
        "closed already"
    );
    // The budget is still spent: the next run skips again and opens the breaker again.
    let after = run_once(&h, "web").await;
    assert_eq!(after.summary.skipped[0].reason, SkipReason::Budget);
    assert!(after.tripped.is_some());
}

#[tokio::test]
async fn the_global_budget_counts_every_target() {
    let h = harness(FakeFleet::default(), "max_acted_per_hour_all = 1").await;
    assert_eq!(
        run_once(&h, "web")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
    let api = run_once(&h, "api").await;
    assert!(api.summary.list("terminated-instance-ids").is_empty());
    assert_eq!(api.summary.skipped[0].reason, SkipReason::Budget);
    // A dry run reports the budget too, and opens nothing.
    let dry = h
        .engine
        .run(meta(), &trigger("web", true), None)
        .await
        .unwrap();
    assert_eq!(dry.summary.skipped[0].reason, SkipReason::Budget);
    assert!(dry.tripped.is_none());
}

#[tokio::test]
async fn consecutive_aws_failures_open_the_breaker_and_a_clean_run_starts_the_count_again() {
    let failing = || FakeFleet {
        snapshot_error: Some(FleetError::new(
            FailureKind::Transient,
            "DescribeInstanceHealth",
            None,
            "connection refused",
        )),
        ..FakeFleet::default()
    };
    let h = harness(failing(), "breaker_after_failures = 3").await;
    for attempt in 1..=3 {
        let err = h
            .engine
            .run(meta(), &trigger("web", false), None)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Fleet(_)), "{err}");
        let breakers = h.store.breakers().await.unwrap();
        assert_eq!(breakers[0].failures, attempt);
        assert_eq!(breakers[0].open.is_some(), attempt == 3);
    }
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.detail["breaker"]["tripped"], "aws-errors");
    let reads = h.fleet.snapshots.load(Ordering::SeqCst);
    let refused = run_once(&h, "web").await;
    assert_eq!(refused.summary.refused_rule, Some("breaker-open"));
    assert!(
        refused
            .summary
            .refused
            .unwrap()
            .contains("3 consecutive runs hit AWS errors")
    );
    assert_eq!(
        h.fleet.snapshots.load(Ordering::SeqCst),
        reads,
        "no AWS call"
    );

    // Two failures, then a clean run: the count starts again.
    let h = harness(FakeFleet::default(), "breaker_after_failures = 3").await;
    for _ in 0..2 {
        h.store.breaker_failed(&id("web"), 3).await.unwrap();
    }
    run_once(&h, "web").await;
    assert_eq!(h.store.breakers().await.unwrap()[0].failures, 0);
}

#[tokio::test]
async fn a_run_that_acted_is_checked_again_once_and_a_target_still_short_opens_the_breaker() {
    let h = harness(FakeFleet::default(), "verify_after_secs = 1").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.acted, 1);
    let jobs = h.jobs();
    assert!(!jobs.run_next().await.unwrap(), "not due yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(jobs.run_next().await.unwrap());
    assert!(!jobs.run_next().await.unwrap(), "it runs once");
    // The fake fleet never replaces i-bad: 4 InService, 5 expected.
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.source, Source::RecoveryCheck);
    assert_eq!(record.outcome, Outcome::NotRecovered);
    assert_eq!(
        record.detail["recovery"]["run"],
        run.summary.audit_id.as_str()
    );
    assert_eq!(record.detail["recovery"]["expected_in_service"], 5);
    assert_eq!(record.detail["in_service"], 4);
    assert_eq!(record.detail["breaker"]["tripped"], "escalated");
    // The run page finds the check through the run's episode.
    let found = h.store.recovery_of(&run.summary.audit_id).await.unwrap();
    assert_eq!(found.map(|check| check.id), Some(record.id.clone()));
    let refused = run_once(&h, "web").await;
    assert_eq!(refused.summary.refused_rule, Some("breaker-open"));
}

#[tokio::test]
async fn a_recovery_check_waits_while_its_target_is_paused_and_reads_nothing() {
    let h = harness(FakeFleet::default(), "verify_after_secs = 1").await;
    assert_eq!(run_once(&h, "web").await.acted, 1);
    h.store
        .pause(Scope::Target(&id("web")), "an operator is on it")
        .await
        .unwrap();
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reads = h.fleet.snapshots.load(Ordering::SeqCst);
    assert!(jobs.run_next().await.unwrap(), "the check was due");
    assert_eq!(
        h.fleet.snapshots.load(Ordering::SeqCst),
        reads,
        "no AWS call"
    );
    assert!(
        h.store.breakers().await.unwrap().is_empty(),
        "no breaker opened"
    );
    let waiting = h.store.jobs_waiting().await.unwrap();
    assert_eq!(waiting, [(CHECK_JOB.to_owned(), 1)], "put back");
    assert!(
        h.store
            .list(5)
            .await
            .unwrap()
            .iter()
            .all(|record| record.source != Source::RecoveryCheck),
        "nothing recorded as checked"
    );
}

#[tokio::test]
async fn the_per_target_lock_serialises_two_runs() {
    let h = harness(FakeFleet::default(), "").await;
    let (first, second) = (trigger("web", true), trigger("web", true));
    let (a, b) = tokio::join!(
        h.engine.run(meta(), &first, None),
        h.engine.run(meta(), &second, None),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(h.fleet.most_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn runs_for_different_targets_overlap() {
    let h = harness(FakeFleet::default(), "").await;
    let (web, api) = (trigger("web", true), trigger("api", true));
    let (a, b) = tokio::join!(
        h.engine.run(meta(), &web, None),
        h.engine.run(meta(), &api, None),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(h.fleet.most_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_run_beyond_max_concurrent_is_busy_and_recorded() {
    let fleet = FakeFleet {
        hold: Some(("web".into(), Notify::new())),
        ..FakeFleet::default()
    };
    let h = harness(fleet, "max_concurrent = 1").await;
    let engine = Arc::clone(&h.engine);
    let held = tokio::spawn(async move { engine.run(meta(), &trigger("web", true), None).await });
    while h.fleet.in_flight.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let busy = h.engine.run(meta(), &trigger("api", true), None).await;
    let err = busy.unwrap_err();
    assert!(matches!(err, EngineError::Busy(1)), "{err:?}");
    assert_eq!(
        (err.code(), err.status(), err.is_transient()),
        ("too-busy", 503, true)
    );
    h.fleet.hold.as_ref().unwrap().1.notify_one();
    held.await.unwrap().unwrap();
    let records = h.store.list(10).await.unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.error.as_deref() == Some("too-busy") && r.outcome == Outcome::Rejected)
    );
}

#[tokio::test]
async fn the_intent_is_durable_before_the_first_terminate() {
    let h = harness(FakeFleet::default(), "").await;
    let run = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad"]);
    assert_eq!(run.acted, 1);
    assert_eq!(*h.fleet.intent_seen.lock().unwrap(), [true]);
    let records = h.store.list(10).await.unwrap();
    assert_eq!(records.len(), 1, "the intent is replaced by the outcome");
    assert_eq!(records[0].outcome, Outcome::Completed);
    assert_eq!(records[0].acted, 1);
}

#[tokio::test]
async fn a_failed_terminate_is_in_errors_and_in_the_audit_record() {
    let fleet = FakeFleet {
        failing: HashSet::from(["i-bad".to_owned()]),
        ..FakeFleet::default()
    };
    let h = harness(fleet, "").await;
    let run = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    assert!(run.summary.list("terminated-instance-ids").is_empty());
    assert_eq!(run.acted, 0);
    assert_eq!(run.summary.errors.len(), 1);
    assert_eq!(run.summary.errors[0].subject.id(), "i-bad");
    assert!(
        run.summary.errors[0]
            .error
            .contains("UnauthorizedOperation"),
        "{:?}",
        run.summary.errors
    );
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.detail["answer"]["errors"][0]["instance-id"], "i-bad");
    assert!(
        record.detail["actions"][0]["error"]
            .as_str()
            .unwrap()
            .contains("UnauthorizedOperation")
    );
}

#[tokio::test]
async fn a_permission_error_is_permanent_and_a_timeout_transient() {
    let cases = [
        (
            FailureKind::Permanent,
            Some("AccessDenied"),
            "aws-denied",
            502,
            false,
        ),
        (FailureKind::Transient, None, "aws-unavailable", 503, true),
    ];
    for (kind, code, expected, status, transient) in cases {
        let fleet = FakeFleet {
            snapshot_error: Some(FleetError::new(
                kind,
                "DescribeInstanceHealth",
                code.map(str::to_owned),
                "the call failed",
            )),
            ..FakeFleet::default()
        };
        let h = harness(fleet, "").await;
        let err = h
            .engine
            .run(meta(), &trigger("web", false), None)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.status(), err.is_transient()),
            (expected, status, transient)
        );
        if let Some(code) = code {
            assert!(
                err.public_detail().contains(code),
                "{}",
                err.public_detail()
            );
        } else {
            assert!(!err.public_detail().contains("the call failed"));
        }
        let record = &h.store.list(1).await.unwrap()[0];
        assert_eq!(record.error.as_deref(), Some(expected));
        assert_eq!(record.status, status);
        assert!(
            h.fleet.intent_seen.lock().unwrap().is_empty(),
            "no write after a failed read"
        );
    }
}

#[tokio::test]
async fn a_target_aws_does_not_know_and_an_unlisted_one_are_422() {
    let fleet = FakeFleet {
        snapshot_error: Some(FleetError::new(
            FailureKind::NotFound,
            "DescribeInstanceHealth",
            Some("LoadBalancerNotFound".into()),
            "no such balancer",
        )),
        ..FakeFleet::default()
    };
    let h = harness(fleet, "").await;
    let gone = h
        .engine
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap_err();
    assert!(matches!(gone, EngineError::TargetNotFound(ref t) if t.value() == "web"));
    let unlisted = h
        .engine
        .run(meta(), &trigger("db", false), None)
        .await
        .unwrap_err();
    for err in [gone, unlisted] {
        assert_eq!((err.code(), err.status()), ("unknown-load-balancer", 422));
    }
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_records_no_intent() {
    let h = harness(FakeFleet::default(), "").await;
    let run = h
        .engine
        .run(meta(), &trigger("web", true), None)
        .await
        .unwrap();
    assert!(run.summary.dry_run);
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad"]);
    assert_eq!(run.acted, 0);
    assert!(h.fleet.intent_seen.lock().unwrap().is_empty());
}

const TG_TARGET: &str = "[[targets]]\ntarget_group = \"web-tg\"\naction = \"auto\"\n";

fn group_trigger(value: &str, dry_run: bool) -> Trigger {
    Trigger::new(
        Authenticated::issued(),
        TargetRef::TargetGroup(value.to_owned()),
        "test".to_owned(),
        dry_run,
    )
}

#[tokio::test]
async fn auto_hands_group_members_to_auto_scaling_and_terminates_the_rest() {
    let fleet = FakeFleet {
        groups: HashMap::from([("i-bad".to_owned(), "web-asg".to_owned())]),
        ..FakeFleet::with_target_group("instance")
    };
    let h = harness_with(fleet, "", TG_TARGET).await;
    // An alarm names the group by its CloudWatch dimension value.
    let run = h
        .engine
        .run(
            meta(),
            &group_trigger("targetgroup/web-tg/0123456789abcdef", false),
            None,
        )
        .await
        .unwrap();
    assert_eq!(run.summary.list("asg-unhealthy-instance-ids"), ["i-bad"]);
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad2"]);
    assert_eq!(run.summary.target_group.as_deref(), Some("web-tg"));
    assert_eq!(run.summary.load_balancer, "app/web-alb/1");
    assert_eq!(run.acted, 2);
    assert_eq!(
        h.fleet.group_calls.load(Ordering::SeqCst),
        1,
        "one lookup per run"
    );
    assert_eq!(
        *h.fleet.done.lock().unwrap(),
        [
            ("mark-unhealthy", "i-bad".to_owned()),
            ("terminate", "i-bad2".to_owned())
        ]
    );
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.target.as_deref(), Some("web-tg"));
    let actions = &record.detail["actions"];
    assert_eq!(actions[0]["action"], "asg-unhealthy");
    assert_eq!(actions[0]["kind"], "replace");
    assert_eq!(actions[0]["auto_scaling_group"], "web-asg");
    assert_eq!(actions[0]["new_state"], "Unhealthy");
    assert_eq!(actions[1]["action"], "terminate");
}

#[tokio::test]
async fn asg_unhealthy_skips_instances_in_no_group_and_terminate_never_asks() {
    let fleet = FakeFleet {
        groups: HashMap::from([("i-bad".to_owned(), "web-asg".to_owned())]),
        ..FakeFleet::with_target_group("instance")
    };
    let targets = "[[targets]]\ntarget_group = \"web-tg\"\n";
    let h = harness_with(fleet, "action = \"asg-unhealthy\"", targets).await;
    let run = h
        .engine
        .run(meta(), &group_trigger("web-tg", false), None)
        .await
        .unwrap();
    assert_eq!(run.summary.list("asg-unhealthy-instance-ids"), ["i-bad"]);
    assert!(run.summary.list("terminated-instance-ids").is_empty());
    assert_eq!(run.summary.skipped[0].instance_id, "i-bad2");
    assert_eq!(
        run.summary.skipped[0].reason,
        SkipReason::NotInAutoScalingGroup
    );

    // The classic targets keep terminating (the default action).
    let fleet = FakeFleet::with_target_group("instance");
    let h = harness_with(fleet, "", "[[targets]]\ntarget_group = \"web-tg\"\n").await;
    let run = h
        .engine
        .run(meta(), &group_trigger(TG_ARN, true), None)
        .await
        .unwrap();
    assert_eq!(
        run.summary.list("terminated-instance-ids"),
        ["i-bad", "i-bad2"]
    );
    // One membership lookup, to tell whether a change is under way; the instances are in no group.
    assert_eq!(h.fleet.group_calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.fleet.change_calls.load(Ordering::SeqCst), 0);
    assert!(h.fleet.done.lock().unwrap().is_empty(), "dry run");
}

#[tokio::test]
async fn a_pause_or_a_breaker_that_lands_while_the_run_reads_refuses_it_before_any_aws_write() {
    for (brake, rule) in [(true, "paused"), (false, "breaker-open")] {
        let fleet = FakeFleet {
            brake_while_reading: Some(brake),
            ..FakeFleet::default()
        };
        let h = harness(fleet, "").await;
        let run = h
            .engine
            .run(meta(), &trigger("web", false), None)
            .await
            .unwrap();
        assert_eq!(run.acted, 0);
        assert!(run.summary.list("terminated-instance-ids").is_empty());
        assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
        assert_eq!(
            run.summary.refused_rule,
            Some(rule),
            "{:?}",
            run.summary.refused
        );
        let records = h.store.list(10).await.unwrap();
        assert!(
            records.iter().all(|r| r.outcome != Outcome::Acting),
            "no intent was written"
        );
        assert_eq!(
            h.store.last_action(&id("web"), &[]).await.unwrap().at,
            None,
            "nothing acted, so no cooldown"
        );
    }
}

#[tokio::test]
async fn a_pause_between_two_aws_writes_of_a_run_stops_it_before_the_second() {
    let fleet = FakeFleet {
        pause_after_first_terminate: true,
        ..FakeFleet::with_target_group("instance")
    };
    let h = harness_with(fleet, "", "[[targets]]\ntarget_group = \"web-tg\"\n").await;
    let run = h
        .engine
        .run(meta(), &group_trigger(TG_ARN, false), None)
        .await
        .unwrap();
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad"]);
    assert_eq!(
        *h.fleet.done.lock().unwrap(),
        [("terminate", "i-bad".to_owned())]
    );
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["stopped"], "paused");
}

#[tokio::test]
async fn target_groups_that_are_missing_or_not_instances_refuse_to_start() {
    for (fleet, expected) in [
        (FakeFleet::default(), "does not exist"),
        (FakeFleet::with_target_group("ip"), "target type \"ip\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[audit]\nurl = \"sqlite://{}\"\n[[targets]]\ntarget_group = \"web-tg\"\n",
            dir.path().join("audit.db").display()
        );
        let config = Arc::new(crate::config::parse(&text, std::iter::empty()).unwrap());
        let (store, _writer) = AuditStore::open(&config.audit.url).await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let notifier = Notifier::disabled(Arc::clone(&metrics));
        let err = Engine::start(
            config,
            home(),
            Arc::new(fleet),
            store,
            metrics,
            notifier,
            crate::actions::builtin(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn an_unlisted_target_group_is_422_unknown_target_group() {
    let h = harness_with(FakeFleet::with_target_group("instance"), "", TG_TARGET).await;
    let err = h
        .engine
        .run(
            meta(),
            &group_trigger("targetgroup/other/0123456789abcdef", false),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("unknown-target-group", 422));
}

impl Engine {
    /// The run of a delivery whose first attempt `previous` died, without its record.
    async fn take_over(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        previous: &str,
    ) -> Result<Run, EngineError> {
        let target = self.targets.one(&trigger.target, &trigger.place).unwrap();
        meta.concerns(&target.id);
        let trigger = trigger.clone().taking_over(previous);
        self.remediate(meta, &trigger, target).await
    }
}

/// The target group `web-tg` after a first attempt terminated `i-bad` and died: the fleet shows it shutting
/// down.
fn after_a_dead_attempt() -> FakeFleet {
    FakeFleet {
        ec2_states: HashMap::from([("i-bad".to_owned(), "shutting-down".to_owned())]),
        ..FakeFleet::with_target_group("instance")
    }
}

/// Records the intent of a dead attempt on `web-tg` that planned to terminate `planned`; returns its id.
async fn dead_attempt(store: &AuditStore, planned: &[&str]) -> String {
    let mut dead = meta();
    dead.target = Some("web-tg".into());
    dead.acted_at = Some(OffsetDateTime::now_utc());
    let decision = Decision {
        run_id: dead.id.clone(),
        target: "web-tg".into(),
        steps: planned
            .iter()
            // As the previous release stored it: no kind, which the act's call tells.
            .map(|id| Act::on_instance(id, "terminate", "", None))
            .collect(),
        in_service: 4,
        takeover_of: None,
        attempts: Vec::new(),
        rule_fingerprint: None,
    };
    let intended = u32::try_from(planned.len()).unwrap();
    store
        .put_intent(
            dead.record(Outcome::Acting, 0, None, intended),
            serde_json::to_string(&decision).unwrap(),
        )
        .await
        .unwrap();
    dead.id
}

#[tokio::test]
async fn a_takeover_finishes_the_dead_attempt_within_the_cap_and_past_its_cooldown() {
    // The first attempt planned both broken instances, terminated i-bad, and died.
    let h = harness_with(
        after_a_dead_attempt(),
        "cooldown_secs = 600\nmax_terminations_per_run = 2",
        "[[targets]]\ntarget_group = \"web-tg\"\n",
    )
    .await;
    let dead_id = dead_attempt(&h.store, &["i-bad", "i-bad2"]).await;

    let mut takeover = meta();
    let run = h
        .engine
        .take_over(&mut takeover, &group_trigger("web-tg", false), &dead_id)
        .await
        .unwrap();
    assert_eq!(
        run.summary.refused, None,
        "its own first attempt is no cooldown"
    );
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad2"]);
    assert_eq!(run.summary.skipped[0].instance_id, "i-bad");
    assert_eq!(
        run.summary.skipped[0].reason,
        SkipReason::AlreadyTerminating
    );
    assert_eq!(
        takeover.detail["takeover"],
        serde_json::json!({"of": dead_id, "already_replaced": ["i-bad"]})
    );
    assert_eq!(
        *h.fleet.done.lock().unwrap(),
        [("terminate", "i-bad2".to_owned())]
    );

    // Any other delivery is still refused by the dead attempt's cooldown.
    let other = h
        .engine
        .run(meta(), &group_trigger("web-tg", false), None)
        .await
        .unwrap();
    assert!(other.summary.refused.unwrap().contains("cooldown"));
}

#[tokio::test]
async fn a_takeover_counts_what_the_dead_attempt_replaced_against_the_cap() {
    let h = harness_with(
        after_a_dead_attempt(),
        "max_terminations_per_run = 1",
        "[[targets]]\ntarget_group = \"web-tg\"\n",
    )
    .await;
    let dead_id = dead_attempt(&h.store, &["i-bad"]).await;
    let run = h
        .engine
        .take_over(&mut meta(), &group_trigger("web-tg", false), &dead_id)
        .await
        .unwrap();
    assert!(
        run.summary.list("terminated-instance-ids").is_empty(),
        "the cap of 1 was used by the dead attempt"
    );
    assert!(h.fleet.done.lock().unwrap().is_empty());
}

/// Two targets named `web`, one in the home account and one in another, each read and healed through its own
/// fake fleet: cooldowns, breakers, pauses and budgets are each target's own (the store keys them by account,
/// region and name; an alert that names no account is routed by the multi-account work, so the runs here are
/// started on each target directly).
#[tokio::test]
async fn the_same_balancer_name_in_two_accounts_is_two_targets() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[audit]\nurl = \"sqlite://{}\"\n[remediation]\ncooldown_secs = 600\nmax_acted_per_hour = 1\n\
         [[targets]]\nload_balancer = \"web\"\n",
        dir.path().join("audit.db").display(),
    );
    let mut config = crate::config::parse(&text, std::iter::empty()).unwrap();
    let second = config.targets[0].clone();
    config.targets.push(second);
    let config = Arc::new(config);
    let (store, _writer) = AuditStore::open(&config.audit.url).await.unwrap();
    store.settle_home(home()).await.unwrap();
    let fleets = [
        Arc::new(FakeFleet::default()),
        Arc::new(FakeFleet::default()),
    ];
    let other = Home {
        account: "222222222222".into(),
        region: "us-east-1".into(),
    };
    let served = AtomicUsize::new(0);
    let fleet_of = |_: &crate::config::TargetConfig| {
        let n = served.fetch_add(1, Ordering::SeqCst);
        let place = if n == 0 { home() } else { other.clone() };
        (Arc::clone(&fleets[n]) as Arc<dyn Fleet>, place)
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start_with(
        config,
        home(),
        &fleet_of,
        store.clone(),
        Arc::clone(&metrics),
        Notifier::disabled(metrics),
        crate::actions::builtin(),
    )
    .await
    .unwrap();
    let [a, b] = engine.targets.all() else {
        panic!("two targets")
    };
    assert_eq!((a.id.name.as_str(), b.id.name.as_str()), ("web", "web"));
    assert_ne!(a.id, b.id);
    let run = async |target: &targets::Target| {
        let mut meta = meta();
        meta.concerns(&target.id);
        engine
            .remediate(&mut meta, &trigger("web", false), target)
            .await
            .unwrap()
    };
    // Each acts once: neither the other's cooldown nor its budget of 1 an hour holds it back.
    assert_eq!(
        run(a).await.summary.list("terminated-instance-ids"),
        ["i-bad"]
    );
    assert_eq!(
        run(b).await.summary.list("terminated-instance-ids"),
        ["i-bad"]
    );
    assert_eq!(
        *fleets[0].done.lock().unwrap(),
        [("terminate", "i-bad".to_owned())]
    );
    assert_eq!(
        *fleets[1].done.lock().unwrap(),
        [("terminate", "i-bad".to_owned())]
    );
    assert_eq!(run(a).await.summary.refused_rule, Some("cooldown"));
    assert_eq!(b.id.account, "222222222222");
    // A breaker and a pause are each target's own.
    assert!(store.trip_breaker(&a.id, "test").await.unwrap());
    store.pause(Scope::Target(&b.id), "deploy").await.unwrap();
    assert_eq!(run(a).await.summary.refused_rule, Some("breaker-open"));
    assert_eq!(run(b).await.summary.refused_rule, Some("paused"));
    assert!(store.brakes_of(&a.id).await.unwrap().pause.is_none());
    assert!(store.brakes_of(&b.id).await.unwrap().breaker.is_none());
    // An alert that names no account is refused for both, never run on both; one that names it runs there.
    let ambiguous = engine
        .run(meta(), &trigger("web", true), None)
        .await
        .unwrap_err();
    assert_eq!(
        (ambiguous.code(), ambiguous.status()),
        ("ambiguous-target", 422)
    );
    assert!(
        ambiguous.to_string().contains("222222222222"),
        "{ambiguous}"
    );
    let place = crate::target::Place::new(Some("222222222222".into()), None);
    let there = engine
        .run(meta(), &trigger("web", true).in_place(place), None)
        .await
        .unwrap();
    assert_eq!(there.summary.account, "222222222222");
    let nowhere = crate::target::Place::new(Some("333333333333".into()), None);
    let err = engine
        .run(meta(), &trigger("web", true).in_place(nowhere), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown-load-balancer");
}

/// The speed limit: a fleet of twelve, six broken, may lose ceil(0.34 x 12) = 5 in an hour. Runs act up to it
/// within their cap, the rest is skipped `speed-limit` (no breaker opens), and an engine of another process
/// sharing the store counts the same hour.
#[tokio::test]
async fn the_speed_limit_holds_across_runs_and_processes_sharing_the_store() {
    let wide = || FakeFleet {
        wide: Some((6, 6)),
        ..FakeFleet::default()
    };
    let limits = "max_terminations_per_run = 3\nmax_unhealthy_fraction = 0.9\nmax_acted_per_hour = 100\n\
                  max_acted_per_day = 100\nmax_acted_per_hour_all = 100\nmax_acted_per_day_all = 100";
    let h = harness(wide(), limits).await;
    let first = run_once(&h, "web").await;
    assert_eq!(
        first.summary.list("terminated-instance-ids"),
        ["i-bad1", "i-bad2", "i-bad3"],
        "the per-run cap, not the speed limit, holds the first run"
    );
    let second = run_once(&h, "web").await;
    assert_eq!(
        second.summary.list("terminated-instance-ids"),
        ["i-bad4", "i-bad5"]
    );
    assert_eq!(
        second.summary.skipped.last(),
        Some(&Skip {
            instance_id: "i-bad6".into(),
            reason: SkipReason::SpeedLimit
        }),
        "the first run's three show as terminated, the sixth is left for the speed limit"
    );
    assert!(second.tripped.is_none(), "a speed limit opens no breaker");
    let record = h
        .store
        .get(&second.summary.audit_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.detail["speed_limit"]["per_hour"], 5);
    assert_eq!(record.detail["speed_limit"]["left"], 2);
    // Another process on the same store: its own fleet view and engine, the same hour.
    let (store, _writer) = AuditStore::open(&h.engine.config.audit.url).await.unwrap();
    let fleet = Arc::new(wide());
    *fleet.store.lock().unwrap() = Some(store.clone());
    let metrics = Arc::new(Metrics::default());
    let other = Engine::start(
        Arc::clone(&h.engine.config),
        home(),
        Arc::clone(&fleet) as Arc<dyn Fleet>,
        store,
        Arc::clone(&metrics),
        Notifier::disabled(metrics),
        crate::actions::builtin(),
    )
    .await
    .unwrap();
    let third = other
        .run(meta(), &trigger("web", false), None)
        .await
        .unwrap();
    // Its fleet view still shows all six broken: the cap picks three, and the speed limit leaves none.
    assert!(third.summary.list("terminated-instance-ids").is_empty());
    let slowed: Vec<&str> = third
        .summary
        .skipped
        .iter()
        .filter(|skip| skip.reason == SkipReason::SpeedLimit)
        .map(|skip| skip.instance_id.as_str())
        .collect();
    assert_eq!(
        slowed,
        ["i-bad1", "i-bad2", "i-bad3"],
        "{:?}",
        third.summary.skipped
    );
    assert!(fleet.done.lock().unwrap().is_empty());
    // Another target's limit is its own (the fake fleet shows the same instances under every target, those
    // terminated under `web` as terminated: `i-bad6` is the one left, and the speed limit of `api` allows it).
    let api = run_once(&h, "api").await;
    assert_eq!(api.summary.list("terminated-instance-ids"), ["i-bad6"]);
}

#[tokio::test]
async fn a_silence_refuses_its_target_without_reading_it_until_it_is_lifted_or_ends() {
    let h = harness(FakeFleet::default(), "").await;
    let silence = h
        .store
        .silence(
            Scope::Target(&id("web")),
            "deploy 7",
            "ops",
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, Some("silenced"));
    let refused = run.summary.refused.clone().unwrap();
    assert!(
        refused.contains("deploy 7") && refused.contains("ops"),
        "{refused}"
    );
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), 0, "no AWS read");
    // Another target is not silenced.
    assert_eq!(
        run_once(&h, "api")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
    assert_eq!(
        h.store.silences().await.unwrap(),
        std::slice::from_ref(&silence)
    );
    assert_eq!(
        h.store.unsilence(&silence.id).await.unwrap(),
        Some(silence.clone())
    );
    assert_eq!(h.store.unsilence(&silence.id).await.unwrap(), None);
    assert_eq!(
        run_once(&h, "web")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );

    // A silence of everything ends by itself at its end, on the store's clock.
    let h = harness(FakeFleet::default(), "").await;
    h.store
        .silence(Scope::Everything, "game day", "ops", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        run_once(&h, "api").await.summary.refused_rule,
        Some("silenced")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(h.store.silences().await.unwrap().is_empty());
    assert_eq!(
        run_once(&h, "api")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
}

#[tokio::test]
async fn a_maintenance_window_refuses_its_targets_without_reading_them() {
    let every_day = "[[windows]]\nname = \"always\"\ntargets = [\"web\"]\n\
                     days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
                     start = \"00:00\"\nduration = \"1d\"\ntime_zone = \"Europe/Berlin\"\n";
    let h = harness(FakeFleet::default(), every_day).await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, Some("maintenance-window"));
    assert!(run.summary.refused.unwrap().contains("\"always\""));
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), 0, "no AWS read");
    assert_eq!(
        run_once(&h, "api")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
}

#[tokio::test]
async fn a_group_that_is_changing_or_cannot_be_read_refuses_the_run_before_any_write() {
    let groups = HashMap::from([("i-bad".to_owned(), "web-asg".to_owned())]);
    let scaling = FakeFleet {
        groups: groups.clone(),
        changes: vec![GroupChange {
            group: "web-asg".into(),
            activities: vec!["Launching a new EC2 instance: i-new".into()],
            ..GroupChange::default()
        }],
        ..FakeFleet::default()
    };
    let h = harness(scaling, "").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, Some("change-in-progress"));
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    assert!(
        h.engine
            .events("web", &run, &run.summary.audit_id)
            .is_empty(),
        "a change under way is a standing refusal: not notified on every alert"
    );
    // The change is remembered a short while: the next alerts are refused without reading AWS again.
    for _ in 0..3 {
        let again = run_once(&h, "web").await;
        assert_eq!(again.summary.refused_rule, Some("change-in-progress"));
    }
    assert_eq!(h.fleet.snapshots.load(Ordering::SeqCst), 1);
    assert_eq!(h.fleet.change_calls.load(Ordering::SeqCst), 1);
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(
        record.detail["seen_changes"][0]["activities"][0],
        "Launching a new EC2 instance: i-new"
    );
    assert_eq!(
        h.store.last_action(&id("web"), &[]).await.unwrap().at,
        None,
        "nothing acted, so no cooldown"
    );

    let denied = FakeFleet {
        groups: groups.clone(),
        changes_fail: Some(FleetError::new(
            FailureKind::Permanent,
            "DescribeScalingActivities",
            Some("AccessDenied".into()),
            "not authorized",
        )),
        ..FakeFleet::default()
    };
    let h = harness(denied, "").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, Some("change-unknown"));
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");

    // A read that fails for a moment fails the run, to be retried, rather than refusing it for good.
    let throttled = FakeFleet {
        groups: groups.clone(),
        changes_fail: Some(FleetError::new(
            FailureKind::Transient,
            "DescribeScalingActivities",
            Some("Throttling".into()),
            "rate exceeded",
        )),
        ..FakeFleet::default()
    };
    let h = harness(throttled, "").await;
    let failed = h.engine.run(meta(), &trigger("web", false), None).await;
    assert!(
        matches!(&failed, Err(EngineError::Fleet(err)) if err.kind == FailureKind::Transient),
        "{failed:?}"
    );
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");

    // A quiet group lets the run act; a healthy target reads no group at all.
    let quiet = FakeFleet {
        groups,
        ..FakeFleet::default()
    };
    let h = harness(quiet, "").await;
    assert_eq!(
        run_once(&h, "web")
            .await
            .summary
            .list("terminated-instance-ids"),
        ["i-bad"]
    );
    assert_eq!(h.fleet.change_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_whole_zone_down_is_refused_as_zonal_failure_and_part_of_one_is_acted_on() {
    let zoned = |zone_a: &[&str]| FakeFleet {
        wide: Some((4, 2)),
        zones: (1..=4)
            .map(|n| format!("i-ok{n}"))
            .chain((1..=2).map(|n| format!("i-bad{n}")))
            .map(|id| {
                let zone = if zone_a.contains(&id.as_str()) {
                    "us-east-1a"
                } else {
                    "us-east-1b"
                };
                (id, zone.to_owned())
            })
            .collect(),
        ..FakeFleet::default()
    };
    let h = harness(zoned(&["i-bad1", "i-bad2"]), "max_terminations_per_run = 2").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, Some("zonal-failure"));
    assert!(run.summary.refused.clone().unwrap().contains("us-east-1a"));
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    // A zone failing is news: it is notified.
    let events = h.engine.events("web", &run, &run.summary.audit_id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, crate::config::NotifyEvent::Refused);
    assert!(
        events[0].text.starts_with("zonal-failure"),
        "{}",
        events[0].text
    );

    let h = harness(zoned(&["i-bad1", "i-ok1"]), "max_terminations_per_run = 2").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, None);
    assert_eq!(
        run.summary.list("terminated-instance-ids"),
        ["i-bad1", "i-bad2"]
    );
}

#[tokio::test]
async fn observe_mode_records_what_it_would_have_done_and_touches_nothing() {
    let h = harness(FakeFleet::default(), "mode = \"observe\"").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.acted, 0);
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad"]);
    assert_eq!(run.summary.mode, Some("observe"));
    assert!(run.summary.dry_run);
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.outcome, Outcome::WouldAct);
    assert_eq!(record.detail["plan"]["act_on"][0]["instance-id"], "i-bad");
    assert_eq!(
        h.store.last_action(&id("web"), &[]).await.unwrap().at,
        None,
        "nothing acted, so no cooldown"
    );
    let events = h.engine.events("web", &run, &run.summary.audit_id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, crate::config::NotifyEvent::WouldAct);
    assert!(
        events[0].text.contains("would have replaced i-bad"),
        "{}",
        events[0].text
    );

    // A healthy target in observe mode just completes.
    let healthy = FakeFleet {
        wide: Some((3, 0)),
        ..FakeFleet::default()
    };
    let h = harness(healthy, "mode = \"observe\"").await;
    let run = run_once(&h, "web").await;
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.outcome, Outcome::Completed);
}

#[tokio::test]
async fn approve_mode_holds_without_a_lease_and_the_approval_acts_only_on_what_it_approved() {
    let wide = FakeFleet {
        wide: Some((8, 2)),
        ..FakeFleet::default()
    };
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = harness(wide, approve).await;
    let held = run_once(&h, "web").await;
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    assert_eq!(held.summary.mode, Some("approve"));
    assert!(!held.summary.dry_run);
    assert!(
        held.summary.list("terminated-instance-ids").is_empty(),
        "nothing replaced"
    );
    let ask = held.summary.approval.as_ref().unwrap();
    assert_eq!(ask.would_replace, ["i-bad1", "i-bad2"]);
    let held_id = ask.id.clone();
    let record = h.store.get(&held_id).await.unwrap().unwrap();
    assert_eq!(record.outcome, Outcome::Held);
    let approval = h.store.approval(&held_id).await.unwrap().unwrap();
    assert_eq!(approval.state.as_str(), "pending");
    assert_eq!(approval.body["evidence"]["plan"]["terminate"][1], "i-bad2");
    // It holds no lease while it waits: another process's run takes the target's at once.
    let lease = crate::audit::Lease::Target(&id("web"));
    let other = h
        .store
        .lease(lease, "another-run", std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(other, crate::audit::Leased::AtOnce);
    // That run's final record gives the lease back.
    let mut finished = meta().into_record(Outcome::Completed, 200, None, 0);
    finished.id = "another-run".into();
    h.store.put(finished).await.unwrap();
    let events = h.engine.events("web", &held, &held_id);
    assert_eq!(events[0].event, crate::config::NotifyEvent::Held);
    assert_eq!(events[0].approval.as_ref().unwrap().id, held_id);

    // Approved with only i-bad2 in its decision, the run acts on i-bad2 alone.
    let mut approval = approval;
    approval.body["decision"]["steps"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad2"]);
    assert_eq!(run.summary.skipped[0].reason, SkipReason::NotApproved);
    assert_eq!(run.acted, 1);
}

#[tokio::test]
async fn an_approval_whose_run_failed_is_acted_on_once_by_its_act_job() {
    let wide = FakeFleet {
        wide: Some((8, 2)),
        ..FakeFleet::default()
    };
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]\n\
                   [server]\nrequest_timeout_secs = 1";
    let h = harness(wide, approve).await;
    let held = run_once(&h, "web").await;
    let held_id = held.summary.approval.unwrap().id;
    let approvals = crate::approvals::Approvals::new(&h.store, &h.engine);
    let approver = crate::audit::Approver {
        who: "token:0123".into(),
        door: "api".into(),
        name: None,
        at: String::new(),
        aliases: Vec::new(),
    };
    // The approver's own run cannot read the target: approved, nothing acted, the act job waits.
    h.fleet.failing_snapshots.store(1, Ordering::SeqCst);
    let failed = approvals.approve(meta(), &held_id, approver.clone()).await;
    assert!(
        matches!(failed, Err(crate::approvals::ApprovalError::Engine(_))),
        "{failed:?}"
    );
    assert!(h.fleet.done.lock().unwrap().is_empty());
    let approval = h.store.approval(&held_id).await.unwrap().unwrap();
    assert_eq!(approval.state.as_str(), "approved");
    assert!(h.store.claim_job().await.unwrap().is_none(), "not due yet");
    // Once due, the act job runs it, once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = h
        .store
        .claim_job()
        .await
        .unwrap()
        .expect("the act job is due");
    assert_eq!(job.kind, crate::audit::APPROVAL_ACT_JOB);
    let ran = approvals.act_later(&held_id).await.unwrap();
    assert!(matches!(ran, crate::job::Ran::Recorded), "{ran:?}");
    let done = h.fleet.done.lock().unwrap().clone();
    assert_eq!(done.len(), 2, "{done:?}");
    let approval = h.store.approval(&held_id).await.unwrap().unwrap();
    let run = approval.resolution.unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = h.store.get(&run).await.unwrap().unwrap();
    assert_eq!((record.outcome, record.acted), (Outcome::Completed, 2));
    assert!(
        h.store.claim_job().await.unwrap().is_none(),
        "the run removed its job"
    );
    // A vote after it changes nothing.
    let again = approvals.approve(meta(), &held_id, approver).await;
    assert!(
        matches!(again, Err(crate::approvals::ApprovalError::Closed(..))),
        "{again:?}"
    );
    assert_eq!(h.fleet.done.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_approval_of_another_action_than_the_ladder_names_now_holds_again() {
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let held = run_once(&h, "web").await;
    let id = held.summary.approval.as_ref().unwrap().id.clone();
    let mut approval = h.store.approval(&id).await.unwrap().unwrap();
    // The approvers saw a reboot; the target's ladder names a replacement for that step now.
    for step in approval.body["decision"]["steps"].as_array_mut().unwrap() {
        step["kind"] = "reboot".into();
        step["action"] = "reboot".into();
    }
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert!(
        h.fleet.done.lock().unwrap().is_empty(),
        "not acted on as a replacement"
    );
    assert_eq!(run.acted, 0);
    let again = run.summary.approval.as_ref().expect("held again");
    assert_ne!(again.id, id);
    assert_eq!(again.would_replace, ["i-bad"]);
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.outcome, Outcome::Held);
    assert_eq!(record.detail["approval_stale"]["approved"], "reboot");
    assert_eq!(record.detail["approval_stale"]["now"], "replace");
    // The approval of what the ladder names now acts.
    let approval = h.store.approval(&again.id).await.unwrap().unwrap();
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad"]);
}

#[tokio::test]
async fn checks_the_previous_release_scheduled_run_as_this_release_s_one_check() {
    let h = harness(FakeFleet::default(), "").await;
    let legacy = |kind: &'static str, run: &str, payload: String| crate::audit::NewJob {
        kind,
        dedup_key: Some(format!("{kind}:{run}")),
        delay_ms: 0,
        payload,
        bounded: false,
    };
    let jobs = vec![
        // A replacement's check from before targets had a place or episodes.
        legacy(
            RECOVERY_CHECK_JOB,
            "R1",
            r#"{"run-id":"R1","target":"web","expected-in-service":4}"#.to_owned(),
        ),
        // A reboot's check of i-bad, still down, on a target whose ladder has no step after.
        legacy(
            LADDER_CHECK_JOB,
            "R2",
            r#"{"run-id":"R2","episode":"R2","index":0,"target":"api","account":"123456789012",
                "region":"us-east-1","rebooted":["i-bad"],"expected-in-service":5}"#
                .to_owned(),
        ),
    ];
    let record = meta().into_record(Outcome::Completed, 200, None, 0);
    h.store
        .put_run(record, None, jobs, None, None)
        .await
        .unwrap();
    let runner = h.jobs();
    assert!(runner.run_next().await.unwrap());
    assert!(runner.run_next().await.unwrap());
    let checks: Vec<_> = h
        .store
        .list(5)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == Source::RecoveryCheck)
        .collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    let replaced = checks
        .iter()
        .find(|r| r.detail["recovery"]["run"] == "R1")
        .unwrap();
    assert_eq!(replaced.outcome, Outcome::Recovered, "4 of 4 InService");
    assert_eq!(replaced.target.as_deref(), Some("web"));
    let rebooted = checks
        .iter()
        .find(|r| r.detail["ladder"]["run"] == "R2")
        .unwrap();
    assert_eq!(rebooted.outcome, Outcome::NotRecovered);
    assert_eq!(rebooted.detail["ladder"]["still_down"][0], "i-bad");
    assert_eq!(rebooted.detail["breaker"]["tripped"], "escalated");
    // What is left is this release's watch of the escalated target.
    let waiting = h.store.jobs_waiting().await.unwrap();
    assert_eq!(waiting, [(CHECK_JOB.to_owned(), 1)]);
}

mod budget_cut;
mod held_once;
mod kind;
mod pending;
mod quiet_held;
mod quiet_notices;
mod rule_runs;
mod takeover_cap;
mod unreadable_brakes;
mod whole;
