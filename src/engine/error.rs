//! Why a remediation did not run, and what that means for the sender: a stable code and whether a retry may
//! help (the HTTP status each gets is the contract's, in `crate::contract`).

use super::port::{FailureKind, FleetError, TargetRef};
use crate::audit::AuditError;
use crate::contract::Failure;

/// Why a remediation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The load balancer or target group (kind, name as given) is not listed under `[[targets]]`.
    #[error("{0} {1:?} is not a configured target")]
    UnknownTarget(&'static str, String),
    /// The load balancer or target group (kind, name as given) is not listed under `[[targets]]` in the
    /// account and region the request named.
    #[error("{0} {1:?} is not a configured target {2}")]
    UnknownTargetThere(&'static str, String, crate::target::Place),
    /// The request names several configured targets, which only an account or a region tells apart: nothing
    /// is done to any of them.
    #[error(
        "{target} names {} configured targets, in {}; name its account and region",
        candidates.len(),
        candidates.join(", ")
    )]
    AmbiguousTarget {
        /// The target as the request named it.
        target: String,
        /// Where each configured target it could mean is: `ACCOUNT/REGION (account name)`.
        candidates: Vec<String>,
    },
    /// The target is configured but AWS does not know it (any more).
    #[error("{} {} does not exist in this account and region", .0.kind(), .0.value())]
    TargetNotFound(TargetRef),
    /// A fleet call failed; its kind says whether AWS refused (permanent) or was unreachable (transient).
    #[error(transparent)]
    Fleet(FleetError),
    /// The audit trail could not be read or written, so nothing was done.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// `remediation.max_concurrent` runs are already under way; nothing was done.
    #[error("{0} remediations are already running (remediation.max_concurrent); retry later")]
    Busy(usize),
    /// Another process sharing the audit store is acting on this target and did not finish in time.
    #[error("another reflex process is remediating {0} right now; retry later")]
    TargetBusy(String),
    /// The decision a dead attempt stored cannot be read, so what it may have done is unknown.
    #[error("the decision of run {0} cannot be read ({1}); nothing was done")]
    UnreadableDecision(String, String),
    /// A rule's run selected nothing to act on: nothing was done.
    #[error("rule {rule:?} has nothing to act on: {why}")]
    NoResource {
        /// The rule.
        rule: String,
        /// Why its selection came to nothing.
        why: String,
    },
}

impl EngineError {
    /// The stable error code answered and recorded.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTarget("target group", _)
            | Self::UnknownTargetThere("target group", ..)
            | Self::TargetNotFound(TargetRef::TargetGroup(_)) => "unknown-target-group",
            Self::UnknownTarget(..) | Self::UnknownTargetThere(..) | Self::TargetNotFound(_) => {
                "unknown-load-balancer"
            }
            Self::AmbiguousTarget { .. } => "ambiguous-target",
            Self::NoResource { .. } => "no-resource",
            Self::Fleet(err) => match err.kind {
                FailureKind::Permanent | FailureKind::Refused => "aws-denied",
                FailureKind::Transient | FailureKind::NotFound => "aws-unavailable",
            },
            Self::Audit(_) | Self::UnreadableDecision(..) => "audit-unavailable",
            Self::Busy(_) => "too-busy",
            Self::TargetBusy(_) => "target-busy",
        }
    }

    /// The class of the failure, as the external contract answers it.
    pub fn failure(&self) -> Failure {
        match self {
            Self::UnknownTarget(..)
            | Self::UnknownTargetThere(..)
            | Self::AmbiguousTarget { .. }
            | Self::NoResource { .. }
            | Self::TargetNotFound(_) => Failure::UnknownTarget,
            _ if self.is_transient() => Failure::Transient,
            _ => Failure::Refused,
        }
    }

    /// The HTTP status the contract answers this failure with (422, 502 or 503).
    pub fn status(&self) -> u16 {
        crate::contract::status_of(self.failure())
    }

    /// Whether the same alert may succeed later, so its sender should retry it: a fault of AWS's reach or
    /// of the store, or reflex busy; not a target that does not exist or AWS refusing.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::UnknownTarget(..)
            | Self::UnknownTargetThere(..)
            | Self::AmbiguousTarget { .. }
            | Self::NoResource { .. }
            | Self::TargetNotFound(_) => false,
            Self::Fleet(err) => err.kind != FailureKind::Permanent,
            Self::Audit(_) | Self::Busy(_) | Self::TargetBusy(_) | Self::UnreadableDecision(..) => {
                true
            }
        }
    }

    /// A sentence for the caller. Transient faults say only that a dependency failed (their cause is logged
    /// and audited); a permanent AWS refusal names the operation and AWS's error code so that an operator can
    /// fix the IAM policy.
    pub fn public_detail(&self) -> String {
        match self {
            Self::UnknownTarget(..)
            | Self::UnknownTargetThere(..)
            | Self::AmbiguousTarget { .. }
            | Self::TargetNotFound(_)
            | Self::NoResource { .. }
            | Self::Busy(_)
            | Self::TargetBusy(_) => self.to_string(),
            Self::Fleet(err) => match err.kind {
                FailureKind::Permanent if let Some(account) = &err.account => format!(
                    "AWS refused {} into account {account:?} ({}); check the role's trust policy, its \
                     external id and reflex's permission to assume it",
                    err.operation,
                    err.code.as_deref().unwrap_or("no error code")
                ),
                FailureKind::Refused => err.to_string(),
                FailureKind::Permanent => format!(
                    "AWS refused {} ({}); check reflex's IAM policy and configuration",
                    err.operation,
                    err.code.as_deref().unwrap_or("no error code")
                ),
                FailureKind::Transient | FailureKind::NotFound => {
                    "a dependency failed; retry later".to_owned()
                }
            },
            Self::Audit(_) | Self::UnreadableDecision(..) => {
                "a dependency failed; retry later".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_asked_for_exactly_when_one_may_help() {
        let fleet =
            |kind| EngineError::Fleet(FleetError::new(kind, "DescribeInstanceHealth", None, "x"));
        assert_eq!(fleet(FailureKind::Permanent).status(), 502);
        assert_eq!(fleet(FailureKind::Transient).status(), 503);
        assert_eq!(EngineError::Busy(2).status(), 503);
        assert_eq!(
            EngineError::UnknownTarget("load balancer", "x".into()).status(),
            422
        );
        for err in [
            fleet(FailureKind::Permanent),
            fleet(FailureKind::Transient),
            EngineError::Busy(1),
        ] {
            assert_eq!(err.status() == 503, err.is_transient(), "{err}");
        }
    }
}
