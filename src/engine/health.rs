//! The one table from what a balancer reports to what the planner does. Classic ELB reports three states;
//! ELBv2 (ALB/NLB target groups) reports a state and a reason code. Anything not in the table is `Unknown`,
//! which is never acted on.

use super::snapshot::{Health, HealthState};

/// ELBv2 reasons meaning the target failed its health checks: act.
const FAILING: &[&str] = &[
    "Target.FailedHealthChecks",
    "Target.Timeout",
    "Target.ResponseCodeMismatch",
];
/// ELBv2 reasons of a target still being registered: wait.
const REGISTERING: &[&str] = &["Elb.RegistrationInProgress", "Elb.InitialHealthChecking"];
/// ELBv2 reasons of a target that is registered but not serving: leave alone.
const NOT_IN_USE: &[&str] = &["Target.NotRegistered", "Target.NotInUse"];

/// Reads a classic ELB DescribeInstanceHealth entry. A fresh registration is reported OutOfService with reason
/// code `ELB` or a "registration ... in progress" description.
pub fn classic(state: &str, reason_code: Option<&str>, description: Option<&str>) -> Health {
    let registering = reason_code == Some("ELB")
        || description.is_some_and(|d| {
            let d = d.to_ascii_lowercase();
            d.contains("registration") && d.contains("in progress")
        });
    let reading = match state {
        "InService" => HealthState::InService,
        "OutOfService" if registering => HealthState::Registering,
        "OutOfService" => HealthState::OutOfService,
        _ => HealthState::Unknown,
    };
    health(reading, state, reason_code, description)
}

/// Reads an ELBv2 DescribeTargetHealth entry.
///
/// | state | reason | reading |
/// |---|---|---|
/// | `healthy` | any | in service |
/// | `unhealthy` | Target.FailedHealthChecks, Target.Timeout, Target.ResponseCodeMismatch | out of service (act) |
/// | `unused` | Target.InvalidState (stopped instance) | out of service (act) |
/// | `initial` | Elb.RegistrationInProgress, Elb.InitialHealthChecking | registering (skip) |
/// | `draining` | any | draining (skip) |
/// | `unavailable` | any (Target.HealthCheckDisabled) | health check disabled (skip) |
/// | `unused` | Target.NotRegistered, Target.NotInUse | not in use (skip) |
/// | any | any other `Elb.*` | balancer error (skip) |
/// | anything else | | unknown (skip) |
pub fn target_group(state: &str, reason_code: Option<&str>, description: Option<&str>) -> Health {
    let is = |codes: &[&str]| reason_code.is_some_and(|code| codes.contains(&code));
    let reading = match state {
        "healthy" => HealthState::InService,
        "unhealthy" if is(FAILING) => HealthState::OutOfService,
        "unused" if reason_code == Some("Target.InvalidState") => HealthState::OutOfService,
        "initial" if is(REGISTERING) => HealthState::Registering,
        "draining" => HealthState::Draining,
        "unavailable" => HealthState::HealthCheckDisabled,
        "unused" if is(NOT_IN_USE) => HealthState::NotInUse,
        _ if reason_code.is_some_and(|code| code.starts_with("Elb.")) => HealthState::BalancerError,
        _ => HealthState::Unknown,
    };
    health(reading, state, reason_code, description)
}

fn health(
    state: HealthState,
    reported: &str,
    reason_code: Option<&str>,
    description: Option<&str>,
) -> Health {
    Health {
        state,
        reported: reported.to_owned(),
        reason_code: reason_code.map(str::to_owned),
        description: description.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(state: &str, reason: Option<&str>) -> HealthState {
        target_group(state, reason, None).state
    }

    #[test]
    fn the_target_group_table_as_documented() {
        use HealthState::*;
        let table = [
            ("healthy", None, InService),
            ("unhealthy", Some("Target.FailedHealthChecks"), OutOfService),
            ("unhealthy", Some("Target.Timeout"), OutOfService),
            (
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
                OutOfService,
            ),
            ("unused", Some("Target.InvalidState"), OutOfService),
            ("initial", Some("Elb.RegistrationInProgress"), Registering),
            ("initial", Some("Elb.InitialHealthChecking"), Registering),
            (
                "draining",
                Some("Target.DeregistrationInProgress"),
                Draining,
            ),
            (
                "unavailable",
                Some("Target.HealthCheckDisabled"),
                HealthCheckDisabled,
            ),
            ("unused", Some("Target.NotRegistered"), NotInUse),
            ("unused", Some("Target.NotInUse"), NotInUse),
            ("unhealthy", Some("Elb.InternalError"), BalancerError),
            ("initial", Some("Elb.SomethingNew"), BalancerError),
            ("unhealthy", None, Unknown),
            ("unhealthy", Some("Target.SomethingNew"), Unknown),
            ("unused", Some("Target.IpUnusable"), Unknown),
            ("initial", None, Unknown),
            ("mystery", None, Unknown),
            ("Healthy", None, Unknown),
        ];
        for (state, reason, reading) in table {
            assert_eq!(read(state, reason), reading, "{state} {reason:?}");
        }
    }

    #[test]
    fn the_classic_table() {
        assert_eq!(
            classic("InService", None, None).state,
            HealthState::InService
        );
        assert_eq!(
            classic("OutOfService", Some("Instance"), None).state,
            HealthState::OutOfService
        );
        assert_eq!(
            classic("OutOfService", Some("ELB"), None).state,
            HealthState::Registering
        );
        assert_eq!(
            classic(
                "OutOfService",
                Some("N/A"),
                Some("Instance registration is still in progress.")
            )
            .state,
            HealthState::Registering
        );
        assert_eq!(classic("Unknown", None, None).state, HealthState::Unknown);
        assert_eq!(classic("whatever", None, None).state, HealthState::Unknown);
        assert_eq!(classic("OutOfService", None, None).reported, "OutOfService");
    }
}
