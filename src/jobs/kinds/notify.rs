//! `notify`: one delivery of an event to one `[[notify]]` webhook, retried with backoff.

use std::time::Duration;

use crate::audit::{AuditRecord, ClaimedJob, RequestMeta, Source};
use crate::job::{Job, Ran, Unrecorded};
use crate::notify::{JOB_KIND, Notifier, Queued, Undelivered};

/// Attempts per delivery: the first and three retries.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Delivers notifications through the notifier.
pub struct Notify(pub Notifier);

impl Job for Notify {
    type Payload = Queued;
    type Failure = Undelivered;

    fn kinds(&self) -> &'static [&'static str] {
        &[JOB_KIND]
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta::new(Source::Notify, None)
    }

    fn attempts(&self) -> u32 {
        ATTEMPTS
    }

    fn backoff(&self, attempt: u32) -> Duration {
        FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    async fn run(&self, job: &ClaimedJob, queued: &Queued) -> Result<Ran<Undelivered>, Unrecorded> {
        Ok(self.0.attempt(job, queued).await)
    }

    fn gave_up(&self, job: &ClaimedJob, queued: &Queued, failed: Undelivered) -> AuditRecord {
        self.0.undelivered(job, queued, &failed)
    }
}
