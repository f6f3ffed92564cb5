//! The remediation engine: lock the target, snapshot its health, plan within the safety limits, record the
//! intent, act per instance, and summarise. Receivers hand it a `Trigger`; it never sees unverified input.

pub mod plan;
pub mod snapshot;
mod summary;
mod trigger;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore};

pub use plan::{Clock, Plan, Policy, Refusal, Skip, SkipReason};
pub use summary::{ActionError, Summary};
pub use trigger::{Authenticated, Trigger};

use crate::audit::{AuditError, AuditStore, Outcome, RequestMeta};
use crate::aws::{AwsError, Fleet};
use crate::config::Config;
use crate::metrics::Metrics;

/// Why a remediation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The balancer is not listed under `[[targets]]`.
    #[error("load balancer {0:?} is not a configured target")]
    UnknownTarget(String),
    /// The balancer is configured but AWS does not know it.
    #[error(transparent)]
    LoadBalancerNotFound(AwsError),
    /// Reading the balancer's health failed (network, throttling, permissions).
    #[error(transparent)]
    Aws(AwsError),
    /// The audit trail could not be read or written, so nothing was done.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// `remediation.max_concurrent` runs are already under way; nothing was done.
    #[error("{0} remediations are already running (remediation.max_concurrent); retry later")]
    Busy(usize),
}

/// What one remediation run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The answer.
    pub summary: Summary,
    /// Instances actually terminated.
    pub acted: u32,
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
}

/// The result of one TerminateInstances call, as recorded in the audit trail.
#[derive(Debug, Serialize)]
struct ActionResult<'a> {
    instance_id: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs remediations; one per target at a time.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    fleet: Fleet,
    audit: AuditStore,
    metrics: Arc<Metrics>,
    locks: HashMap<String, Arc<Mutex<()>>>,
    slots: Semaphore,
}

impl Engine {
    /// Builds the engine over the configured targets.
    pub fn new(
        config: Arc<Config>,
        fleet: Fleet,
        audit: AuditStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        let locks = config
            .targets
            .iter()
            .map(|target| (target.load_balancer.clone(), Arc::new(Mutex::new(()))))
            .collect();
        let slots = Semaphore::new(config.remediation.max_concurrent);
        Self {
            config,
            fleet,
            audit,
            metrics,
            locks,
            slots,
        }
    }

    /// Runs one remediation for a verified trigger, recording each step in `meta` and the intent
    /// durably in the audit trail before any AWS write.
    #[tracing::instrument(skip_all, fields(request_id = %meta.id, load_balancer = %trigger.load_balancer))]
    pub async fn remediate(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
    ) -> Result<Run, EngineError> {
        let load_balancer = trigger.load_balancer.as_str();
        let dry_run = trigger.dry_run || self.config.remediation.dry_run;
        meta.target = Some(load_balancer.to_owned());
        meta.dry_run = dry_run;
        let lock = self
            .locks
            .get(load_balancer)
            .ok_or_else(|| EngineError::UnknownTarget(load_balancer.to_owned()))?;
        let _single_flight = lock.lock().await;
        let _slot = self
            .slots
            .try_acquire()
            .map_err(|_| EngineError::Busy(self.config.remediation.max_concurrent))?;

        let snapshot = self
            .fleet
            .snapshot(load_balancer)
            .await
            .map_err(|err| match err {
                AwsError::LoadBalancerNotFound(_) => EngineError::LoadBalancerNotFound(err),
                other => EngineError::Aws(other),
            })?;
        meta.note("seen", &snapshot);
        let clock = Clock {
            now: OffsetDateTime::now_utc(),
            last_action_at: self.audit.last_action_at(load_balancer).await?,
        };
        let plan = plan::plan(&snapshot, &Policy::from(&self.config.remediation), clock);
        meta.note("plan", &plan);
        let mut summary = Summary::of_plan(
            trigger.message.clone(),
            load_balancer,
            &plan,
            dry_run,
            meta.id.clone(),
        );
        if dry_run || plan.act_on.is_empty() {
            tracing::info!(would_terminate = ?plan.act_on, refused = ?summary.refused, dry_run, "planned");
            return Ok(self.counted(Run { summary, acted: 0 }));
        }

        let intended = u32::try_from(plan.act_on.len()).unwrap_or(u32::MAX);
        self.audit
            .put(meta.record(Outcome::Acting, 0, None, intended))
            .await?;
        let mut results = Vec::with_capacity(plan.act_on.len());
        summary.terminated_instance_ids.clear();
        for instance_id in &plan.act_on {
            match self.fleet.terminate(instance_id).await {
                Ok(new_state) => {
                    tracing::warn!(instance_id, new_state, "terminated");
                    summary.terminated_instance_ids.push(instance_id.clone());
                    results.push(ActionResult {
                        instance_id,
                        action: "TerminateInstances",
                        new_state: Some(new_state),
                        error: None,
                    });
                }
                Err(err) => {
                    tracing::error!(instance_id, error = %err, "terminate failed");
                    summary.errors.push(ActionError {
                        instance_id: instance_id.clone(),
                        error: err.to_string(),
                    });
                    results.push(ActionResult {
                        instance_id,
                        action: "TerminateInstances",
                        new_state: None,
                        error: Some(err.to_string()),
                    });
                }
            }
        }
        meta.note("actions", &results);
        let acted = u32::try_from(summary.terminated_instance_ids.len()).unwrap_or(u32::MAX);
        Ok(self.counted(Run { summary, acted }))
    }

    /// Counts a finished run in the metrics.
    fn counted(&self, run: Run) -> Run {
        let summary = &run.summary;
        let dry_run = if summary.dry_run { "true" } else { "false" };
        self.metrics.inc(
            "reflex_remediation_runs_total",
            &[("outcome", run.outcome().as_str()), ("dry_run", dry_run)],
        );
        self.metrics.add(
            "reflex_instances_terminated_total",
            &[("dry_run", dry_run)],
            summary.terminated_instance_ids.len() as u64,
        );
        for skip in &summary.skipped {
            self.metrics.inc(
                "reflex_instances_skipped_total",
                &[("reason", skip.reason.as_str())],
            );
        }
        run
    }
}
