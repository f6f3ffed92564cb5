//! The batching writer: one task commits every pending write in a single transaction (group commit), so each
//! request waits for a durable commit without paying one fsync of its own.

use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use std::sync::Arc;

use time::OffsetDateTime;

use super::backend::Backend;
use super::brakes::{self, BreakerChange, RecoveryCheck};
use super::claims;
use super::decisions::{self, DecisionRow};
use super::deliveries::{Claim, DeliveryUpdate};
use super::entries;
use super::leases;
use super::processes::{self, HEARTBEAT_EVERY};
use super::rows::millis;
use super::{AuditError, AuditRecord};

/// Attempts at a batch that PostgreSQL aborted for a deadlock or a serialization failure.
const ATTEMPTS: usize = 3;
/// Most writes committed in one transaction.
const BATCH_MAX: usize = 1024;
/// Writes waiting for the writer before callers feel back-pressure.
pub(super) const QUEUE_DEPTH: usize = 8192;

/// One write for the writer task.
pub(super) enum Op {
    /// Append a version of a record (an intent, then its outcome) to the chain, and settle its delivery claim
    /// if it has one.
    Put(Box<AuditRecord>, Option<DeliveryUpdate>),
    /// Append a run's intent to the chain with its decision, in one commit.
    Intent(Box<AuditRecord>, DecisionRow),
    /// Claim a delivery key for the request with this audit id; a claim older than `expired_before_ms`
    /// is taken over.
    Claim {
        key: String,
        audit_id: String,
        expired_before_ms: i64,
    },
    /// Rewrite the readiness row: proves a commit still goes through.
    Probe,
    /// Take the lease stored as `key` for the run `audit_id` (or keep it, when this process holds it).
    Lease { key: String, audit_id: String },
    /// Pause `target` (`*`: every target) with this reason: the kill switch.
    Pause { target: String, reason: String },
    /// Resume `target` (`*`: lift the pause of everything, not of single targets).
    Resume { target: String },
    /// Prune the chain's entries, settled delivery claims and dead processes from before this time (ms).
    Prune { before_ms: i64 },
    /// Change a target's breaker.
    Breaker(BreakerChange),
    /// Record a recovery check to run later.
    Schedule(RecoveryCheck),
    /// Claim the oldest due recovery check; a claim older than `retry_before_ms` is taken again.
    TakeCheck { retry_before_ms: i64 },
    /// Append a recovery check's record and remove the check (`run_id`), in one commit.
    Checked(Box<AuditRecord>, String),
}

/// What the writer answers for one write once it is committed.
#[derive(Debug)]
pub(super) enum Written {
    /// A put or a probe.
    Done,
    /// A delivery claim, as it turned out.
    Claim(Claim),
    /// A prune, with how many records it removed.
    Pruned(u64),
    /// A lease request: whether the lease is now held.
    Lease(bool),
    /// A resume: whether there was such a pause.
    Resumed(bool),
    /// A breaker change: whether the breaker opened (or, for a reset, closed).
    Breaker(bool),
    /// A claimed recovery check, if one was due.
    Check(Option<RecoveryCheck>),
}

/// A write and who waits for its commit.
pub(super) struct Pending {
    pub op: Op,
    pub done: oneshot::Sender<Result<Written, String>>,
}

/// Keeps the writer task so shutdown can wait for the last commit.
#[derive(Debug)]
pub struct WriterTask {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl WriterTask {
    /// Starts the writer over `conn` (to `url`), for the process `owner` (whose heartbeat it keeps).
    pub(super) fn start(
        store: Store,
        conn: AnyConnection,
        rx: mpsc::Receiver<Pending>,
        owner: Arc<str>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_loop(store, conn, rx, stopped, owner));
        Self { task, stop }
    }

    /// Stops accepting records (later `put`s fail with `WriterGone`), commits every queued one, and waits.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// Stops the writer the way `kill -9` would: no last commit, no sign-off (tests of takeovers).
    #[cfg(test)]
    pub(super) fn abort(self) {
        self.task.abort();
    }
}

/// Sends a write to the writer and waits for its commit.
pub(super) async fn submit(writer: &mpsc::Sender<Pending>, op: Op) -> Result<Written, AuditError> {
    let (done, committed) = oneshot::channel();
    writer
        .send(Pending { op, done })
        .await
        .map_err(|_| AuditError::WriterGone)?;
    committed
        .await
        .map_err(|_| AuditError::WriterGone)?
        .map_err(AuditError::Commit)
}

/// Where the writer writes: the backend and its URL (to reconnect after a failed commit), and the count of
/// writes that failed.
pub(super) struct Store {
    pub backend: Backend,
    pub url: String,
    pub write_failures: prometheus_client::metrics::counter::Counter,
}

async fn write_loop(
    store: Store,
    conn: AnyConnection,
    mut rx: mpsc::Receiver<Pending>,
    mut stopped: oneshot::Receiver<()>,
    owner: Arc<str>,
) {
    let mut conn = Some(conn);
    let mut batch = Vec::with_capacity(BATCH_MAX);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, BATCH_MAX) => received,
            _ = &mut stopped, if !rx.is_closed() => {
                // Refuse new records; the ones already queued are still received and committed below.
                rx.close();
                continue;
            }
            _ = heartbeat.tick() => {
                if let Some(open) = conn.as_mut()
                    && let Err(err) = processes::beat(open, &owner, millis(OffsetDateTime::now_utc())).await
                {
                    tracing::error!(error = %err, "audit heartbeat failed");
                }
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let mut attempt = 1;
        let written = loop {
            let written = match conn.as_mut() {
                Some(open) => write_batch(store.backend, open, &batch, &owner).await,
                None => match store.backend.reconnect(&store.url).await {
                    Ok(fresh) => {
                        write_batch(store.backend, conn.insert(fresh), &batch, &owner).await
                    }
                    Err(err) => Err(err),
                },
            };
            match &written {
                Err(err) if attempt < ATTEMPTS && store.backend.is_retryable(err) => {
                    tracing::warn!(error = %err, "audit commit aborted by the database; trying again");
                    attempt += 1;
                }
                _ => break written,
            }
        };
        match written {
            Ok(results) => {
                for (pending, result) in batch.drain(..).zip(results) {
                    let _ = pending.done.send(Ok(result));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, records = batch.len(), "audit commit failed");
                store.write_failures.inc_by(batch.len() as u64);
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(err.to_string()));
                }
                // A failed commit (a full disk, a lost server) can leave the connection inside a transaction
                // that neither the database nor the driver will end; every later "commit" would then be lost.
                // The next batch gets a fresh connection instead.
                if let Some(broken) = conn.take() {
                    let _ = broken.close().await;
                }
            }
        }
    }
    // A clean stop: this process holds nothing any more, so nothing waits for its heartbeat to go stale.
    if let Some(open) = conn.as_mut()
        && let Err(err) = sign_off(store.backend, open, &owner).await
    {
        tracing::warn!(error = %err, "cannot remove this process from the audit store's process list");
    }
}

/// Removes the process `owner` and whatever target lease it still holds.
async fn sign_off(
    backend: Backend,
    conn: &mut AnyConnection,
    owner: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = backend.begin(conn).await?;
    leases::release_held_by(&mut tx, owner).await?;
    processes::remove(&mut tx, owner).await?;
    tx.commit().await
}

/// Writes one batch in one transaction: every record version appended to the chain with multi-row inserts,
/// then the delivery settlements and claims with a few multi-row statements (`claims`).
async fn write_batch(
    backend: Backend,
    conn: &mut AnyConnection,
    batch: &[Pending],
    owner: &str,
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = backend.begin(conn).await?;
    let records: Vec<&AuditRecord> = batch
        .iter()
        .filter_map(|pending| match &pending.op {
            Op::Put(record, _) | Op::Intent(record, _) | Op::Checked(record, _) => {
                Some(record.as_ref())
            }
            _ => None,
        })
        .collect();
    leases::release_finished(&mut tx, &records).await?;
    if batch.iter().any(|pending| matches!(pending.op, Op::Probe)) {
        sqlx::query(
            "INSERT INTO readiness (id, at_ms) VALUES (1, $1) \
             ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
        )
        .bind(super::rows::millis(time::OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
    }
    let mut pruned = Vec::new();
    for pending in batch {
        if let Op::Prune { before_ms } = pending.op {
            let now = millis(OffsetDateTime::now_utc());
            let removed = entries::prune(&mut tx, backend, before_ms, now).await?;
            sqlx::query("DELETE FROM deliveries WHERE at_ms < $1 AND summary IS NOT NULL")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            decisions::prune(&mut tx, before_ms).await?;
            processes::prune(&mut tx, before_ms).await?;
            pruned.push(removed);
        }
    }
    let mut resumed = Vec::new();
    for pending in batch {
        match &pending.op {
            Op::Pause { target, reason } => {
                sqlx::query(
                    "INSERT INTO pauses (target, reason, at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT(target) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms",
                )
                .bind(target.as_str())
                .bind(reason.as_str())
                .bind(millis(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await?;
            }
            Op::Resume { target } => {
                let removed = sqlx::query("DELETE FROM pauses WHERE target = $1")
                    .bind(target.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                resumed.push(removed > 0);
            }
            _ => {}
        }
    }
    let mut taken = Vec::new();
    for pending in batch {
        match &pending.op {
            Op::Lease { key, audit_id } => {
                let now = millis(OffsetDateTime::now_utc());
                taken.push(leases::take(&mut tx, key, audit_id, owner, now).await?);
            }
            Op::Intent(_, decision) => {
                decisions::insert(&mut tx, decision, OffsetDateTime::now_utc()).await?;
            }
            _ => {}
        }
    }
    let mut brake_results = Vec::new();
    let now = millis(OffsetDateTime::now_utc());
    for pending in batch {
        match &pending.op {
            Op::Breaker(change) => {
                let changed = brakes::change_breaker(&mut tx, change, now).await?;
                brake_results.push(Written::Breaker(changed));
            }
            Op::Schedule(check) => brakes::schedule(&mut tx, check).await?,
            Op::TakeCheck { retry_before_ms } => {
                let check = brakes::take_check(&mut tx, owner, now, *retry_before_ms).await?;
                brake_results.push(Written::Check(check));
            }
            Op::Checked(_, run_id) => brakes::finish_check(&mut tx, run_id).await?,
            _ => {}
        }
    }
    let mut claims = claims::settle_and_claim(&mut tx, batch, owner)
        .await?
        .into_iter();
    let mut brake_results = brake_results.into_iter();
    let mut pruned = pruned.into_iter();
    let mut taken = taken.into_iter();
    let mut resumed = resumed.into_iter();
    let results = batch
        .iter()
        .map(|pending| match pending.op {
            Op::Claim { .. } => claims.next().map_or(Written::Done, Written::Claim),
            Op::Prune { .. } => Written::Pruned(pruned.next().unwrap_or(0)),
            Op::Lease { .. } => Written::Lease(taken.next().unwrap_or(false)),
            Op::Resume { .. } => Written::Resumed(resumed.next().unwrap_or(false)),
            Op::Breaker(_) | Op::TakeCheck { .. } => brake_results.next().unwrap_or(Written::Done),
            Op::Put(..)
            | Op::Intent(..)
            | Op::Probe
            | Op::Pause { .. }
            | Op::Schedule(_)
            | Op::Checked(..) => Written::Done,
        })
        .collect();
    // Last, just before the commit: on PostgreSQL the chain's head stays locked until then, so replicas wait
    // for each other only this long.
    entries::append(&mut tx, backend, &records).await?;
    tx.commit().await?;
    Ok(results)
}
