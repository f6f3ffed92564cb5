//! The job runner: every serving process polls the store for due jobs (and is woken at once when it adds one),
//! claims them one at a time and runs each through its registered kind (`kinds/`), at most `PARALLEL` at once.
//! Claims name the process, so a job runs once across replicas; what a job produces is written with its
//! removal. The runner owns what every kind shares: an unreadable payload is recorded as ignored, a kind this
//! release does not know is put back for a process that does, a failed attempt waits its kind's backoff and
//! is given up (recorded) after its kind's attempts.

mod erased;
pub mod kinds;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::job::{Job, Unrecorded};
use erased::{Next, Registered};

use crate::audit::{AuditError, AuditStore, ClaimedJob};
use crate::engine::Engine;
use crate::notify::Notifier;

/// Jobs run at once by one process.
const PARALLEL: usize = 8;
/// A job of a kind this release does not know (a newer release's, during a rolling upgrade) is put back for
/// a process that knows it, to be looked at again after this long.
const UNKNOWN_KIND_AGAIN: Duration = Duration::from_secs(60);

/// The job kinds this process runs, by stored kind.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<&'static str, Arc<dyn Registered>>,
}

impl Registry {
    /// The kind that runs jobs stored as `kind`.
    fn get(&self, kind: &str) -> Option<&dyn Registered> {
        self.kinds.get(kind).map(Arc::as_ref)
    }

    /// Registers `job` under each of its stored kinds.
    ///
    /// # Panics
    /// When another registered kind runs one of them already: a job must have one handler.
    pub fn add(&mut self, job: impl Job) {
        let job: Arc<dyn Registered> = Arc::new(job);
        for kind in job.kinds() {
            let earlier = self.kinds.insert(kind, Arc::clone(&job));
            assert!(earlier.is_none(), "two job kinds run {kind:?}");
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

/// Runs the store's due jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    audit: AuditStore,
    notifier: Notifier,
    kinds: Arc<Registry>,
    /// The jobs running now, so that shutdown lets them finish and record their results.
    running: tokio_util::task::TaskTracker,
}

impl Jobs {
    /// A runner over `audit` of this release's job kinds: checks and approvals through `engine`,
    /// notifications through `notifier`.
    pub fn new(audit: AuditStore, engine: Arc<Engine>, notifier: Notifier) -> Self {
        let kinds = kinds::registry(&audit, &engine, &notifier);
        Self::with_kinds(audit, notifier, kinds)
    }

    /// A runner over `audit` of the job kinds of `kinds`.
    pub fn with_kinds(audit: AuditStore, notifier: Notifier, kinds: Registry) -> Self {
        Self {
            audit,
            notifier,
            kinds: Arc::new(kinds),
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

    /// Runs one claimed job through its kind and writes what it came to; a failure to write it leaves the job
    /// to be taken over.
    async fn run(&self, job: &ClaimedJob) {
        let next = match self.kinds.get(&job.kind) {
            Some(kind) => kind.attempt(job).await,
            None => {
                tracing::warn!(kind = job.kind, "a job of a kind this release does not run");
                let why = format!("no handler for {:?} in this release", job.kind);
                Ok(Next::Again(UNKNOWN_KIND_AGAIN, why))
            }
        };
        let written = match next {
            Ok(Next::Finish(record, then)) => self
                .audit
                .finish_job(*record, &job.id, then)
                .await
                .map(|dropped| self.notifier.count_dropped(dropped))
                .map_err(Unrecorded::from),
            Ok(Next::Again(after, why)) => self
                .audit
                .retry_job(&job.id, after, why)
                .await
                .map_err(Unrecorded::from),
            Ok(Next::Done) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            tracing::error!(job = job.id, kind = job.kind, error = %err, "job failed");
        }
    }
}
