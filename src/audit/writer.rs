//! The batching writer: one task commits every pending write in a single transaction (group commit), so each
//! request waits for a durable commit without paying one fsync of its own.

use sqlx::{Connection, SqliteConnection};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::deliveries::{Claim, DeliveryUpdate};
use super::rows::{UPSERT_CHUNKS, bind_record, millis, upsert_sql};
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
}

/// A write and who waits for its commit.
pub(super) struct Pending {
    pub op: Op,
    pub done: oneshot::Sender<Result<Claim, String>>,
}

/// Keeps the writer task so shutdown can wait for the last commit.
#[derive(Debug)]
pub struct WriterTask {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl WriterTask {
    /// Starts the writer over `conn`.
    pub(super) fn start(conn: SqliteConnection, rx: mpsc::Receiver<Pending>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_loop(conn, rx, stopped));
        Self { task, stop }
    }

    /// Stops accepting records (later `put`s fail with `WriterGone`), commits every queued one, and waits.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Sends a write to the writer and waits for its commit.
pub(super) async fn submit(writer: &mpsc::Sender<Pending>, op: Op) -> Result<Claim, AuditError> {
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
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Pending>,
    mut stopped: oneshot::Receiver<()>,
) {
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
        match write_batch(&mut conn, &batch).await {
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
            }
        }
    }
}

/// Writes one batch in one transaction: every record with multi-row upserts, then the delivery claims and
/// settlements in arrival order (records and deliveries are separate tables, so only the latter's order matters).
async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[Pending],
) -> Result<Vec<Claim>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let records: Vec<&AuditRecord> = batch
        .iter()
        .filter_map(|pending| match &pending.op {
            Op::Put(record, _) => Some(record.as_ref()),
            Op::Claim { .. } => None,
        })
        .collect();
    upsert_records(&mut tx, &records).await?;
    let mut results = Vec::with_capacity(batch.len());
    for Pending { op, .. } in batch {
        let result = match op {
            Op::Put(record, Some(DeliveryUpdate::Complete { key, answer })) => {
                sqlx::query("UPDATE deliveries SET summary = ? WHERE key = ? AND audit_id = ?")
                    .bind(String::from_utf8_lossy(answer))
                    .bind(key)
                    .bind(&record.id)
                    .execute(&mut *tx)
                    .await?;
                Claim::New
            }
            Op::Put(record, Some(DeliveryUpdate::Release { key })) => {
                sqlx::query("DELETE FROM deliveries WHERE key = ? AND audit_id = ?")
                    .bind(key)
                    .bind(&record.id)
                    .execute(&mut *tx)
                    .await?;
                Claim::New
            }
            Op::Put(_, None) => Claim::New,
            Op::Claim {
                key,
                audit_id,
                expired_before_ms,
            } => claim(&mut tx, key, audit_id, *expired_before_ms).await?,
        };
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

async fn claim(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key: &str,
    audit_id: &str,
    expired_before_ms: i64,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO deliveries (key, audit_id, at_ms) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE \
         SET audit_id = excluded.audit_id, at_ms = excluded.at_ms, summary = NULL \
         WHERE deliveries.at_ms < ?",
    )
    .bind(key)
    .bind(audit_id)
    .bind(millis(OffsetDateTime::now_utc()))
    .bind(expired_before_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (audit_id, answer): (String, Option<String>) =
        sqlx::query_as("SELECT audit_id, summary FROM deliveries WHERE key = ?")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Claim::Existing {
        audit_id,
        answer: answer.map(Into::into),
    })
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
