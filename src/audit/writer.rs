//! The batching writer: one task commits every pending write in a single transaction (group commit), so each
//! request waits for a durable commit without paying one fsync of its own.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::claims;
use super::deliveries::{Claim, DeliveryUpdate};
use super::rows::{UPSERT_CHUNKS, bind_record, upsert_sql};
use super::{AuditError, AuditRecord};

/// Most writes committed in one transaction.
const BATCH_MAX: usize = 1024;
/// Writes waiting for the writer before callers feel back-pressure.
pub(super) const QUEUE_DEPTH: usize = 8192;

/// One write for the writer task.
pub(super) enum Op {
    /// Insert or replace a record, and settle its delivery claim if it has one.
    Put(Box<AuditRecord>, Option<DeliveryUpdate>),
    /// Claim a delivery key for the request with this audit id; a claim older than `expired_before_ms`
    /// is taken over.
    Claim {
        key: String,
        audit_id: String,
        expired_before_ms: i64,
    },
    /// Rewrite the readiness row: proves a commit still goes through.
    Probe,
    /// Delete records and settled delivery claims from before this time (ms).
    Prune { before_ms: i64 },
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
    /// Starts the writer over `conn`.
    pub(super) fn start(
        options: SqliteConnectOptions,
        conn: SqliteConnection,
        rx: mpsc::Receiver<Pending>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_loop(options, conn, rx, stopped));
        Self { task, stop }
    }

    /// Stops accepting records (later `put`s fail with `WriterGone`), commits every queued one, and waits.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
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

async fn write_loop(
    options: SqliteConnectOptions,
    conn: SqliteConnection,
    mut rx: mpsc::Receiver<Pending>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut conn = Some(conn);
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, BATCH_MAX) => received,
            _ = &mut stopped, if !rx.is_closed() => {
                // Refuse new records; the ones already queued are still received and committed below.
                rx.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let written = match conn.as_mut() {
            Some(open) => write_batch(open, &batch).await,
            None => match SqliteConnection::connect_with(&options).await {
                Ok(fresh) => write_batch(conn.insert(fresh), &batch).await,
                Err(err) => Err(err),
            },
        };
        match written {
            Ok(results) => {
                for (pending, result) in batch.drain(..).zip(results) {
                    let _ = pending.done.send(Ok(result));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, records = batch.len(), "audit commit failed");
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(err.to_string()));
                }
                // A failed commit (a full disk, say) can leave the connection inside a transaction that
                // neither SQLite nor the driver will end; every later "commit" would then be lost. The next
                // batch gets a fresh connection instead.
                if let Some(broken) = conn.take() {
                    let _ = broken.close().await;
                }
            }
        }
    }
}

/// Writes one batch in one transaction: every record with multi-row upserts, then the delivery settlements and
/// claims with a few multi-row statements (`claims`).
async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[Pending],
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let records: Vec<&AuditRecord> = batch
        .iter()
        .filter_map(|pending| match &pending.op {
            Op::Put(record, _) => Some(record.as_ref()),
            Op::Claim { .. } | Op::Probe | Op::Prune { .. } => None,
        })
        .collect();
    upsert_records(&mut tx, &records).await?;
    if batch.iter().any(|pending| matches!(pending.op, Op::Probe)) {
        sqlx::query(
            "INSERT INTO readiness (id, at_ms) VALUES (1, ?) \
             ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
        )
        .bind(super::rows::millis(time::OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
    }
    let mut pruned = Vec::new();
    for pending in batch {
        if let Op::Prune { before_ms } = pending.op {
            let removed =
                sqlx::query("DELETE FROM audit_records WHERE at_ms < ? AND outcome != 'acting'")
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            sqlx::query("DELETE FROM deliveries WHERE at_ms < ? AND summary IS NOT NULL")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            pruned.push(removed);
        }
    }
    let mut claims = claims::settle_and_claim(&mut tx, batch).await?.into_iter();
    let mut pruned = pruned.into_iter();
    let results = batch
        .iter()
        .map(|pending| match pending.op {
            Op::Claim { .. } => claims.next().map_or(Written::Done, Written::Claim),
            Op::Prune { .. } => Written::Pruned(pruned.next().unwrap_or(0)),
            Op::Put(..) | Op::Probe => Written::Done,
        })
        .collect();
    tx.commit().await?;
    Ok(results)
}

async fn upsert_records(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    mut records: &[&AuditRecord],
) -> Result<(), sqlx::Error> {
    for rows in UPSERT_CHUNKS {
        let sql = upsert_sql(rows);
        while records.len() >= rows {
            let (chunk, rest) = records.split_at(rows);
            let mut query = sqlx::query(&sql);
            for record in chunk {
                query = bind_record(query, record);
            }
            query.execute(&mut **tx).await?;
            records = rest;
        }
    }
    Ok(())
}
