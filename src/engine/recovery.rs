//! The check stage: a run that acted is checked again `remediation.verify_after_secs` later, by whichever
//! process sharing the store takes the check first. The target is read once more: at least as many
//! instances InService as before the run plus those it replaced is `recovered`; fewer is `not-recovered`,
//! which opens the breaker.

use time::OffsetDateTime;

use super::breaker::Trip;
use super::decide::Decision;
use super::{Engine, EngineError};
use crate::audit::{Outcome, RecoveryCheck, RequestMeta, Source};
use crate::config::NotifyEvent;
use crate::metrics::Metrics;
use crate::notify::Event;

/// A claimed recovery check whose target could not be read is tried again (by any process) after this long.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Engine {
    /// Schedules the recovery check of a run that replaced `acted` instances as `decision` decided, noted.
    pub(super) async fn schedule_check(
        &self,
        meta: &mut RequestMeta,
        decision: &Decision,
        acted: u32,
    ) -> Result<(), EngineError> {
        let verify_after = time::Duration::seconds(
            i64::try_from(self.config.remediation.verify_after_secs).unwrap_or(i64::MAX),
        );
        let check = RecoveryCheck {
            run_id: decision.run_id.clone(),
            target: decision.target.clone(),
            expected_in_service: decision.in_service.saturating_add(acted),
            due: OffsetDateTime::now_utc() + verify_after,
        };
        meta.note(
            "recovery_check",
            serde_json::json!({"expected_in_service": check.expected_in_service, "due": check.due.unix_timestamp()}),
        );
        Ok(self.audit.schedule_check(check).await?)
    }

    /// Runs the oldest due recovery check, if one is due and no other process has it: reads the target again
    /// and records `recovered` or `not-recovered`. The record and the check's removal are one commit, so the
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
        let snapshot = match target.fleet.snapshot(&target.fleet_ref).await {
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
            if let Some(tripped) = self
                .trip(&mut meta, &check.target, Trip::NotRecovered, reason)
                .await?
            {
                events.push((NotifyEvent::BreakerTripped, tripped.reason));
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
}
