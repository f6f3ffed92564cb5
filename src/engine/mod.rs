//! The remediation engine: lock the target, snapshot its health, plan within the safety limits, record the
//! intent, act per instance, summarise, and write the run's audit record. Receivers hand it a verified
//! `Trigger`; it reaches the fleet only through its own `port::Fleet`, never through an SDK type.

pub mod budget;
mod error;
pub mod health;
pub mod plan;
pub mod port;
mod reply;
pub mod snapshot;
mod summary;
mod targets;
mod trigger;

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

pub use error::EngineError;
pub use plan::{Act, Clock, Plan, Policy, Refusal, Replacement, Skip, SkipReason};
pub use reply::{Reply, SubscriptionReply};
pub use summary::{ActionError, Names, Summary};
pub use targets::{StartError, probe_targets};
pub use trigger::{Authenticated, Trigger};

use crate::audit::{AuditStore, DeliveryKey, Outcome, RecoveryCheck, RequestMeta, Source};
use crate::config::{Action, Config, NotifyEvent};
use crate::metrics::{DryRunLabels, Metrics, RunLabels, SkipLabels, TripLabels};
use crate::notify::{Event, Notifier};
use port::{FailureKind, Fleet};

/// What one remediation run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The answer.
    pub summary: Summary,
    /// Instances actually replaced (terminated or handed to their Auto Scaling group).
    pub acted: u32,
    /// Whether the target was read (a refusal by a pause, the breaker or the cooldown reads nothing).
    pub read: bool,
    /// Set when this run opened the target's breaker: what tripped it and why.
    pub tripped: Option<(&'static str, String)>,
}

impl Run {
    /// The audit outcome of this run.
    pub fn outcome(&self) -> Outcome {
        if self.summary.refused.is_some() {
            Outcome::Refused
        } else {
            Outcome::Completed
        }
    }

    /// A run that answered without reading its target.
    fn unread(summary: Summary) -> Self {
        Self {
            summary,
            acted: 0,
            read: false,
            tripped: None,
        }
    }
}

/// The result of one TerminateInstances or SetInstanceHealth call, as recorded in the audit trail.
#[derive(Debug, Serialize)]
struct ActionResult<'a> {
    instance_id: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_scaling_group: Option<&'a str>,
    /// What AWS answered: the instance's new state, or the health status set.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How long a run that is about to act waits for another process's run on the same target to finish.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The lease every acting run takes besides its target's, so that runs of different targets in different
/// processes count the global budgets one after the other.
const BUDGET_LEASE: &str = "*";

/// A claimed recovery check whose target could not be read is tried again (by any process) after this long.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A plan, with the last action it was made against (to tell whether another run acted since).
struct Observed {
    plan: Plan,
    last_action_at: Option<OffsetDateTime>,
    /// Instances InService when the target was read.
    in_service: usize,
}

/// Runs remediations; one per target at a time.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    fleet: Arc<dyn Fleet>,
    audit: AuditStore,
    metrics: Arc<Metrics>,
    targets: targets::Targets,
    slots: Semaphore,
    notifier: Notifier,
    /// Held by a run of this process from reading the budgets until its intent is written.
    budget_gate: tokio::sync::Mutex<()>,
}

impl Engine {
    /// Builds the engine over the configured targets and the fleet that serves them; looks every target
    /// group up first and refuses to start when one is missing or not made of instances.
    pub async fn start(
        config: Arc<Config>,
        fleet: Arc<dyn Fleet>,
        audit: AuditStore,
        metrics: Arc<Metrics>,
        notifier: Notifier,
    ) -> Result<Self, StartError> {
        let targets = targets::Targets::resolve(&config, fleet.as_ref()).await?;
        let slots = Semaphore::new(config.remediation.max_concurrent);
        Ok(Self {
            config,
            fleet,
            audit,
            metrics,
            targets,
            slots,
            notifier,
            budget_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// One recorded run: remediates for a verified trigger and writes the run's audit record (`meta`, which
    /// the receiver started with who called and what was verified) before returning. A claimed `delivery` is
    /// completed with the answer, or released on failure, in the same commit. Every receiver and the CLI
    /// come through here.
    pub async fn run(
        &self,
        mut meta: RequestMeta,
        trigger: &Trigger,
        delivery: Option<DeliveryKey>,
    ) -> Result<Run, EngineError> {
        let previous = delivery
            .as_ref()
            .and_then(DeliveryKey::previous)
            .map(str::to_owned);
        let audit_id = meta.id.clone();
        let mut result = self
            .remediate(&mut meta, trigger, previous.as_deref())
            .await;
        let tripped = self.count_failures(&mut meta, &mut result).await;
        let (record, settle) = match &result {
            Ok(run) => {
                meta.note("answer", &run.summary);
                let answer = Reply::Summary(Box::new(run.summary.clone()));
                (
                    meta.into_record(run.outcome(), 200, None, run.acted),
                    delivery.map(|key| key.complete(answer.redelivered())),
                )
            }
            Err(err) => {
                self.metrics
                    .count_rejection(meta.source.as_str(), err.code());
                meta.note("error", err.to_string());
                (
                    meta.into_record(Outcome::Rejected, err.status(), Some(err.code()), 0),
                    delivery.map(DeliveryKey::release),
                )
            }
        };
        let meta_target = record.target.clone();
        self.audit.put_settling(record, settle).await?;
        match (&result, &meta_target, tripped) {
            (Ok(run), Some(target), _) => self.announce(target, run, &audit_id),
            (Err(_), Some(target), Some(reason)) => self.notifier.send(Event::new(
                NotifyEvent::BreakerTripped,
                target,
                reason,
                &audit_id,
            )),
            _ => {}
        }
        result
    }

    /// The breaker's count of consecutive runs that hit AWS errors: one more for a run that failed to read
    /// its target or whose actions failed, back to 0 for one that read it cleanly. Noted in the record when it
    /// opens the breaker; why it opened, then.
    async fn count_failures(
        &self,
        meta: &mut RequestMeta,
        result: &mut Result<Run, EngineError>,
    ) -> Option<String> {
        let target = meta.target.clone()?;
        let failed = match result {
            Err(EngineError::Fleet(_) | EngineError::TargetNotFound(_)) => true,
            Ok(run) => !run.summary.errors.is_empty(),
            Err(_) => false,
        };
        let changed = if failed {
            self.audit
                .breaker_failed(&target, self.config.remediation.breaker_after_failures)
                .await
        } else if result.as_ref().is_ok_and(|run| run.read) {
            self.audit.breaker_succeeded(&target).await.map(|()| false)
        } else {
            Ok(false)
        };
        match changed {
            Ok(true) => {
                let reason = format!(
                    "{} consecutive runs hit AWS errors",
                    self.config.remediation.breaker_after_failures
                );
                self.tripped(meta, "aws-errors", &reason);
                if let Ok(run) = result {
                    run.tripped = Some(("aws-errors", reason.clone()));
                }
                Some(reason)
            }
            Ok(false) => None,
            Err(err) => {
                tracing::error!(error = %err, "cannot count the run for the breaker");
                None
            }
        }
    }

    /// Notes and counts that this run opened its target's breaker.
    fn tripped(&self, meta: &mut RequestMeta, what: &'static str, reason: &str) {
        tracing::error!(
            what,
            reason,
            "breaker opened: the target is refused until `reflex breaker reset`"
        );
        meta.note(
            "breaker",
            serde_json::json!({"tripped": what, "reason": reason}),
        );
        self.metrics
            .breaker_trips
            .get_or_create(&TripLabels { reason: what })
            .inc();
    }

    /// Sends the run's events: it acted, it was refused for news about the target (not a standing cooldown,
    /// pause or open breaker, answered to every alert while it lasts), it opened the breaker.
    fn announce(&self, target: &str, run: &Run, audit_id: &str) {
        let summary = &run.summary;
        if run.acted > 0 {
            let mut replaced = summary.terminated_instance_ids.clone();
            replaced.extend(summary.asg_unhealthy_instance_ids.iter().cloned());
            self.notifier.send(Event::new(
                NotifyEvent::Acted,
                target,
                format!("replaced {}", replaced.join(", ")),
                audit_id,
            ));
        }
        if let (Some(sentence), Some(rule)) = (&summary.refused, summary.refused_rule)
            && !plan::STANDING_RULES.contains(&rule)
        {
            self.notifier.send(Event::new(
                NotifyEvent::Refused,
                target,
                sentence.clone(),
                audit_id,
            ));
        }
        if let Some((_, reason)) = &run.tripped {
            self.notifier.send(Event::new(
                NotifyEvent::BreakerTripped,
                target,
                reason.clone(),
                audit_id,
            ));
        }
    }

    /// The run itself, noting each step in `meta` and writing the intent durably before any AWS write. A run
    /// that will act takes the target's lease in the store first (one acting run per target across
    /// processes), and looks again when another run acted meanwhile. `previous` is a dead attempt at the same
    /// delivery that this run takes over.
    #[tracing::instrument(skip_all, fields(request_id = %meta.id, target = %trigger.target))]
    async fn remediate(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        previous: Option<&str>,
    ) -> Result<Run, EngineError> {
        let dry_run = trigger.dry_run || self.config.remediation.dry_run;
        meta.dry_run = dry_run;
        // Only a configured name is recorded as the target; anything else is the caller's text, bounded.
        let target = self.targets.find(&trigger.target).ok_or_else(|| {
            EngineError::UnknownTarget(
                trigger.target.kind(),
                crate::untrusted::bounded(trigger.target.value()),
            )
        })?;
        meta.target = Some(target.name.clone());
        let _single_flight = target.lock.lock().await;
        let _slot = self
            .slots
            .try_acquire()
            .map_err(|_| EngineError::Busy(self.config.remediation.max_concurrent))?;

        if let Some(previous) = previous {
            tracing::warn!(previous, "taking over a delivery whose first attempt died");
        }
        // The kill switch and the breaker: a paused target, or one whose breaker is open, is not even read.
        let brakes = self.audit.brakes_of(&target.name).await?;
        let stopped = match (brakes.pause, brakes.breaker) {
            (Some(pause), _) => Some(Refusal::Paused {
                reason: pause.reason,
            }),
            (None, Some(breaker)) => Some(Refusal::BreakerOpen {
                reason: breaker.reason,
            }),
            (None, None) => None,
        };
        if let Some(refusal) = stopped {
            let summary = refused_unread(meta, trigger, target, refusal, dry_run);
            return Ok(self.counted(Run::unread(summary)));
        }
        if !dry_run
            && let Some(summary) = self.cooling_down(meta, trigger, target, previous).await?
        {
            return Ok(self.counted(Run::unread(summary)));
        }
        let mut observed = self.observe(meta, target, previous).await?;
        let acting = !dry_run && !observed.plan.act_on.is_empty();
        if acting {
            for lease in [target.name.as_str(), BUDGET_LEASE] {
                if !self.audit.lease_target(lease, &meta.id, LEASE_WAIT).await? {
                    return Err(EngineError::TargetBusy(target.name.clone()));
                }
            }
            if self.audit.last_action_at(&target.name, previous).await? != observed.last_action_at {
                // Another process acted on this target since we looked: look again, holding the lease.
                observed = self.observe(meta, target, previous).await?;
            }
        }
        // From reading the budgets until the intent counts against them, no other run of this process reads
        // them (other processes wait for the budget lease).
        let budget_gate = if acting {
            Some(self.budget_gate.lock().await)
        } else {
            None
        };
        let mut plan = observed.plan;
        let mut tripped = None;
        if !plan.act_on.is_empty() {
            let used = budget::usage(&self.audit, &target.name, OffsetDateTime::now_utc()).await?;
            let left = budget::Left::of(budget::Budgets::from(&self.config.remediation), used);
            meta.note("budget_left", left);
            if plan::within_budget(&mut plan, left.allowed()) {
                let (key, allowed) = left.tightest();
                let reason = format!("budget exhausted: remediation.{key} leaves {allowed} now");
                meta.note("plan", &plan);
                if !dry_run && self.audit.trip_breaker(&target.name, &reason).await? {
                    self.tripped(meta, "budget", &reason);
                    tripped = Some(("budget", reason));
                }
            }
        }
        let mut summary = Summary::of_plan(
            trigger.message.clone(),
            target.names.clone(),
            &plan,
            dry_run,
            meta.id.clone(),
        );
        if dry_run || plan.act_on.is_empty() {
            tracing::info!(would_replace = ?plan.act_on, refused = ?summary.refused, dry_run, "planned");
            return Ok(self.counted(Run {
                summary,
                acted: 0,
                read: true,
                tripped,
            }));
        }

        let intended = u32::try_from(plan.act_on.len()).unwrap_or(u32::MAX);
        meta.acted_at = Some(OffsetDateTime::now_utc());
        self.audit
            .put(meta.record(Outcome::Acting, 0, None, intended))
            .await?;
        drop(budget_gate);
        let mut results = Vec::with_capacity(plan.act_on.len());
        summary.terminated_instance_ids.clear();
        summary.asg_unhealthy_instance_ids.clear();
        for act in &plan.act_on {
            let instance_id = act.instance_id.as_str();
            let (operation, result) = match act.action {
                Replacement::Terminate => (
                    "TerminateInstances",
                    self.fleet.terminate(instance_id).await,
                ),
                Replacement::AsgUnhealthy => (
                    "SetInstanceHealth",
                    self.fleet.mark_unhealthy(instance_id).await,
                ),
            };
            let (new_state, error) = match result {
                Ok(new_state) => {
                    tracing::warn!(instance_id, operation, new_state, group = ?act.auto_scaling_group, "replaced");
                    match act.action {
                        Replacement::Terminate => &mut summary.terminated_instance_ids,
                        Replacement::AsgUnhealthy => &mut summary.asg_unhealthy_instance_ids,
                    }
                    .push(instance_id.to_owned());
                    (Some(new_state), None)
                }
                Err(err) => {
                    tracing::error!(instance_id, operation, error = %err, "replacement failed");
                    summary.errors.push(ActionError {
                        instance_id: instance_id.to_owned(),
                        error: err.to_string(),
                    });
                    (None, Some(err.to_string()))
                }
            };
            results.push(ActionResult {
                instance_id,
                action: operation,
                auto_scaling_group: act.auto_scaling_group.as_deref(),
                new_state,
                error,
            });
        }
        meta.note("actions", &results);
        meta.acted_at = Some(OffsetDateTime::now_utc());
        let acted =
            summary.terminated_instance_ids.len() + summary.asg_unhealthy_instance_ids.len();
        let acted = u32::try_from(acted).unwrap_or(u32::MAX);
        if acted > 0 {
            let verify_after = time::Duration::seconds(
                i64::try_from(self.config.remediation.verify_after_secs).unwrap_or(i64::MAX),
            );
            let check = RecoveryCheck {
                run_id: meta.id.clone(),
                target: target.name.clone(),
                expected_in_service: u32::try_from(observed.in_service)
                    .unwrap_or(u32::MAX)
                    .saturating_add(acted),
                due: OffsetDateTime::now_utc() + verify_after,
            };
            meta.note(
                "recovery_check",
                serde_json::json!({"expected_in_service": check.expected_in_service, "due": check.due.unix_timestamp()}),
            );
            self.audit.schedule_check(check).await?;
        }
        Ok(self.counted(Run {
            summary,
            acted,
            read: true,
            tripped,
        }))
    }

    /// Runs the oldest due recovery check, if one is due and no other process has it: reads the target again
    /// and records `recovered` (at least as many instances InService as before the run plus those it replaced)
    /// or `not-recovered`, which opens the breaker. The record and the check's removal are one commit, so the
    /// check runs once; one whose target cannot be read stays and is tried again later. Whether one was due.
    pub async fn check_recovery(&self) -> Result<bool, EngineError> {
        let Some(check) = self.audit.take_check(RECHECK_AFTER).await? else {
            return Ok(false);
        };
        let mut meta = RequestMeta::new(Source::RecoveryCheck, None);
        meta.target = Some(check.target.clone());
        meta.note(
            "recovery",
            serde_json::json!({"run": check.run_id, "expected_in_service": check.expected_in_service}),
        );
        let Some(target) = self.targets.by_name(&check.target) else {
            meta.note("ignored", "the target is no longer configured");
            let record = meta.into_record(Outcome::Ignored, 200, None, 0);
            self.audit.put_checked(record, &check.run_id).await?;
            return Ok(true);
        };
        let snapshot = match self.fleet.snapshot(&target.fleet_ref).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                Metrics::count(&self.metrics.recovery_checks, "failed");
                tracing::warn!(run = check.run_id, error = %err, "recovery check cannot read its target; trying again later");
                return Ok(false);
            }
        };
        let in_service = u32::try_from(snapshot.in_service()).unwrap_or(u32::MAX);
        let recovered = in_service >= check.expected_in_service;
        meta.note("seen", &snapshot);
        meta.note("in_service", in_service);
        let (outcome, name) = if recovered {
            (Outcome::Recovered, "recovered")
        } else {
            (Outcome::NotRecovered, "not-recovered")
        };
        Metrics::count(&self.metrics.recovery_checks, name);
        let mut events = Vec::new();
        if !recovered {
            let reason = format!(
                "not recovered after run {}: {in_service} of {} instances InService",
                check.run_id, check.expected_in_service
            );
            tracing::error!(target = check.target, reason, "target did not recover");
            events.push((NotifyEvent::NotRecovered, reason.clone()));
            if self.audit.trip_breaker(&check.target, &reason).await? {
                self.tripped(&mut meta, "not-recovered", &reason);
                events.push((NotifyEvent::BreakerTripped, reason));
            }
        }
        let audit_id = meta.id.clone();
        let record = meta.into_record(outcome, 200, None, 0);
        self.audit.put_checked(record, &check.run_id).await?;
        for (event, text) in events {
            self.notifier
                .send(Event::new(event, &check.target, text, &audit_id));
        }
        Ok(true)
    }

    /// Storm coalescing: while the target cools down after a run acted (in any process sharing the store), an
    /// alert is answered from the store alone, refused with the time left, and no AWS call is made. Runs of one
    /// target queue on its lock, so a storm that arrives while the first run acts is answered this way as soon
    /// as that run has acted. A dry run still looks: it was asked what would happen.
    async fn cooling_down(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        target: &targets::Target,
        previous: Option<&str>,
    ) -> Result<Option<Summary>, EngineError> {
        let clock = Clock {
            now: OffsetDateTime::now_utc(),
            last_action_at: self.audit.last_action_at(&target.name, previous).await?,
        };
        let cooldown = std::time::Duration::from_secs(self.config.remediation.cooldown_secs);
        Ok(plan::cooldown_refusal(cooldown, clock)
            .map(|refusal| refused_unread(meta, trigger, target, refusal, false)))
    }

    /// Reads the target (health, EC2 facts, Auto Scaling membership when the action needs it) and plans,
    /// noting what was seen and planned. A takeover's cap counts what its dead attempt already replaced.
    async fn observe(
        &self,
        meta: &mut RequestMeta,
        target: &targets::Target,
        previous: Option<&str>,
    ) -> Result<Observed, EngineError> {
        let mut snapshot = self
            .fleet
            .snapshot(&target.fleet_ref)
            .await
            .map_err(|err| match err.kind {
                FailureKind::NotFound => EngineError::TargetNotFound(target.fleet_ref.clone()),
                _ => EngineError::Fleet(err),
            })?;
        if target.action != Action::Terminate {
            self.find_groups(&mut snapshot).await?;
        }
        meta.note("seen", &snapshot);
        let clock = Clock {
            now: OffsetDateTime::now_utc(),
            last_action_at: self.audit.last_action_at(&target.name, previous).await?,
        };
        let mut policy = Policy {
            action: target.action,
            ..Policy::from(&self.config.remediation)
        };
        if let Some(previous) = previous {
            let done = self.replaced_by(previous, &snapshot).await?;
            meta.note(
                "takeover",
                serde_json::json!({"of": previous, "already_replaced": done}),
            );
            policy.max_terminations_per_run =
                policy.max_terminations_per_run.saturating_sub(done.len());
        }
        let plan = plan::plan(&snapshot, &policy, clock);
        meta.note("plan", &plan);
        Ok(Observed {
            plan,
            last_action_at: clock.last_action_at,
            in_service: snapshot.in_service(),
        })
    }

    /// The instances a dead attempt planned to replace that EC2 now shows shutting down or terminated: it
    /// replaced them before it died.
    async fn replaced_by(
        &self,
        previous: &str,
        snapshot: &snapshot::Snapshot,
    ) -> Result<Vec<String>, EngineError> {
        let Some(record) = self.audit.get(previous).await? else {
            // It died before recording its intent: it replaced nothing.
            return Ok(Vec::new());
        };
        let planned: Vec<Act> =
            serde_json::from_value(record.detail["plan"]["act_on"].clone()).unwrap_or_default();
        Ok(planned
            .into_iter()
            .filter(|act| {
                snapshot.instances.iter().any(|instance| {
                    instance.instance_id == act.instance_id
                        && instance.ec2.as_ref().is_some_and(|ec2| {
                            matches!(ec2.state.as_str(), "shutting-down" | "terminated")
                        })
                })
            })
            .map(|act| act.instance_id)
            .collect())
    }

    /// Fills in the Auto Scaling group of every instance that could be acted on (OutOfService and known to
    /// EC2): one DescribeAutoScalingInstances call per run for up to 50 of them.
    async fn find_groups(&self, snapshot: &mut snapshot::Snapshot) -> Result<(), EngineError> {
        let candidates: Vec<String> = snapshot
            .instances
            .iter()
            .filter(|i| i.health.state == snapshot::HealthState::OutOfService && i.ec2.is_some())
            .map(|i| i.instance_id.clone())
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let mut groups = self
            .fleet
            .auto_scaling_groups(&candidates)
            .await
            .map_err(EngineError::Fleet)?;
        for instance in &mut snapshot.instances {
            instance.auto_scaling_group = groups.remove(&instance.instance_id);
        }
        Ok(())
    }

    /// Counts a finished run in the metrics.
    fn counted(&self, run: Run) -> Run {
        let summary = &run.summary;
        let dry_run = Metrics::flag(summary.dry_run);
        self.metrics
            .remediation_runs
            .get_or_create(&RunLabels {
                outcome: run.outcome().as_str(),
                dry_run,
            })
            .inc();
        self.metrics
            .instances_terminated
            .get_or_create(&DryRunLabels { dry_run })
            .inc_by(summary.terminated_instance_ids.len() as u64);
        self.metrics
            .instances_marked_unhealthy
            .get_or_create(&DryRunLabels { dry_run })
            .inc_by(summary.asg_unhealthy_instance_ids.len() as u64);
        if let Some(rule) = summary.refused_rule {
            Metrics::count(&self.metrics.refusals, rule);
        }
        for skip in &summary.skipped {
            self.metrics
                .instances_skipped
                .get_or_create(&SkipLabels {
                    reason: skip.reason.as_str(),
                })
                .inc();
        }
        run
    }
}

#[cfg(test)]
mod tests;

/// The answer to a run refused before the target was read (paused, cooling down): the refusal, noted as the
/// run's plan, and nothing else.
fn refused_unread(
    meta: &mut RequestMeta,
    trigger: &Trigger,
    target: &targets::Target,
    refusal: Refusal,
    dry_run: bool,
) -> Summary {
    let plan = Plan {
        refused: Some(refusal),
        ..Plan::default()
    };
    meta.note("plan", &plan);
    tracing::info!(refused = ?plan.refused, "answered without reading the target");
    Summary::of_plan(
        trigger.message.clone(),
        target.names.clone(),
        &plan,
        dry_run,
        meta.id.clone(),
    )
}
