//! The port a kind of durable job plugs into: what it reads from its payload, how many attempts it gets and how
//! long it waits between them, what it does with one attempt, and what it records when it gives up. The runner
//! (`jobs`) owns the rest: reading the payload or recording it as unreadable, backoff, giving up, writing the
//! result. Leaf of the job kinds: it names nothing of reflex but the audit store's types.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::audit::{AuditRecord, ClaimedJob, NewJob, Outcome, RequestMeta};

/// What one attempt at a job came to.
#[derive(Debug)]
pub enum Ran<F> {
    /// Over: `record` (and the jobs it gives rise to) written with the job's removal, in one commit.
    Finished {
        /// The job's audit record.
        record: Box<AuditRecord>,
        /// The jobs it gives rise to (its notifications).
        then: Vec<NewJob>,
    },
    /// Over, with its result already written (a run whose record removed the job).
    Recorded,
    /// Not over yet: looked at again after this long, for this reason. It is no failure (no backoff, no
    /// giving up), but like every claim of the job it counts in `ClaimedJob::attempts`.
    Later(Duration, String),
    /// Failed for now: tried again after the kind's backoff, up to its attempts, then given up (recorded).
    Failed(F),
}

impl<F> Ran<F> {
    /// Over, with `record` and nothing after it.
    pub fn finished(record: AuditRecord) -> Self {
        Self::Finished {
            record: Box::new(record),
            then: Vec::new(),
        }
    }
}

/// An attempt that failed before its result was written (the store, or a run that could not finish): the job
/// stays claimed and is taken over by any process once its claim runs out. Any error converts into it (it is
/// not one itself, so that `?` takes every error type).
#[derive(Debug)]
pub struct Unrecorded(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for Unrecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Unrecorded {
    fn from(err: E) -> Self {
        Self(Box::new(err))
    }
}

/// A kind of durable job: one file under `jobs/kinds/` and one line in `jobs::kinds::registry`.
pub trait Job: Send + Sync + 'static {
    /// The job's data, read from its stored payload.
    type Payload: DeserializeOwned + Send + Sync;
    /// What a failed attempt reports, kept for the record of giving up.
    type Failure: std::fmt::Display + Send;

    /// The stored kinds this runs: its own, and those of earlier releases it still completes.
    fn kinds(&self) -> &'static [&'static str];

    /// How the records of this kind's jobs begin (their source and who acts).
    fn meta(&self) -> RequestMeta;

    /// Attempts before a failing job is given up (every claim of the job counts, a put-back's too): one,
    /// unless the kind says otherwise.
    fn attempts(&self) -> u32 {
        1
    }

    /// The wait after failed attempt number `attempt` (1 for the first): a minute, unless the kind says
    /// otherwise.
    fn backoff(&self, attempt: u32) -> Duration {
        let _ = attempt;
        Duration::from_secs(60)
    }

    /// The payload of `job`, if it can be read; an earlier release's kinds may be read another way.
    fn read(&self, job: &ClaimedJob) -> Option<Self::Payload> {
        serde_json::from_str(&job.payload).ok()
    }

    /// One attempt at `job`.
    fn run(
        &self,
        job: &ClaimedJob,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<Ran<Self::Failure>, Unrecorded>> + Send;

    /// The record of a job given up after its attempts, the last failing with `failure`.
    fn gave_up(
        &self,
        job: &ClaimedJob,
        payload: &Self::Payload,
        failure: Self::Failure,
    ) -> AuditRecord {
        let _ = payload;
        let mut meta = self.meta();
        meta.note(
            "error",
            format!("given up after {} attempts: {failure}", job.attempts),
        );
        meta.into_record(Outcome::Rejected, 0, Some("job-given-up"), 0)
    }
}
