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

use crate::target::{Place, TargetRef};

/// A verified request to heal one target.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The load balancer or target group to heal, as the request named it.
    pub target: TargetRef,
    /// The account and region the request says the target is in, when it says so.
    pub place: Place,
    /// The SNS Message, alert text or manual reason, echoed in the summary.
    pub message: String,
    /// Plan only, write nothing.
    pub dry_run: bool,
    /// Set when approvers approved a held decision: the run acts on these instances only, if still broken.
    pub approval: Option<Approved>,
}

/// A held decision that approvers approved: what it would have acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The held decision's id (the run that held it).
    pub id: String,
    /// The instances it would have acted on.
    pub instances: Vec<String>,
}

impl Trigger {
    /// A trigger for `target`, which the engine checks against the configured targets.
    pub fn new(_proof: Authenticated, target: TargetRef, message: String, dry_run: bool) -> Self {
        Self {
            target,
            place: Place::default(),
            message,
            dry_run,
            approval: None,
        }
    }

    /// The trigger acting on the held decision approvers approved.
    pub fn approved(mut self, approved: Approved) -> Self {
        self.approval = Some(approved);
        self
    }

    /// The trigger with the target's account and region as the request gave them.
    pub fn in_place(mut self, place: Place) -> Self {
        self.place = place;
        self
    }
}
