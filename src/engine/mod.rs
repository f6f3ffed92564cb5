//! The remediation engine: lock the target, snapshot its health, plan within the safety limits, record the
//! intent, act per instance, summarise, and write the run's audit record. Receivers hand it a verified
//! `Trigger`; it reaches the fleet only through its own `port::Fleet`, never through an SDK type.

mod error;
pub mod plan;
pub mod port;
mod reply;
pub mod snapshot;
mod summary;
mod trigger;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore};

pub use error::EngineError;
pub use plan::{Clock, Plan, Policy, Refusal, Skip, SkipReason};
pub use reply::{Reply, SubscriptionReply};
pub use summary::{ActionError, Summary};
pub use trigger::{Authenticated, Trigger};

use crate::audit::{AuditStore, DeliveryKey, Outcome, RequestMeta};
use crate::config::Config;
use crate::metrics::{DryRunLabels, Metrics, RunLabels, SkipLabels};
use port::{FailureKind, Fleet};

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
    fleet: Arc<dyn Fleet>,
    audit: AuditStore,
    metrics: Arc<Metrics>,
    locks: HashMap<String, Arc<Mutex<()>>>,
    slots: Semaphore,
}

impl Engine {
    /// Builds the engine over the configured targets and the fleet that serves them.
    pub fn new(
        config: Arc<Config>,
        fleet: Arc<dyn Fleet>,
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
        let result = self.remediate(&mut meta, trigger).await;
        let (record, settle) = match &result {
            Ok(run) => {
                meta.note("answer", &run.summary);
                let answer = Reply::Summary(run.summary.clone());
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
        self.audit.put_settling(record, settle).await?;
        result
    }

    /// The run itself, noting each step in `meta` and writing the intent durably before any AWS write.
    #[tracing::instrument(skip_all, fields(request_id = %meta.id, load_balancer = %trigger.load_balancer))]
    async fn remediate(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
    ) -> Result<Run, EngineError> {
        let load_balancer = trigger.load_balancer.as_str();
        let dry_run = trigger.dry_run || self.config.remediation.dry_run;
        meta.dry_run = dry_run;
        // Only a configured name is recorded as the target; anything else is the caller's text, bounded.
        let lock = self
            .locks
            .get(load_balancer)
            .ok_or_else(|| EngineError::UnknownTarget(crate::untrusted::bounded(load_balancer)))?;
        meta.target = Some(load_balancer.to_owned());
        let _single_flight = lock.lock().await;
        let _slot = self
            .slots
            .try_acquire()
            .map_err(|_| EngineError::Busy(self.config.remediation.max_concurrent))?;

        let snapshot = self
            .fleet
            .snapshot(load_balancer)
            .await
            .map_err(|err| match err.kind {
                FailureKind::NotFound => EngineError::TargetNotFound(load_balancer.to_owned()),
                _ => EngineError::Fleet(err),
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
            let result = self.fleet.terminate(instance_id).await;
            let (new_state, error) = match result {
                Ok(new_state) => {
                    tracing::warn!(instance_id, new_state, "terminated");
                    summary.terminated_instance_ids.push(instance_id.clone());
                    (Some(new_state), None)
                }
                Err(err) => {
                    tracing::error!(instance_id, error = %err, "terminate failed");
                    summary.errors.push(ActionError {
                        instance_id: instance_id.clone(),
                        error: err.to_string(),
                    });
                    (None, Some(err.to_string()))
                }
            };
            results.push(ActionResult {
                instance_id,
                action: "TerminateInstances",
                new_state,
                error,
            });
        }
        meta.note("actions", &results);
        let acted = u32::try_from(summary.terminated_instance_ids.len()).unwrap_or(u32::MAX);
        Ok(self.counted(Run { summary, acted }))
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
