//! The remediation engine. A run is a page of stages, each a module with one job: `gate` (refusals before any
//! AWS read), `observe` (what AWS shows), `decide` (the plan, the leases and the budgets, as a typed
//! `Decision`), `act` (the intent, then each step through the target's `Fleet` port) and `recovery` (the
//! check after the run's wait); `breaker` keeps the count of failing runs. Receivers hand the engine a
//! verified `Trigger`; it reaches the fleet only through its own `port::Fleet`, never through an SDK type,
//! and names no HTTP status (its errors say theirs).

mod act;
pub mod action;
mod action_limits;
mod breaker;
pub mod budget;
mod change;
mod check;
mod decide;
mod decision;
mod earlier_checks;
mod error;
mod gate;
pub mod health;
pub mod hold;
pub mod keys;
pub mod kinds_check;
mod ladder;
mod named;
mod observe;
pub mod plan;
pub mod port;
mod quiet;
mod recovery;
mod refusal;
pub mod relapse;
mod remediate;
mod report;
mod resolved;
mod route;
mod rule_check;
pub mod snapshot;
mod summary;
mod targets;
mod trigger;
mod zones;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use crate::contract::{
    ActEntry, ActionError, ApprovalRef, Names, Reply, SubscriptionReply, Summary,
};
pub use breaker::{Trip, Tripped};
pub use check::{Check, JOB_KIND as CHECK_JOB};
pub use decision::Decision;
pub use earlier_checks::{
    LADDER_JOB as LADDER_CHECK_JOB, RECOVERY_JOB as RECOVERY_CHECK_JOB, RecoveryCheck, StepCheck,
};
pub use error::EngineError;
pub use gate::window_refusal;
pub use plan::{Act, Clock, Plan, Policy, Refusal, Skip, SkipReason};
pub use report::Run;
pub use route::{ManualRefusal, Matched, is_instance_id, named_by, named_instance};
pub use targets::{FleetOf, StartError, probe_targets};
pub use trigger::{AlertNames, Approved, Authenticated, NextStep, Resources, Resume, Trigger};

use crate::audit::{ApprovalWrite, AuditStore, DeliveryKey, Home, RequestMeta};
use crate::config::{Config, TargetConfig};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use action::Kinds;
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
    /// The action kinds the targets' ladders name.
    kinds: Kinds,
    /// When each target's last routine notice was sent.
    quiet: quiet::Quiet,
    /// The configured rules, compiled: which alerts a rule's response is for.
    rules: crate::rules::Rules,
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
        kinds: Kinds,
    ) -> Result<Self, StartError> {
        let fleet_of = |_: &TargetConfig| (Arc::clone(&fleet), home.clone());
        Self::start_with(
            config,
            home.clone(),
            &fleet_of,
            audit,
            metrics,
            notifier,
            kinds,
        )
        .await
    }

    /// Like `start`, with each target in the place and served by the fleet `fleet_of` gives it.
    pub async fn start_with(
        config: Arc<Config>,
        home: Home,
        fleet_of: FleetOf<'_>,
        audit: AuditStore,
        metrics: Arc<Metrics>,
        notifier: Notifier,
        kinds: Kinds,
    ) -> Result<Self, StartError> {
        let kinds = kinds.check(&config)?;
        let rules = crate::rules::Rules::for_config(&config, &home.account)?;
        let targets = targets::Targets::resolve(&config, fleet_of, &kinds).await?;
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
            kinds,
            quiet: quiet::Quiet::default(),
            rules,
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
        // Only a takeover of a dead attempt copies the trigger, to add what it resumes.
        let taken_over;
        let trigger = match delivery.as_ref().and_then(DeliveryKey::previous) {
            Some(previous) => {
                taken_over = trigger.clone().taking_over(previous);
                &taken_over
            }
            None => trigger,
        };
        let audit_id = meta.id.clone();
        let (target, mut result) = match self.targets.one(&trigger.target, &trigger.place) {
            Ok(target) => {
                meta.concerns(&target.id);
                let run = self.remediate(&mut meta, trigger, target);
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
        let approval = match (&result, &trigger.resume.approved) {
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
}

#[cfg(test)]
mod tests;
