//! This release's job kinds, one file each, registered by one line of `registry`.

mod approval_act;
mod approval_expire;
mod check;
mod notify;
mod silence_end;

use std::sync::Arc;

use super::Registry;
use crate::approvals::Approvals;
use crate::audit::AuditStore;
use crate::engine::Engine;
use crate::notify::Notifier;

/// Every job kind this release runs, over `audit`, `engine` and `notifier`.
pub fn registry(audit: &AuditStore, engine: &Arc<Engine>, notifier: &Notifier) -> Registry {
    let decisions = HeldDecisions {
        audit: audit.clone(),
        engine: Arc::clone(engine),
    };
    let mut kinds = Registry::default();
    kinds.add(check::Check(Arc::clone(engine)));
    kinds.add(notify::Notify(notifier.clone()));
    kinds.add(silence_end::SilenceEnd(notifier.clone()));
    kinds.add(approval_expire::ApprovalExpire(decisions.clone()));
    kinds.add(approval_act::ApprovalAct(decisions));
    kinds
}

/// What the held decisions' job kinds vote and act through: the store and the engine.
#[derive(Clone)]
struct HeldDecisions {
    audit: AuditStore,
    engine: Arc<Engine>,
}

impl HeldDecisions {
    /// The votes on the held decisions.
    fn approvals(&self) -> Approvals<'_> {
        Approvals::new(&self.audit, &self.engine)
    }
}
