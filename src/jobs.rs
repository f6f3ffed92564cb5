//! The job runner (recovery checks, notifications, silence ends, approval expiries and acts): every serving process polls the store for due jobs (and is woken at once when it adds
//! one), claims them one at a time and runs each by its kind, at most `PARALLEL` at once. Claims name the
//! process, so a job runs once across replicas; what a job produces is written with its removal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::audit::{
    APPROVAL_ACT_JOB, APPROVAL_EXPIRE_JOB, AuditError, AuditStore, ClaimedJob, SILENCE_END_JOB,
};
use crate::engine::{CHECK_JOB, Engine, LADDER_CHECK_JOB, RECOVERY_CHECK_JOB};
use crate::notify::{self, Attempted, Notifier};

/// Jobs run at once by one process.
const PARALLEL: usize = 8;
/// A job of a kind this release does not know (a newer release's, during a rolling upgrade) is put back for
/// a process that knows it, to be looked at again after this long.
const UNKNOWN_KIND_AGAIN: Duration = Duration::from_secs(60);

/// Runs the store's due jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    audit: AuditStore,
    engine: Arc<Engine>,
    notifier: Notifier,
    /// The jobs running now, so that shutdown lets them finish and record their results.
    running: tokio_util::task::TaskTracker,
}

impl Jobs {
    /// A runner over `audit`, running recovery checks through `engine` and notifications through `notifier`.
    pub fn new(audit: AuditStore, engine: Arc<Engine>, notifier: Notifier) -> Self {
        Self {
            audit,
            engine,
            notifier,
            running: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Waits for the jobs running now (stop `run_every` first): a job's result is recorded with its removal
    /// before the store stops, so no other process runs it again.
    pub async fn drain(&self) {
        self.running.close();
        self.running.wait().await;
    }

    /// Claims the next due job and runs it; whether there was one.
    pub async fn run_next(&self) -> Result<bool, AuditError> {
        let Some(job) = self.audit.claim_job().await? else {
            return Ok(false);
        };
        self.run(&job).await;
        Ok(true)
    }

    /// Polls every `every` (and whenever this process adds a job) until the task is stopped.
    pub async fn run_every(self, every: Duration) {
        let parallel = Arc::new(Semaphore::new(PARALLEL));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.audit.job_added() => {}
            }
            match self.audit.any_job_due().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot look for due jobs");
                    continue;
                }
            }
            loop {
                let Ok(permit) = Arc::clone(&parallel).acquire_owned().await else {
                    return;
                };
                let job = match self.audit.claim_job().await {
                    Ok(Some(job)) => job,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot claim a job");
                        break;
                    }
                };
                let this = self.clone();
                self.running.spawn(async move {
                    this.run(&job).await;
                    drop(permit);
                });
            }
        }
    }

    /// Runs one claimed job by its kind; a failure to record its result leaves it to be taken over.
    async fn run(&self, job: &ClaimedJob) {
        let result = match job.kind.as_str() {
            CHECK_JOB | RECOVERY_CHECK_JOB | LADDER_CHECK_JOB => self
                .engine
                .run_check(job)
                .await
                .map_err(|err| err.to_string()),
            notify::JOB_KIND => self.notify(job).await.map_err(|err| err.to_string()),
            SILENCE_END_JOB => crate::controls::end_silence(&self.audit, &self.notifier, job)
                .await
                .map_err(|err| err.to_string()),
            APPROVAL_EXPIRE_JOB => self
                .approvals()
                .expire(job)
                .await
                .map_err(|err| err.to_string()),
            APPROVAL_ACT_JOB => self
                .approvals()
                .act_later(job)
                .await
                .map_err(|err| err.to_string()),
            other => {
                tracing::warn!(kind = other, "a job of a kind this release does not run");
                let why = format!("no handler for {other:?} in this release");
                self.audit
                    .retry_job(&job.id, UNKNOWN_KIND_AGAIN, why)
                    .await
                    .map_err(|err| err.to_string())
            }
        };
        if let Err(err) = result {
            tracing::error!(job = job.id, kind = job.kind, error = err, "job failed");
        }
    }

    fn approvals(&self) -> crate::approvals::Approvals<'_> {
        crate::approvals::Approvals::new(&self.audit, &self.engine)
    }

    /// One attempt at a notification job: finished with its delivery record, or put back for a retry.
    async fn notify(&self, job: &ClaimedJob) -> Result<(), AuditError> {
        match self.notifier.attempt(job).await {
            Attempted::Done(record) => self
                .audit
                .finish_job(*record, &job.id, Vec::new())
                .await
                .map(|_| ()),
            Attempted::Retry(after, error) => self.audit.retry_job(&job.id, after, error).await,
        }
    }
}
