//! A registered job kind with its payload and failure types hidden, so the runner holds any of them, and the
//! part of a run every kind shares: reading the payload, backoff, giving up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::audit::{AuditRecord, ClaimedJob, NewJob, Outcome};
use crate::contract::ANSWERED;
use crate::job::{Job, Ran, Unrecorded};

/// What the runner does with a job after one attempt.
#[derive(Debug)]
pub enum Next {
    /// Write `record` and `then` with the job's removal.
    Finish(Box<AuditRecord>, Vec<NewJob>),
    /// Nothing: the attempt wrote its result.
    Done,
    /// Put it back for this long, for this reason.
    Again(Duration, String),
}

/// A registered job kind with its payload and failure types hidden, so the runner holds any of them.
pub trait Registered: Send + Sync {
    /// The stored kinds it runs.
    fn kinds(&self) -> &'static [&'static str];
    /// One attempt at `job`, and what the runner does next.
    fn attempt<'a>(
        &'a self,
        job: &'a ClaimedJob,
    ) -> Pin<Box<dyn Future<Output = Result<Next, Unrecorded>> + Send + 'a>>;
}

impl<J: Job> Registered for J {
    fn kinds(&self) -> &'static [&'static str] {
        Job::kinds(self)
    }

    fn attempt<'a>(
        &'a self,
        job: &'a ClaimedJob,
    ) -> Pin<Box<dyn Future<Output = Result<Next, Unrecorded>> + Send + 'a>> {
        Box::pin(async move {
            let Some(payload) = self.read(job) else {
                let mut meta = self.meta();
                meta.note("ignored", format!("the {} job cannot be read", job.kind));
                meta.note("job", &job.id);
                let record = meta.into_record(Outcome::Ignored, ANSWERED, None, 0);
                return Ok(Next::Finish(Box::new(record), Vec::new()));
            };
            Ok(match self.run(job, &payload).await? {
                Ran::Finished { record, then } => Next::Finish(record, then),
                Ran::Recorded => Next::Done,
                Ran::Later(after, why) => Next::Again(after, why),
                Ran::Failed(failure) if job.attempts < self.attempts() => {
                    Next::Again(self.backoff(job.attempts), failure.to_string())
                }
                Ran::Failed(failure) => {
                    tracing::warn!(job = job.id, kind = job.kind, error = %failure, "job given up");
                    let record = self.gave_up(job, &payload, failure);
                    Next::Finish(Box::new(record), Vec::new())
                }
            })
        })
    }
}
