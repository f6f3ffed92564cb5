//! `approval-expire`: a held decision closed as expired when nobody approved it in time.

use std::convert::Infallible;
use std::sync::Arc;

use crate::approvals::{ApprovalJob, Approvals};
use crate::audit::{APPROVAL_EXPIRE_JOB, AuditStore, ClaimedJob, RequestMeta};
use crate::engine::Engine;
use crate::job::{Job, Ran, Unrecorded};

/// Expires held decisions.
pub struct ApprovalExpire {
    audit: AuditStore,
    engine: Arc<Engine>,
}

impl ApprovalExpire {
    /// Expiries of the decisions held in `audit`.
    pub fn new(audit: &AuditStore, engine: &Arc<Engine>) -> Self {
        Self {
            audit: audit.clone(),
            engine: Arc::clone(engine),
        }
    }
}

impl Job for ApprovalExpire {
    type Payload = ApprovalJob;
    type Failure = Infallible;

    fn kinds(&self) -> &'static [&'static str] {
        &[APPROVAL_EXPIRE_JOB]
    }

    fn meta(&self) -> RequestMeta {
        crate::approvals::job_meta()
    }

    async fn run(
        &self,
        _job: &ClaimedJob,
        approval: &ApprovalJob,
    ) -> Result<Ran<Infallible>, Unrecorded> {
        let approvals = Approvals::new(&self.audit, &self.engine);
        Ok(Ran::finished(approvals.expire(&approval.id).await?))
    }
}
