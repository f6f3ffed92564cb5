//! `approval-act`: the run of an approved decision whose approver's own run did not finish it, tried a few
//! times a minute apart, then recorded as not acted on.

use std::time::Duration;

use super::HeldDecisions;
use crate::approvals::{ApprovalJob, Approvals, NotActed};
use crate::audit::{APPROVAL_ACT_JOB, AuditRecord, ClaimedJob, RequestMeta};
use crate::job::{Job, Ran, Unrecorded};

/// Attempts at an approved decision's act job before it is given up (and recorded).
const ATTEMPTS: u32 = 5;
/// The wait before an act job whose run failed, or is still under way elsewhere, is tried again.
const AGAIN: Duration = Duration::from_secs(60);

/// Acts on approved decisions.
pub struct ApprovalAct(pub(super) HeldDecisions);

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
        Ok(self.0.approvals().act_later(&approval.id).await?)
    }

    fn gave_up(&self, job: &ClaimedJob, approval: &ApprovalJob, failed: NotActed) -> AuditRecord {
        Approvals::not_acted(&approval.id, &failed, job.attempts)
    }
}
