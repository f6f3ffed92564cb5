//! The external contract's answers to the engine's failures: the HTTP status each one gets, answered by the
//! receivers and recorded in the run's audit record. Kept out of the engine, which knows why a run failed,
//! not how HTTP says it.

use crate::engine::EngineError;
use crate::engine::port::FailureKind;

/// The status of a run that was answered (it acted, was refused by a rule or found nothing to do), and of the
/// records of work no request waits for (recovery checks).
pub const ANSWERED: u16 = 200;

/// The status of `err`: 422 for a target that does not exist, 502 for AWS refusing (permissions,
/// validation: retrying will not help), 503 for transient faults worth a retry.
pub fn status_of(err: &EngineError) -> u16 {
    match err {
        EngineError::UnknownTarget(..)
        | EngineError::UnknownTargetThere(..)
        | EngineError::AmbiguousTarget { .. }
        | EngineError::TargetNotFound(_) => 422,
        EngineError::Fleet(fleet) if fleet.kind == FailureKind::Permanent => 502,
        _ if err.is_transient() => 503,
        _ => 502,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::port::FleetError;

    #[test]
    fn a_retry_is_asked_for_exactly_when_one_may_help() {
        let fleet =
            |kind| EngineError::Fleet(FleetError::new(kind, "DescribeInstanceHealth", None, "x"));
        assert_eq!(status_of(&fleet(FailureKind::Permanent)), 502);
        assert_eq!(status_of(&fleet(FailureKind::Transient)), 503);
        assert_eq!(status_of(&EngineError::Busy(2)), 503);
        assert_eq!(
            status_of(&EngineError::UnknownTarget("load balancer", "x".into())),
            422
        );
        for err in [
            fleet(FailureKind::Permanent),
            fleet(FailureKind::Transient),
            EngineError::Busy(1),
        ] {
            assert_eq!(status_of(&err) == 503, err.is_transient(), "{err}");
        }
    }
}
