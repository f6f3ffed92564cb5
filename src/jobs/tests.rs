//! The runner with a test-only job kind, registered as any kind is: what every kind gets without writing it
//! (unreadable payloads recorded, failures retried after the kind's backoff and given up after its attempts,
//! kinds this release does not know put back).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::{Jobs, Registry};
use crate::audit::{AuditStore, ClaimedJob, NewJob, Outcome, RequestMeta, Source};
use crate::job::{Job, Ran, Unrecorded};
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// A job that fails its first `fail` attempts, then finishes with a record naming its payload.
struct Flaky {
    fail: u32,
    runs: Arc<AtomicU32>,
}

#[derive(Deserialize)]
struct Payload {
    name: String,
}

impl Job for Flaky {
    type Payload = Payload;
    type Failure = String;

    fn kinds(&self) -> &'static [&'static str] {
        &["flaky"]
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta::new(Source::Admin, None)
    }

    fn attempts(&self) -> u32 {
        3
    }

    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::ZERO
    }

    async fn run(&self, job: &ClaimedJob, payload: &Payload) -> Result<Ran<String>, Unrecorded> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if job.attempts <= self.fail {
            return Ok(Ran::Failed(format!("attempt {} failed", job.attempts)));
        }
        let mut meta = self.meta();
        meta.note("name", &payload.name);
        Ok(Ran::finished(meta.into_record(
            Outcome::Completed,
            0,
            None,
            0,
        )))
    }
}

/// A runner of `Flaky` jobs over a new store; the store's writer and folder live as long as the test holds them.
async fn runner(fail: u32) -> (Jobs, AuditStore, Arc<AtomicU32>, Kept) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let (store, writer) = AuditStore::open(&url).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let mut kinds = Registry::default();
    kinds.add(Flaky {
        fail,
        runs: Arc::clone(&runs),
    });
    let notifier = Notifier::disabled(Arc::new(Metrics::default()));
    (
        Jobs::with_kinds(store.clone(), notifier, kinds),
        store,
        runs,
        (writer, dir),
    )
}

/// What a test keeps alive beside its runner: the store's writer and its folder.
type Kept = (crate::audit::WriterTask, tempfile::TempDir);

fn job(kind: &'static str, payload: &str) -> NewJob {
    NewJob {
        kind,
        dedup_key: None,
        delay_ms: 0,
        payload: payload.to_owned(),
        bounded: false,
    }
}

/// Runs every due job until none is left.
async fn drain(jobs: &Jobs) {
    while jobs.run_next().await.unwrap() {}
}

#[tokio::test]
async fn a_failing_job_is_tried_again_and_finishes_once_it_succeeds() {
    let (jobs, store, runs, _dir) = runner(2).await;
    store
        .enqueue(vec![job("flaky", r#"{"name":"a"}"#)])
        .await
        .unwrap();
    drain(&jobs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let records = store.list(10).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, Outcome::Completed);
    assert_eq!(records[0].detail["name"], "a");
    assert!(store.jobs_waiting().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_job_failing_every_attempt_is_given_up_and_recorded_with_its_last_failure() {
    let (jobs, store, runs, _dir) = runner(u32::MAX).await;
    store
        .enqueue(vec![job("flaky", r#"{"name":"a"}"#)])
        .await
        .unwrap();
    drain(&jobs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "its kind's attempts");
    let records = store.list(10).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, Outcome::Rejected);
    assert_eq!(records[0].error.as_deref(), Some("job-given-up"));
    assert_eq!(
        records[0].detail["error"],
        "given up after 3 attempts: attempt 3 failed"
    );
    assert!(store.jobs_waiting().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreadable_payload_is_recorded_as_ignored_without_running_the_kind() {
    let (jobs, store, runs, _dir) = runner(0).await;
    store
        .enqueue(vec![job("flaky", "{not json")])
        .await
        .unwrap();
    drain(&jobs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let records = store.list(10).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, Outcome::Ignored);
    assert_eq!(records[0].detail["ignored"], "the flaky job cannot be read");
}

#[tokio::test]
async fn a_job_of_a_kind_this_release_does_not_know_is_put_back_unrecorded() {
    let (jobs, store, _runs, _dir) = runner(0).await;
    store.enqueue(vec![job("newer", "{}")]).await.unwrap();
    assert!(jobs.run_next().await.unwrap());
    assert!(!jobs.run_next().await.unwrap(), "not due again yet");
    assert!(store.list(10).await.unwrap().is_empty());
    assert_eq!(
        store.jobs_waiting().await.unwrap(),
        vec![("newer".to_owned(), 1)]
    );
}
