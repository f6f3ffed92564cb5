//! SQLite audit store with group commit: one writer task batches every pending record into a single
//! transaction, so each request waits for a durable commit without paying one fsync of its own.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::completed::{Completed, CompletedDeliveries};
use super::{AuditError, AuditRecord, Claim, DeliveryUpdate};

/// Most records committed in one transaction.
const BATCH_MAX: usize = 1024;
/// Records waiting for the writer before callers feel back-pressure.
const QUEUE_DEPTH: usize = 8192;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_records (
    id          TEXT PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    source      TEXT NOT NULL,
    caller      TEXT,
    auth        TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT,
    dry_run     INTEGER NOT NULL,
    acted       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_acted ON audit_records (target, at_ms) WHERE acted > 0;
CREATE TABLE IF NOT EXISTS deliveries (
    key      TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    summary  TEXT
);
"#;

/// Rows per multi-row upsert statement, largest first: a batch is written with as few statements as possible
/// (each statement is one round trip to SQLite's worker thread), from a fixed set of cached statements.
const UPSERT_CHUNKS: [usize; 3] = [64, 8, 1];

/// The upsert of `rows` audit records in one statement.
fn upsert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!(
        "INSERT INTO audit_records \
         (id, at_ms, source, caller, auth, target, outcome, status, error, dry_run, acted, duration_ms, detail) \
         VALUES {values} \
         ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, status = excluded.status, \
         error = excluded.error, acted = excluded.acted, duration_ms = excluded.duration_ms, \
         detail = excluded.detail, target = excluded.target, auth = excluded.auth"
    )
}

/// One write for the writer task.
enum Op {
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

struct Pending {
    op: Op,
    done: oneshot::Sender<Result<Claim, String>>,
}

/// Handle to the audit trail; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditStore {
    writer: mpsc::Sender<Pending>,
    readers: SqlitePool,
    completed: Arc<CompletedDeliveries>,
}

/// Keeps the writer task so shutdown can wait for the last commit.
#[derive(Debug)]
pub struct WriterTask {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl WriterTask {
    /// Stops accepting records (later `put`s fail with `WriterGone`), commits every queued one, and waits.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl AuditStore {
    /// Opens (creating when missing) the SQLite database at `url` (`sqlite://PATH`) and starts the writer.
    pub async fn open(url: &str) -> Result<(Self, WriterTask), AuditError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let mut writer = SqliteConnection::connect_with(&options).await?;
        sqlx::raw_sql(SCHEMA).execute(&mut writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_loop(writer, rx, stopped));
        Ok((
            Self {
                writer: tx,
                readers,
                completed: Arc::default(),
            },
            WriterTask { task, stop },
        ))
    }

    /// Inserts or replaces the record with this id, and returns once it is durably committed.
    pub async fn put(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.submit(Op::Put(Box::new(record), None))
            .await
            .map(|_| ())
    }

    /// Like `put`, and in the same commit completes or releases the request's delivery claim.
    pub async fn put_settling(
        &self,
        record: AuditRecord,
        delivery: DeliveryUpdate,
    ) -> Result<(), AuditError> {
        let completed = match &delivery {
            DeliveryUpdate::Complete { key, summary } => Some((
                key.clone(),
                Completed {
                    audit_id: record.id.clone(),
                    summary: summary.clone(),
                },
            )),
            DeliveryUpdate::Release { .. } => None,
        };
        self.submit(Op::Put(Box::new(record), Some(delivery)))
            .await?;
        if let Some((key, completed)) = completed {
            self.completed.insert(key, completed);
        }
        Ok(())
    }

    /// Claims `key` (e.g. an SNS MessageId) for the request `audit_id`, durably. Exactly one of several
    /// concurrent claimants gets `Claim::New`, also across processes sharing the store. With a `window`, a claim
    /// older than it no longer counts (the same alert group notified again later is handled again).
    pub async fn claim(
        &self,
        key: &str,
        audit_id: &str,
        window: Option<std::time::Duration>,
    ) -> Result<Claim, AuditError> {
        if window.is_none()
            && let Some(done) = self.completed.get(key)
        {
            return Ok(Claim::Existing {
                audit_id: done.audit_id,
                summary: Some(done.summary),
            });
        }
        let expired_before_ms = window.map_or(i64::MIN, |window| {
            millis(OffsetDateTime::now_utc())
                .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
        });
        self.submit(Op::Claim {
            key: key.to_owned(),
            audit_id: audit_id.to_owned(),
            expired_before_ms,
        })
        .await
    }

    /// The current state of a claimed delivery.
    pub async fn delivery(&self, key: &str) -> Result<Option<Claim>, AuditError> {
        let row = sqlx::query("SELECT audit_id, summary FROM deliveries WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| claim_from_row(&row)).transpose()
    }

    async fn submit(&self, op: Op) -> Result<Claim, AuditError> {
        let (done, committed) = oneshot::channel();
        self.writer
            .send(Pending { op, done })
            .await
            .map_err(|_| AuditError::WriterGone)?;
        committed
            .await
            .map_err(|_| AuditError::WriterGone)?
            .map_err(AuditError::Commit)
    }

    /// The newest records first.
    pub async fn list(&self, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, source, caller, auth, target, outcome, status, error, dry_run, acted, duration_ms, \
             detail FROM audit_records ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// When instances of this balancer were last terminated (or were being terminated), for the cooldown.
    pub async fn last_action_at(&self, target: &str) -> Result<Option<OffsetDateTime>, AuditError> {
        let at_ms: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(at_ms) FROM audit_records WHERE target = ? AND acted > 0 AND dry_run = 0",
        )
        .bind(target)
        .fetch_one(&self.readers)
        .await?;
        Ok(at_ms.and_then(from_millis))
    }

    /// Proves the store answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), AuditError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        if self.writer.is_closed() {
            return Err(AuditError::WriterGone);
        }
        Ok(())
    }
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
            Op::Put(record, Some(DeliveryUpdate::Complete { key, summary })) => {
                sqlx::query("UPDATE deliveries SET summary = ? WHERE key = ? AND audit_id = ?")
                    .bind(summary.to_string())
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
            } => {
                let inserted = sqlx::query(
                    "INSERT INTO deliveries (key, audit_id, at_ms) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE \
                     SET audit_id = excluded.audit_id, at_ms = excluded.at_ms, summary = NULL \
                     WHERE deliveries.at_ms < ?",
                )
                .bind(key)
                .bind(audit_id)
                .bind(millis(OffsetDateTime::now_utc()))
                .bind(expired_before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    Claim::New
                } else {
                    let row = sqlx::query("SELECT audit_id, summary FROM deliveries WHERE key = ?")
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                    claim_from_row(&row).map_err(|err| sqlx::Error::Decode(err.into()))?
                }
            }
        };
        results.push(result);
    }
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
                query = query
                    .bind(&record.id)
                    .bind(millis(record.at))
                    .bind(&record.source)
                    .bind(&record.caller)
                    .bind(&record.auth)
                    .bind(&record.target)
                    .bind(&record.outcome)
                    .bind(record.status)
                    .bind(&record.error)
                    .bind(record.dry_run)
                    .bind(record.acted)
                    .bind(i64::try_from(record.duration_ms).unwrap_or(i64::MAX))
                    .bind(record.detail.to_string());
            }
            query.execute(&mut **tx).await?;
            records = rest;
        }
    }
    Ok(())
}

fn claim_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Claim, AuditError> {
    let summary: Option<String> = row.try_get("summary")?;
    Ok(Claim::Existing {
        audit_id: row.try_get("audit_id")?,
        summary: summary.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

fn record_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AuditRecord, AuditError> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: from_millis(row.try_get("at_ms")?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        source: row.try_get("source")?,
        caller: row.try_get("caller")?,
        auth: row.try_get("auth")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        dry_run: row.try_get("dry_run")?,
        acted: row.try_get("acted")?,
        duration_ms: row.try_get::<i64, _>("duration_ms")?.max(0).unsigned_abs(),
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, target: &str, acted: u32) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            at: OffsetDateTime::now_utc(),
            source: "manual".into(),
            caller: Some("127.0.0.1:1".into()),
            auth: "passed".into(),
            target: Some(target.into()),
            outcome: "completed".into(),
            status: 200,
            error: None,
            dry_run: false,
            acted,
            duration_ms: 3,
            detail: serde_json::json!({"k": "v"}),
        }
    }

    #[tokio::test]
    async fn concurrent_puts_are_all_committed_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let (store, writer) = AuditStore::open(&url).await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.put(record(&format!("{n:04}"), "web", 0)).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let listed = store.list(500).await.unwrap();
        assert_eq!(listed.len(), 200);
        assert_eq!(listed[0].id, "0199");
        assert_eq!(listed[0].detail["k"], "v");
        drop(store);
        writer.finish().await;
    }

    #[tokio::test]
    async fn a_put_with_the_same_id_replaces_the_outcome_and_drives_the_cooldown() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let (store, _writer) = AuditStore::open(&url).await.unwrap();
        assert_eq!(store.last_action_at("web").await.unwrap(), None);
        let mut intent = record("1", "web", 2);
        intent.outcome = "acting".into();
        store.put(intent).await.unwrap();
        assert!(store.last_action_at("web").await.unwrap().is_some());
        store.put(record("1", "web", 0)).await.unwrap();
        let listed = store.list(10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].outcome, "completed");
        assert_eq!(store.last_action_at("web").await.unwrap(), None);
        assert_eq!(store.last_action_at("other").await.unwrap(), None);
    }
}
