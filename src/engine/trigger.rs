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

/// A verified request to heal one load balancer.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The balancer to heal.
    pub load_balancer: String,
    /// The SNS Message, alert text or manual reason, echoed in the summary.
    pub message: String,
    /// Plan only, write nothing.
    pub dry_run: bool,
}

impl Trigger {
    /// A trigger for `load_balancer`, which the engine checks against the configured targets.
    pub fn new(
        _proof: Authenticated,
        load_balancer: String,
        message: String,
        dry_run: bool,
    ) -> Self {
        Self {
            load_balancer,
            message,
            dry_run,
        }
    }
}
