//! The remediation engine. A run is a page of stages, each a module with one job: `gate` (refusals before any
//! AWS read), `observe` (what AWS shows), `decide` (the plan, the leases and the budgets, as a typed
//! `Decision`), `act` (the intent, then each step through the target's `Fleet` port) and `recovery` (the
//! check after the run's wait); `breaker` keeps the count of failing runs. Receivers hand the engine a
//! verified `Trigger`; it reaches the fleet only through its own `port::Fleet`, never through an SDK type,
//! and names no HTTP status (its errors say theirs).

mod act;
mod breaker;
pub mod budget;
mod change;
mod decide;
mod error;
mod gate;
pub mod health;
pub mod hold;
mod ladder;
mod observe;
pub mod plan;
pub mod port;
mod recovery;
pub mod relapse;
mod reply;
mod report;
pub mod snapshot;
mod summary;
mod targets;
mod trigger;
mod zones;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use breaker::{Trip, Tripped};
pub use decide::Decision;
pub use error::EngineError;
pub use ladder::{JOB_KIND as LADDER_CHECK_JOB, StepCheck};
pub use plan::{Act, Clock, Plan, Policy, Refusal, Replacement, Skip, SkipReason};
pub use recovery::{JOB_KIND as RECOVERY_CHECK_JOB, RecoveryCheck};
pub use reply::{Reply, SubscriptionReply};
pub use report::Run;
pub use summary::{ActionError, ApprovalRef, Names, Summary};
pub use targets::{FleetOf, StartError, probe_targets};
pub use trigger::{Approved, Authenticated, NextStep, Trigger};

use crate::audit::{ApprovalWrite, AuditStore, DeliveryKey, EpisodeWrite, Home, RequestMeta};
use crate::config::{Config, Mode, Rung, TargetConfig};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use ladder::Step;
use port::Fleet;

/// Runs remediations; one per target at a time.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    audit: AuditStore,
    metrics: Arc<Metrics>,
    targets: targets::Targets,
    slots: Semaphore,
    notifier: Notifier,
    /// Held by a run of this process from reading the budgets until its intent is written.
    budget_gate: tokio::sync::Mutex<()>,
    /// Where reflex runs: the place of work recorded before targets had one is this.
    home: Home,
}

impl Engine {
    /// Builds the engine over the configured targets, every one in `home` and served by `fleet`; looks every
    /// target group up first and refuses to start when one is missing or not made of instances.
    pub async fn start(
        config: Arc<Config>,
        home: Home,
        fleet: Arc<dyn Fleet>,
        audit: AuditStore,
        metrics: Arc<Metrics>,
        notifier: Notifier,
    ) -> Result<Self, StartError> {
        let fleet_of = |_: &TargetConfig| (Arc::clone(&fleet), home.clone());
        Self::start_with(config, home.clone(), &fleet_of, audit, metrics, notifier).await
    }

    /// Like `start`, with each target in the place and served by the fleet `fleet_of` gives it.
    pub async fn start_with(
        config: Arc<Config>,
        home: Home,
        fleet_of: FleetOf<'_>,
        audit: AuditStore,
        metrics: Arc<Metrics>,
        notifier: Notifier,
    ) -> Result<Self, StartError> {
        let targets = targets::Targets::resolve(&config, fleet_of).await?;
        let slots = Semaphore::new(config.remediation.max_concurrent);
        Ok(Self {
            config,
            audit,
            metrics,
            targets,
            slots,
            notifier,
            budget_gate: tokio::sync::Mutex::new(()),
            home,
        })
    }

    /// The configuration the engine runs under.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The notifier the engine's runs send their events through.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Where reflex runs: the account and region of every configured target.
    pub fn home(&self) -> &Home {
        &self.home
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
        let (target, mut result) = match self.targets.one(&trigger.target, &trigger.place) {
            Ok(target) => {
                meta.concerns(&target.id);
                let run = self.remediate(&mut meta, trigger, target, previous.as_deref());
                (
                    Some(target),
                    port::RUN_ID.scope(audit_id.clone(), run).await,
                )
            }
            Err(refused) => (None, Err(refused)),
        };
        let tripped = match target {
            Some(target) => {
                self.count_failures(&mut meta, &target.id, &mut result)
                    .await
            }
            None => None,
        };
        let (record, settle, jobs) = self.finished(meta, &result, delivery, tripped, &audit_id);
        // A held decision is written with its run's record; an approval's run is named in the decision.
        let approval = match (&result, &trigger.approval) {
            (
                Ok(Run {
                    hold: Some(hold), ..
                }),
                _,
            ) => Some(ApprovalWrite::Hold(hold.clone())),
            (Ok(_), Some(approved)) => Some(ApprovalWrite::ActedOn(approved.id.clone())),
            _ => None,
        };
        let episode = result.as_ref().ok().and_then(|run| run.episode.clone());
        let dropped = self
            .audit
            .put_run(record, settle, jobs, approval, episode)
            .await?;
        self.notifier.count_dropped(dropped);
        result
    }

    /// The run itself, stage by stage, noting each step in `meta`: the gate, then the decision (observing the
    /// target), then the actions with the intent durable before any AWS write, then the recovery check
    /// scheduled. `previous` is a dead attempt at the same delivery that this run takes over.
    #[tracing::instrument(skip_all, fields(request_id = %meta.id, target = %trigger.target))]
    async fn remediate(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        target: &targets::Target,
        previous: Option<&str>,
    ) -> Result<Run, EngineError> {
        // A target in observe mode runs every stage up to the decision and records what it would have done;
        // one in approve mode holds a decision to act for approvers, unless this run is their approval.
        let observing = target.mode == Mode::Observe;
        let dry_run = trigger.dry_run || self.config.remediation.dry_run || observing;
        let holding = target.mode == Mode::Approve && trigger.approval.is_none() && !dry_run;
        meta.dry_run = dry_run;
        let _single_flight = target.lock.lock().await;
        let _slot = self
            .slots
            .try_acquire()
            .map_err(|_| EngineError::Busy(self.config.remediation.max_concurrent))?;
        if let Some(previous) = previous {
            tracing::warn!(previous, "taking over a delivery whose first attempt died");
        }
        let summary_of = |meta: &RequestMeta, plan: &Plan| {
            let (message, names) = (trigger.message.clone(), target.names.clone());
            let mut summary = Summary::of_plan(message, names, plan, dry_run, meta.id.clone());
            summary.mode = (target.mode != Mode::Auto).then_some(target.mode.as_str());
            summary
        };
        // A run refused before it read its target (the gate), or as it was about to act (a brake that landed
        // meanwhile): nothing acted.
        let refused = |meta: &mut RequestMeta, refusal, read, tripped| {
            let plan = Plan {
                refused: Some(refusal),
                ..Plan::default()
            };
            meta.note("plan", &plan);
            tracing::info!(refused = ?plan.refused, read, "refused");
            self.counted(Run::nothing_done(summary_of(meta, &plan), read, tripped))
        };
        // The step of the target's ladder this run takes; the earlier step of its episode is no cooldown for it.
        let step = Step::of(trigger, target);
        let except: Vec<&str> = previous.into_iter().chain(step.after).collect();
        if let Some(refusal) = self.gate(target, dry_run, &except).await? {
            let refused = refused(meta, refusal, false, None);
            return Ok(step.recorded(refused, meta, target, Vec::new()));
        }
        let only = match (&trigger.approval, &trigger.ladder) {
            (Some(approved), _) => Some((approved.instances.as_slice(), SkipReason::NotApproved)),
            (None, Some(next)) => Some((next.instances.as_slice(), SkipReason::NotInEpisode)),
            (None, None) => None,
        };
        let acting_now = !(dry_run || holding);
        let asked = decide::Asked {
            previous,
            except: &except,
            acting: acting_now,
            only,
            rung: step.rung,
        };
        let decided = self.decide(meta, target, asked).await?;
        let mut summary = summary_of(meta, &decided.plan);
        let tripped = decided.tripped.clone();
        let relapsed = decided.relapsed.clone();
        if holding && !decided.decision.steps.is_empty() {
            let held = self.hold(meta, target, decided, summary, trigger.ladder.as_ref());
            return Ok(step.recorded(held.await?, meta, target, Vec::new()));
        }
        if dry_run || holding || decided.decision.steps.is_empty() {
            tracing::info!(would_act = ?decided.plan.act_on, refused = ?summary.refused, dry_run, "planned");
            let run = self.counted(Run::nothing_done(summary, true, tripped));
            return Ok(step.recorded(run, meta, target, relapsed));
        }
        let decision = decided.decision.clone();
        let registered = decided.plan.registered.clone();
        let acted = match self.act(meta, target, decided, &mut summary).await? {
            act::Acted::Replaced(acted) => acted,
            act::Acted::Refused(refusal) => {
                let refused = refused(meta, refusal, true, tripped);
                return Ok(step.recorded(refused, meta, target, Vec::new()));
            }
        };
        let episode = step.episode.unwrap_or(&meta.id).to_owned();
        // A reboot is checked whatever AWS answered: an instance whose reboot failed is still down at its
        // check, and goes to the next step (or escalates) like one the reboot did not fix.
        let checked = acted > 0 || step.rung == Rung::Reboot;
        let check = checked.then(|| match step.rung {
            Rung::Reboot => {
                let planned: Vec<String> = decision
                    .steps
                    .iter()
                    .map(|act| act.instance_id.clone())
                    .collect();
                let after = ladder::After {
                    episode: &episode,
                    index: step.index,
                    acted,
                };
                self.step_check(meta, target, &decision, &planned, after)
            }
            Rung::Replace => {
                let replaced = summary.acted_on();
                let of = recovery::Of {
                    episode: &episode,
                    registered,
                    replaced,
                };
                self.recovery_check(meta, &target.id, &decision, acted, of)
            }
        });
        self.metrics
            .ladder_steps
            .get_or_create(&crate::metrics::StepLabels {
                step: step.rung.as_str(),
            })
            .inc_by(u64::from(acted));
        let mut run = self.counted(Run {
            check,
            acted,
            ..Run::nothing_done(summary, true, tripped)
        });
        if checked {
            let mut write = EpisodeWrite::step(&episode, &target.id, step.rung.as_str());
            write.relapsed = relapsed;
            meta.note(
                "episode",
                serde_json::json!({"id": episode, "step": step.rung.as_str()}),
            );
            run.episode = Some(write);
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests;
