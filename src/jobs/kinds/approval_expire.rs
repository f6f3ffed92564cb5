//! `approval-expire`: a held decision closed as expired when nobody approved it in time.

use std::convert::Infallible;

use super::HeldDecisions;
use crate::approvals::ApprovalJob;
use crate::audit::{APPROVAL_EXPIRE_JOB, ClaimedJob, RequestMeta};
use crate::job::{Job, Ran, Unrecorded};

/// Expires held decisions.
pub struct ApprovalExpire(pub(super) HeldDecisions);

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
        Ok(Ran::finished(
            self.0.approvals().expire(&approval.id).await?,
        ))
    }
}
