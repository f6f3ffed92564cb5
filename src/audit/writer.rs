//! The batching writer: one task commits every pending write in a single transaction (group commit), so each
//! request waits for a durable commit without paying one fsync of its own.

use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use std::sync::Arc;

use time::OffsetDateTime;

use super::approvals;
use super::backend::Backend;
use super::brakes::{self, Brakes};
use super::breakers;
use super::checks;
use super::claims;
use super::decisions;
use super::deliveries::DeliveryUpdate;
use super::entries;
use super::episodes;
use super::held::Held;
use super::home;
use super::jobs::{self, NewJob};
use super::link::Link;
use super::ops::{Op, Pending, Put, Written};
use super::processes::{self, HEARTBEAT_EVERY};
use super::rows::PreparedRow;
use super::silences;
use super::times::millis;
use super::ui_sessions;
use super::{AuditError, AuditRecord, Source};
use super::{leases, pauses, readiness};

/// Attempts at a batch that PostgreSQL aborted for a deadlock or a serialization failure.
const ATTEMPTS: usize = 3;
/// Most writes committed in one transaction.
const BATCH_MAX: usize = 1024;
/// How long a stopping writer keeps trying to write the run results the store refused.
const LAST_TRIES: std::time::Duration = std::time::Duration::from_secs(5);
/// Writes waiting for the writer before callers feel back-pressure.
pub(super) const QUEUE_DEPTH: usize = 8192;

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
    let mut link = Link::new(conn, store.backend, store.url.clone(), &owner);
    let mut held = Held::new();
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
            _ = tokio::time::sleep_until(held.next_try()), if !held.is_empty() => {
                write_held(&store, &mut link, &mut held, &owner).await;
                continue;
            }
            _ = heartbeat.tick() => {
                beat(&store, &mut link, &owner).await;
                continue;
            }
        };
        if received == 0 {
            break;
        }
        match write_retrying(&store, &mut link, &batch, &owner).await {
            Ok(results) => {
                for (pending, result) in batch.drain(..).zip(results) {
                    let _ = pending.done.send(Ok(result));
                }
                // The store takes writes again: what it refused earlier need not wait for its timer.
                held.try_now();
            }
            Err(err) => {
                tracing::error!(error = %err, records = batch.len(), "audit commit failed");
                store.write_failures.inc_by(batch.len() as u64);
                let error = err.to_string();
                for Pending { op, done } in batch.drain(..) {
                    let _ = done.send(Err(error.clone()));
                    if Held::keeps(&op) {
                        held.hold(op, &error);
                    }
                }
            }
        }
    }
    stop(&store, &mut link, &mut held, &owner).await;
}

/// One heartbeat of this process; a failed one drops the link, to be opened afresh.
async fn beat(store: &Store, link: &mut Link, owner: &str) {
    let beat = match link.open().await {
        Ok(open) => processes::beat(open, store.backend, owner).await,
        Err(err) => Err(err),
    };
    if let Err(err) = beat {
        tracing::error!(error = %err, "audit heartbeat failed");
        link.lost().await;
    }
}

/// The writer's last steps: the held run results get a few more tries, then this process signs off.
async fn stop(store: &Store, link: &mut Link, held: &mut Held, owner: &str) {
    let last_try = tokio::time::Instant::now() + LAST_TRIES;
    while !held.is_empty() && tokio::time::Instant::now() < last_try {
        tokio::time::sleep_until(held.next_try().min(last_try)).await;
        write_held(store, link, held, owner).await;
    }
    if !held.is_empty() {
        tracing::error!(
            records = held.len(),
            "stopping with run results the audit store did not take; after this process signs off, the next \
             redelivery of each takes it over"
        );
    }
    // A clean stop: this process holds nothing any more, so nothing waits for its heartbeat to go stale.
    let signed_off = match link.open().await {
        Ok(open) => sign_off(store.backend, open, owner).await,
        Err(err) => Err(err),
    };
    if let Err(err) = signed_off {
        tracing::warn!(error = %err, "cannot remove this process from the audit store's process list");
    }
}

/// Commits `batch` over the link, again when the database aborted it for a deadlock, a serialization failure
/// or a lock timeout (after ending dead processes' sessions); after a failure the link opens a fresh
/// connection for the next batch.
async fn write_retrying(
    store: &Store,
    link: &mut Link,
    batch: &[Pending],
    owner: &str,
) -> Result<Vec<Written>, sqlx::Error> {
    let mut attempt = 1;
    let written = loop {
        let written = match link.open().await {
            Ok(open) => write_batch(store.backend, open, batch, owner).await,
            Err(err) => Err(err),
        };
        match &written {
            Err(err) if attempt < ATTEMPTS && store.backend.is_retryable(err) => {
                tracing::warn!(error = %err, "audit commit aborted by the database; trying again");
                if store.backend.is_lock_timeout(err)
                    && let Some(open) = link.current()
                {
                    break_dead_holders(store.backend, open).await;
                }
                attempt += 1;
            }
            _ => break written,
        }
    };
    if written.is_err() {
        link.lost().await;
    }
    written
}

/// Tries the held run results again, oldest first, each in a commit of its own (one the store keeps refusing
/// does not hold the others back), leaving out any that an earlier commit reported failed but did write; stops
/// at the first that fails again.
async fn write_held(store: &Store, link: &mut Link, held: &mut Held, owner: &str) {
    let mut written = 0;
    while let Some((pending, since)) = held.take() {
        let landed = match link.open().await {
            Ok(open) => unwritten(open, &pending).await,
            Err(err) => Err(err),
        };
        let result = match landed {
            Ok(false) => Ok(()),
            Ok(true) => write_retrying(store, link, std::slice::from_ref(&pending), owner)
                .await
                .map(|_| ()),
            Err(err) => {
                link.lost().await;
                Err(err)
            }
        };
        match result {
            Ok(()) => written += 1,
            Err(err) => {
                tracing::warn!(error = %err, records = held.len() + 1, "the audit store is still unavailable");
                held.failed(pending, since);
                break;
            }
        }
    }
    if written > 0 {
        tracing::warn!(
            records = written,
            "the audit store is back: run results held by a failed commit are written, their claims and leases given back"
        );
    }
}

/// Whether the held write's record has no final version in the chain yet.
async fn unwritten(conn: &mut AnyConnection, pending: &Pending) -> Result<bool, sqlx::Error> {
    match &pending.op {
        Op::Put(put) => Ok(!entries::has_final(conn, &put.record.id).await?),
        _ => Ok(false),
    }
}

/// Ends the sessions of dead processes that still hold locks, logging what was done.
async fn break_dead_holders(backend: Backend, conn: &mut AnyConnection) {
    match processes::break_dead_holders(conn, backend).await {
        Ok(0) => {}
        Ok(ended) => tracing::warn!(
            sessions = ended,
            "ended the database sessions of dead processes that held the audit store's locks"
        ),
        Err(err) => tracing::warn!(error = %err, "cannot look for dead processes holding locks"),
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

/// Writes one batch in one transaction: each table's operations through the module that owns the table,
/// the delivery settlements and claims with a few multi-row statements, and last every record version
/// appended to the chain. Answers one `Written` per operation, in order.
async fn write_batch(
    backend: Backend,
    conn: &mut AnyConnection,
    batch: &[Pending],
    owner: &str,
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = backend.begin(conn).await?;
    // Every time this batch writes or compares is the database's, read once.
    let now = backend.now_ms(&mut *tx).await?;
    let now_at = super::times::from_millis(now).unwrap_or_else(OffsetDateTime::now_utc);
    let puts: Vec<&Put> = batch
        .iter()
        .filter_map(|pending| match &pending.op {
            Op::Put(put) => Some(put.as_ref()),
            _ => None,
        })
        .collect();
    // Deliveries claimed and completed at once go first, so that a claim of the same key in this batch finds
    // them; a record that rides on one is written only if its claim was won.
    let firsts_won = claim_firsts(&mut tx, backend, &puts, owner, now).await?;
    let mut results = apply_brakes(&mut tx, backend, batch, owner, now_at).await?;
    let braked = braked_intents(&mut tx, backend, &puts).await?;
    let won = |put: &Put| match put.settle {
        _ if braked.contains_key(&put.record.id) => false,
        Some(DeliveryUpdate::First { .. }) => firsts_won.contains(&put.record.id),
        _ => true,
    };
    let records: Vec<&AuditRecord> = puts
        .iter()
        .filter(|put| won(put))
        .map(|put| &put.record)
        .collect();
    leases::release_finished(&mut tx, &records).await?;
    for (result, pending) in results.iter_mut().zip(batch) {
        if result.is_none() {
            *result = Some(match &pending.op {
                Op::Put(put) if !won(put) => Written::Done,
                op => apply(&mut tx, backend, op, owner, now_at).await?,
            });
        }
    }
    let mut results: Vec<Written> = results.into_iter().flatten().collect();
    let settles: Vec<(&str, &DeliveryUpdate)> = puts
        .iter()
        .filter_map(|put| Some((put.record.id.as_str(), put.settle.as_ref()?)))
        .collect();
    let tries = claim_tries(batch, now);
    let mut claimed = claims::settle_and_claim(&mut tx, &settles, &tries, owner, now)
        .await?
        .into_iter();
    for (pending, result) in batch.iter().zip(results.iter_mut()) {
        match &pending.op {
            Op::Claim { .. } => *result = claimed.next().map_or(Written::Done, Written::Claim),
            Op::Put(put) if braked.contains_key(&put.record.id) => {
                *result = Written::Braked(Box::new(braked[&put.record.id].clone()));
            }
            Op::Put(put) if matches!(put.settle, Some(DeliveryUpdate::First { .. })) => {
                *result = Written::First(won(put));
            }
            _ => {}
        }
    }
    // Last, just before the commit: on PostgreSQL the chain's head stays locked until then, so replicas wait
    // for each other only this long.
    let rows: Vec<&PreparedRow> = puts
        .iter()
        .filter(|put| won(put))
        .map(|put| &put.row)
        .collect();
    let head = entries::append(&mut tx, backend, &rows).await?;
    tx.commit().await?;
    if let Some(head) = head {
        // Each batch's head in the log: anchors kept where the database's owner cannot edit them.
        tracing::info!(target: "reflex::audit::anchor", seq = head.seq, hash = %head.hash, "audit chain head");
    }
    Ok(results)
}

/// Claims and completes the deliveries of the puts that settle theirs at once; the audit ids of those that got
/// their key.
async fn claim_firsts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    puts: &[&Put],
    owner: &str,
    now: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut firsts: Vec<(&str, &str, &bytes::Bytes)> = puts
        .iter()
        .filter_map(|put| match &put.settle {
            Some(DeliveryUpdate::First { key, answer }) => {
                Some((key.as_str(), put.record.id.as_str(), answer))
            }
            _ => None,
        })
        .collect();
    claims::claim_completed(tx, backend, &mut firsts, owner, now).await
}

/// The runs' intents of the batch whose target is paused or has its breaker open now, by record id, with
/// what stops them.
/// Applies the batch's pauses, silences and breaker changes before anything else: a run's intent in the same
/// commit sees them, and is not written (so the run writes nothing to AWS) when its target is braked. Their
/// results, in the batch's order (`None` for the other writes).
async fn apply_brakes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    batch: &[Pending],
    owner: &str,
    now_at: OffsetDateTime,
) -> Result<Vec<Option<Written>>, sqlx::Error> {
    let mut results: Vec<Option<Written>> = (0..batch.len()).map(|_| None).collect();
    for (result, pending) in results.iter_mut().zip(batch) {
        if matches!(
            pending.op,
            Op::Pause { .. } | Op::Silence(..) | Op::Breaker(..)
        ) {
            *result = Some(apply(tx, backend, &pending.op, owner, now_at).await?);
        }
    }
    Ok(results)
}

async fn braked_intents(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    puts: &[&Put],
) -> Result<std::collections::HashMap<String, Brakes>, sqlx::Error> {
    let mut braked = std::collections::HashMap::new();
    for put in puts {
        if let Some(decision) = &put.decision {
            let brakes = brakes::of_key(&mut **tx, backend, &decision.target).await?;
            if brakes.any() {
                braked.insert(put.record.id.clone(), brakes);
            }
        }
    }
    Ok(braked)
}

/// The delivery claims of the batch, each with the time (ms) before which an older claim is taken over.
fn claim_tries(batch: &[Pending], now: i64) -> Vec<claims::ClaimTry<'_>> {
    batch
        .iter()
        .filter_map(|pending| match &pending.op {
            Op::Claim {
                key,
                audit_id,
                window_ms,
            } => {
                let expired_before =
                    window_ms.map_or(i64::MIN, |window| now.saturating_sub(window));
                Some((key.as_str(), audit_id.as_str(), expired_before))
            }
            _ => None,
        })
        .collect()
}

/// Writes what rides with a record version (the chain's entry is appended with the batch's others): its
/// decision, the job it finishes, its approvals change, its episode step and the jobs it adds.
async fn apply_put(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    put: &Put,
    now_at: OffsetDateTime,
) -> Result<Written, sqlx::Error> {
    let now = millis(now_at);
    if let Some(decision) = &put.decision {
        decisions::insert(tx, decision, now_at).await?;
    }
    if let Some(job) = &put.finishes {
        jobs::finish(tx, job).await?;
    }
    if let Some(write) = &put.approval {
        approvals::apply(tx, write, &put.record.id, now).await?;
    }
    if let Some(write) = &put.episode {
        episodes::apply(tx, write, &put.record.id, now).await?;
    }
    if put.record.source == Source::RecoveryCheck
        && let Some(run) = crate::detail::checked_run(&put.record.detail)
    {
        checks::insert(tx, &put.record.id, run, now).await?;
    }
    let new: Vec<&NewJob> = put.jobs.iter().collect();
    Ok(Written::Enqueued(jobs::enqueue(tx, &new, now).await?))
}

/// Applies one operation (claims are answered after, all together); its answer.
async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    op: &Op,
    owner: &str,
    now_at: OffsetDateTime,
) -> Result<Written, sqlx::Error> {
    let now = millis(now_at);
    Ok(match op {
        Op::Put(put) => apply_put(tx, put, now_at).await?,
        Op::Claim { .. } => Written::Done,
        Op::Probe => {
            readiness::probe(tx, now).await?;
            Written::Done
        }
        Op::Lease { key, audit_id } => {
            Written::Lease(leases::take(tx, key, audit_id, owner, now).await?)
        }
        Op::Pause { key, reason } => {
            pauses::pause(tx, key, reason, now).await?;
            Written::Done
        }
        Op::Resume { key } => Written::Resumed(pauses::resume(tx, key).await?),
        Op::Silence(new) => Written::Silenced(Box::new(silences::add(tx, new, now).await?)),
        Op::Unsilence { id } => {
            Written::Unsilenced(silences::lift(tx, id, now).await?.map(Box::new))
        }
        Op::SettleHome(home) => Written::Home(home::settle(tx, home, now).await?),
        Op::Prune { before_ms } => {
            let removed = entries::prune(tx, backend, *before_ms, now).await?;
            claims::prune(tx, *before_ms).await?;
            decisions::prune(tx, *before_ms).await?;
            processes::prune(tx, *before_ms).await?;
            silences::prune(tx, *before_ms).await?;
            approvals::prune(tx, *before_ms).await?;
            episodes::prune(tx, *before_ms).await?;
            checks::prune(tx, *before_ms).await?;
            Written::Pruned(removed)
        }
        Op::Breaker(key, change) => Written::Breaker(breakers::change(tx, key, change, now).await?),
        Op::Enqueue(new) => {
            let new: Vec<&NewJob> = new.iter().collect();
            Written::Enqueued(jobs::enqueue(tx, &new, now).await?)
        }
        Op::ClaimJob => Written::Job(jobs::claim(tx, backend, owner, now).await?),
        Op::RetryJob {
            id,
            after_ms,
            error,
        } => {
            jobs::retry(tx, id, owner, now.saturating_add(*after_ms), error).await?;
            Written::Done
        }
        Op::UiKey {
            fresh,
            rotate: false,
        } => Written::UiKey(ui_sessions::key_or(tx, fresh, now).await?),
        Op::UiKey {
            fresh,
            rotate: true,
        } => Written::UiKey(ui_sessions::rotate(tx, fresh, now).await?),
        Op::SessionStart { id, lifetime_ms } => {
            ui_sessions::start(tx, id, now, *lifetime_ms).await?;
            Written::Done
        }
        Op::SessionEnd { id } => {
            ui_sessions::end(tx, id).await?;
            Written::Done
        }
        Op::Vote { id, change } => {
            Written::Vote(approvals::vote(tx, backend, id, change, now).await?)
        }
    })
}
