//! The breaker's side of a run: what opened it (a typed `Trip`), the count of consecutive runs that hit AWS
//! errors, and noting a trip in the run's record and metrics. The breaker's state lives in the audit store.

use super::{Engine, EngineError, Run};
use crate::audit::RequestMeta;
use crate::metrics::TripLabels;
use crate::target::TargetId;

/// What opened a target's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// A run was cut short by an exhausted budget.
    Budget,
    /// `remediation.breaker_after_failures` consecutive runs hit AWS errors.
    AwsErrors,
    /// The last step of the target's ladder did not fix it (a recovery check found it short, or a rebooted
    /// instance still down with no step after): a person is needed.
    Escalated,
    /// Instances that replaced broken ones kept breaking (`remediation.relapse_limit` in the window).
    Relapsing,
}

impl Trip {
    /// The trip as recorded in `detail.breaker.tripped` and as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Budget => "budget",
            Self::AwsErrors => "aws-errors",
            Self::Escalated => "escalated",
            Self::Relapsing => "relapsing",
        }
    }
}

/// A trip and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripped {
    /// What opened the breaker.
    pub trip: Trip,
    /// Why, in words (also the breaker's stored reason).
    pub reason: String,
}

impl Engine {
    /// The breaker's count of consecutive runs that hit AWS errors: one more for a run that failed to read
    /// its target or whose actions failed, back to 0 for one that read it cleanly. Noted in the record when it
    /// opens the breaker; the trip, then.
    pub(super) async fn count_failures(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        result: &mut Result<Run, EngineError>,
    ) -> Option<Tripped> {
        let failed = match result {
            Err(EngineError::Fleet(_) | EngineError::TargetNotFound(_)) => true,
            Ok(run) => run.summary.errors.iter().any(|error| !error.refused),
            Err(_) => false,
        };
        let after = self.config.remediation.breaker_after_failures;
        let changed = if failed {
            self.audit.breaker_failed(target, after).await
        } else if result.as_ref().is_ok_and(|run| run.read) {
            self.audit.breaker_succeeded(target).await.map(|()| false)
        } else {
            Ok(false)
        };
        match changed {
            Ok(true) => {
                let tripped = Tripped {
                    trip: Trip::AwsErrors,
                    reason: format!("{after} consecutive runs hit AWS errors"),
                };
                self.note_trip(meta, &tripped);
                if let Ok(run) = result {
                    run.tripped = Some(tripped.clone());
                }
                Some(tripped)
            }
            Ok(false) => None,
            Err(err) => {
                tracing::error!(error = %err, "cannot count the run for the breaker");
                None
            }
        }
    }

    /// Opens `target`'s breaker for `trip`; the trip, noted and counted, when it opened now (not when it was
    /// open already).
    pub(super) async fn trip(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        trip: Trip,
        reason: String,
    ) -> Result<Option<Tripped>, EngineError> {
        if !self.audit.trip_breaker(target, &reason).await? {
            return Ok(None);
        }
        let tripped = Tripped { trip, reason };
        self.note_trip(meta, &tripped);
        Ok(Some(tripped))
    }

    /// Opens `target`'s breaker for a run the budgets cut short (`reason`), once it has acted, so that the next
    /// run is stopped (opened before its intent, it would refuse the run itself). Failing to open it loses
    /// nothing: the budgets still count this run, and the next run they cut to nothing opens it.
    pub(super) async fn trip_after_acting(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        reason: String,
    ) -> Option<Tripped> {
        self.trip(meta, target, Trip::Budget, reason)
            .await
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "could not open the breaker after a budget cut");
                None
            })
    }

    /// Notes and counts that this run opened its target's breaker.
    fn note_trip(&self, meta: &mut RequestMeta, tripped: &Tripped) {
        let what = tripped.trip.as_str();
        tracing::error!(
            what,
            reason = tripped.reason,
            "breaker opened: the target is refused until `reflex breaker reset`"
        );
        meta.note(
            "breaker",
            serde_json::json!({"tripped": what, "reason": tripped.reason}),
        );
        self.metrics
            .breaker_trips
            .get_or_create(&TripLabels { reason: what })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::Trip;

    #[test]
    fn each_trip_has_its_own_name() {
        let names = [
            Trip::Budget,
            Trip::AwsErrors,
            Trip::Escalated,
            Trip::Relapsing,
        ]
        .map(Trip::as_str);
        assert_eq!(names, ["budget", "aws-errors", "escalated", "relapsing"]);
    }
}
