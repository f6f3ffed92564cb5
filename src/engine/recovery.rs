//! The check stage: a run that acted is checked again `remediation.verify_after_secs` later, as a durable
//! job that whichever process sharing the store claims first runs once. The target is read once more: at
//! least as many instances InService as before the run plus those it replaced is `recovered`; fewer is
//! `not-recovered`, which opens the breaker.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::breaker::Trip;
use super::decide::Decision;
use super::{Engine, EngineError};
use crate::audit::{ClaimedJob, NewJob, Outcome, RequestMeta, Source};
use crate::config::NotifyEvent;
use crate::contract::ANSWERED;
use crate::metrics::Metrics;
use crate::notify::Event;
use crate::target::TargetId;

/// The job kind of a recovery check.
pub const JOB_KIND: &str = "recovery-check";

/// A check whose target could not be read is tried again (by any process) after this long.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// A recovery check's data: the run that acted, its target, and how many instances should be InService once
/// the target recovered (those InService before the run plus those it replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecoveryCheck {
    /// The audit id of the run that acted.
    pub run_id: String,
    /// Its target's name.
    pub target: String,
    /// Its target's AWS account (checks scheduled before targets had one are the home's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Its target's AWS region (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// InService instances expected once the target recovered.
    pub expected_in_service: u32,
}

impl Engine {
    /// The recovery check of a run that replaced `acted` instances as `decision` decided, noted: a job that
    /// rides in the run's final commit, so that the check is scheduled exactly when the run's record lands.
    pub(super) fn recovery_check(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        decision: &Decision,
        acted: u32,
    ) -> NewJob {
        let verify_after = Duration::from_secs(self.config.remediation.verify_after_secs);
        let due = OffsetDateTime::now_utc() + verify_after;
        let check = RecoveryCheck {
            run_id: decision.run_id.clone(),
            target: target.name.clone(),
            account: Some(target.account.clone()),
            region: Some(target.region.clone()),
            expected_in_service: decision.in_service.saturating_add(acted),
        };
        meta.note(
            "recovery_check",
            serde_json::json!({"expected_in_service": check.expected_in_service, "due": due.unix_timestamp()}),
        );
        NewJob {
            kind: JOB_KIND,
            dedup_key: Some(format!("{JOB_KIND}:{}", check.run_id)),
            delay_ms: i64::try_from(verify_after.as_millis()).unwrap_or(i64::MAX),
            payload: serde_json::to_string(&check).unwrap_or_default(),
            bounded: false,
        }
    }

    /// Why a recovery check of `target` waits, if it does: a pause, a silence or a maintenance window holds.
    async fn held_by_people(&self, target: &TargetId) -> Result<Option<String>, EngineError> {
        let brakes = self.audit.brakes_of(target).await?;
        if let Some(pause) = brakes.pause {
            return Ok(Some(format!("the target is paused: {}", pause.reason)));
        }
        if let Some(silence) = brakes.silence {
            return Ok(Some(format!("the target is silenced: {}", silence.reason)));
        }
        if self.config.windows.is_empty() {
            return Ok(None);
        }
        let now = self.audit.clock().await?.now();
        Ok(
            super::gate::window_refusal(&self.config.windows, &target.name, now)
                .map(|window| window.sentence()),
        )
    }

    /// Runs the claimed recovery check `job`: reads the target again and records `recovered` or
    /// `not-recovered`. The record, its notifications and the job's removal are one commit, so the check runs
    /// once; one whose target cannot be read, or is paused, is put back and tried again later.
    pub async fn check_recovery(&self, job: &ClaimedJob) -> Result<(), EngineError> {
        let mut meta = RequestMeta::new(Source::RecoveryCheck, None);
        let Ok(check) = serde_json::from_str::<RecoveryCheck>(&job.payload) else {
            meta.note("ignored", "the recovery check cannot be read");
            let record = meta.into_record(Outcome::Ignored, ANSWERED, None, 0);
            self.audit.finish_job(record, &job.id, Vec::new()).await?;
            return Ok(());
        };
        let account = check.account.as_deref().unwrap_or(&self.home.account);
        let region = check.region.as_deref().unwrap_or(&self.home.region);
        meta.target = Some(check.target.clone());
        meta.place = Some((account.to_owned(), region.to_owned()));
        meta.note(
            "recovery",
            serde_json::json!({"run": check.run_id, "expected_in_service": check.expected_in_service}),
        );
        let Some(target) = self.targets.by_place(&check.target, account, region) else {
            meta.note("ignored", "the target is no longer configured");
            let record = meta.into_record(Outcome::Ignored, ANSWERED, None, 0);
            self.audit.finish_job(record, &job.id, Vec::new()).await?;
            return Ok(());
        };
        // A paused or silenced target, or one in a maintenance window, is being looked after by a person: its
        // check waits until that is over, with no AWS call, rather than reading it and opening its breaker.
        if let Some(why) = self.held_by_people(&target.id).await? {
            tracing::info!(run = check.run_id, why, "recovery check waits");
            self.audit.retry_job(&job.id, RECHECK_AFTER, why).await?;
            return Ok(());
        }
        let read = target.fleet.snapshot(&target.fleet_ref);
        let snapshot = match super::port::RUN_ID.scope(meta.id.clone(), read).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                Metrics::count(&self.metrics.recovery_checks, "failed");
                tracing::warn!(run = check.run_id, error = %err, "recovery check cannot read its target; trying again later");
                self.audit
                    .retry_job(&job.id, RECHECK_AFTER, err.to_string())
                    .await?;
                return Ok(());
            }
        };
        let in_service = u32::try_from(snapshot.in_service()).unwrap_or(u32::MAX);
        meta.note("seen", &snapshot);
        meta.note("in_service", in_service);
        let events = self
            .judge(&mut meta, &target.id, &check, in_service)
            .await?;
        let outcome = if events.is_empty() {
            Outcome::Recovered
        } else {
            Outcome::NotRecovered
        };
        let record = meta.into_record(outcome, ANSWERED, None, 0);
        let dropped = self
            .audit
            .finish_job(record, &job.id, self.jobs_of(&events))
            .await?;
        self.notifier.count_dropped(dropped);
        Ok(())
    }

    /// Whether the target recovered, counted; the events of one that did not (its breaker opened).
    async fn judge(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        check: &RecoveryCheck,
        in_service: u32,
    ) -> Result<Vec<Event>, EngineError> {
        if in_service >= check.expected_in_service {
            Metrics::count(&self.metrics.recovery_checks, "recovered");
            return Ok(Vec::new());
        }
        Metrics::count(&self.metrics.recovery_checks, "not-recovered");
        let reason = format!(
            "not recovered after run {}: {in_service} of {} instances InService",
            check.run_id, check.expected_in_service
        );
        tracing::error!(target = check.target, reason, "target did not recover");
        let mut events = vec![
            Event::new(
                NotifyEvent::NotRecovered,
                &check.target,
                reason.clone(),
                &meta.id,
            )
            .at(meta.place.as_ref()),
        ];
        if let Some(tripped) = self.trip(meta, target, Trip::NotRecovered, reason).await? {
            let event = Event::new(
                NotifyEvent::BreakerTripped,
                &check.target,
                tripped.reason,
                &meta.id,
            )
            .at(meta.place.as_ref());
            events.push(event);
        }
        Ok(events)
    }
}
