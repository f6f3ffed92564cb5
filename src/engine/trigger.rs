//! What a receiver hands the engine once it has proven who sent the request.

/// Proof that a request passed its receiver's authentication. Only the crate's verifiers can make one,
/// so an unverified request cannot be turned into a `Trigger`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    _private: (),
}

impl Authenticated {
    /// Issued by a verifier after its check succeeded.
    pub(crate) fn issued() -> Self {
        Self { _private: () }
    }
}

use crate::target::TargetRef;

/// A verified request to heal one target.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The load balancer or target group to heal, as the request named it.
    pub target: TargetRef,
    /// The SNS Message, alert text or manual reason, echoed in the summary.
    pub message: String,
    /// Plan only, write nothing.
    pub dry_run: bool,
}

impl Trigger {
    /// A trigger for `target`, which the engine checks against the configured targets.
    pub fn new(_proof: Authenticated, target: TargetRef, message: String, dry_run: bool) -> Self {
        Self {
            target,
            message,
            dry_run,
        }
    }
}
