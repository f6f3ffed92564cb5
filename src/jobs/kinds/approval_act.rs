//! `approval-act`: the run of an approved decision whose approver's own run did not finish it, tried a few
//! times a minute apart, then recorded as not acted on.

use std::sync::Arc;
use std::time::Duration;

use crate::approvals::{ApprovalJob, Approvals, NotActed};
use crate::audit::{APPROVAL_ACT_JOB, AuditRecord, AuditStore, ClaimedJob, RequestMeta};
use crate::engine::Engine;
use crate::job::{Job, Ran, Unrecorded};

/// Attempts at an approved decision's act job before it is given up (and recorded).
const ATTEMPTS: u32 = 5;
/// The wait before an act job whose run failed, or is still under way elsewhere, is tried again.
const AGAIN: Duration = Duration::from_secs(60);

/// Acts on approved decisions.
pub struct ApprovalAct {
    audit: AuditStore,
    engine: Arc<Engine>,
}

impl ApprovalAct {
    /// Acts on the decisions approved in `audit`, through `engine`.
    pub fn new(audit: &AuditStore, engine: &Arc<Engine>) -> Self {
        Self {
            audit: audit.clone(),
            engine: Arc::clone(engine),
        }
    }
}

impl Job for ApprovalAct {
    type Payload = ApprovalJob;
    type Failure = NotActed;

    fn kinds(&self) -> &'static [&'static str] {
        &[APPROVAL_ACT_JOB]
    }

    fn meta(&self) -> RequestMeta {
        crate::approvals::job_meta()
    }

    fn attempts(&self) -> u32 {
        ATTEMPTS
    }

    fn backoff(&self, _attempt: u32) -> Duration {
        AGAIN
    }

    async fn run(
        &self,
        _job: &ClaimedJob,
        approval: &ApprovalJob,
    ) -> Result<Ran<NotActed>, Unrecorded> {
        let approvals = Approvals::new(&self.audit, &self.engine);
        Ok(approvals.act_later(&approval.id).await?)
    }

    fn gave_up(&self, job: &ClaimedJob, approval: &ApprovalJob, failed: NotActed) -> AuditRecord {
        Approvals::not_acted(&approval.id, &failed, job.attempts)
    }
}
