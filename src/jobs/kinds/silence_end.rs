//! `silence-end`: a silence's end, announced once across every process sharing the store.

use std::convert::Infallible;

use crate::audit::{ClaimedJob, RequestMeta, SILENCE_END_JOB, Silence, Source};
use crate::job::{Job, Ran, Unrecorded};
use crate::notify::Notifier;

/// Records a silence's end and notifies of it.
pub struct SilenceEnd(pub Notifier);

impl Job for SilenceEnd {
    type Payload = Silence;
    type Failure = Infallible;

    fn kinds(&self) -> &'static [&'static str] {
        &[SILENCE_END_JOB]
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta::new(Source::Admin, None)
    }

    async fn run(
        &self,
        _job: &ClaimedJob,
        silence: &Silence,
    ) -> Result<Ran<Infallible>, Unrecorded> {
        let (record, then) = crate::controls::silence_ended(&self.0, silence);
        Ok(Ran::Finished {
            record: Box::new(record),
            then,
        })
    }
}
