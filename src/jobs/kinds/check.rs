//! `check` (and the previous release's `recovery-check` and `ladder-check`): a step's check, judged as its
//! action kind declares, by the engine.

use std::convert::Infallible;
use std::sync::Arc;

use crate::audit::{ClaimedJob, RequestMeta, Source};
use crate::engine::{CHECK_JOB, Engine, LADDER_CHECK_JOB, RECOVERY_CHECK_JOB};
use crate::job::{Job, Ran, Unrecorded};

/// Runs checks through the engine, which writes each one's record.
pub struct Check(pub Arc<Engine>);

impl Job for Check {
    type Payload = crate::engine::Check;
    type Failure = Infallible;

    fn kinds(&self) -> &'static [&'static str] {
        &[CHECK_JOB, RECOVERY_CHECK_JOB, LADDER_CHECK_JOB]
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta::new(Source::RecoveryCheck, None)
    }

    fn read(&self, job: &ClaimedJob) -> Option<Self::Payload> {
        self.0.read_check(job)
    }

    async fn run(
        &self,
        job: &ClaimedJob,
        check: &Self::Payload,
    ) -> Result<Ran<Infallible>, Unrecorded> {
        self.0.run_check(job, check.clone()).await?;
        Ok(Ran::Recorded)
    }
}
