//! The tamper-evident trail. Every record written — a run's intent, then its outcome — is appended to
//! `audit_log` with `hash = SHA-256(previous hash, "\n", canonical JSON of the record)`, inside the same commit
//! as the record. `verify` walks the chain from its start (or from the checkpoint a prune left) and checks every
//! row of `audit_records` against its newest entry, naming the first record that was changed, removed or
//! reordered.

use std::collections::HashMap;

use sqlx::Row as _;
use time::OffsetDateTime;

use super::rows::{COLUMNS, from_millis, millis, record_from_row};
use super::{AuditError, AuditRecord};

/// The hash the first entry follows.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Entries per multi-row insert (6 bound values each).
const CHUNK: usize = 128;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

/// The record as the chain hashes it: as it is stored (times to the millisecond), as JSON with sorted keys.
pub(super) fn canonical(record: &AuditRecord) -> String {
    let mut stored = record.clone();
    stored.at = from_millis(millis(record.at)).unwrap_or(record.at);
    stored.acted_at = record
        .acted_at
        .map(|at| from_millis(millis(at)).unwrap_or(at));
    serde_json::to_string(&stored).unwrap_or_default()
}

fn link(previous: &str, content: &str) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(previous.as_bytes());
    context.update(b"\n");
    context.update(content.as_bytes());
    context
        .finish()
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The hash the next entry follows: the last entry's, else the checkpoint's, else the genesis.
async fn head(tx: &mut Tx<'_>) -> Result<String, sqlx::Error> {
    let last: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(last) = last {
        return Ok(last);
    }
    let checkpoint: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_checkpoint WHERE id = 1")
            .fetch_optional(&mut **tx)
            .await?;
    Ok(checkpoint.unwrap_or_else(|| GENESIS.to_owned()))
}

/// Appends `records`, in order, to the chain (in the caller's transaction, which holds the write lock).
pub(super) async fn append(tx: &mut Tx<'_>, records: &[&AuditRecord]) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut previous = head(tx).await?;
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        let content = canonical(record);
        let hash = link(&previous, &content);
        entries.push((
            record.id.as_str(),
            millis(record.at),
            content,
            previous,
            hash.clone(),
        ));
        previous = hash;
    }
    for chunk in entries.chunks(CHUNK) {
        let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO audit_log (record_id, at_ms, content, prev_hash, hash) VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for (id, at_ms, content, prev_hash, hash) in chunk {
            query = query
                .bind(*id)
                .bind(*at_ms)
                .bind(content.as_str())
                .bind(prev_hash.as_str())
                .bind(hash.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Chains the records of a store created before the chain existed, once, oldest first.
pub(super) async fn adopt(conn: &mut sqlx::SqliteConnection) -> Result<(), AuditError> {
    use sqlx::Connection as _;
    let chained: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_log LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let checkpoint: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_checkpoint LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    if chained.is_some() || checkpoint.is_some() {
        return Ok(());
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY id"))
        .fetch_all(&mut *tx)
        .await?;
    let records = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    append(&mut tx, &records.iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    Ok(())
}

/// After records older than `before_ms` were removed: drops the chain's prefix that holds only removed
/// records' entries from before the cutoff, keeping its last hash as the checkpoint the rest follows.
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    let keep_from: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(seq) FROM audit_log \
         WHERE at_ms >= ? OR record_id IN (SELECT id FROM audit_records)",
    )
    .bind(before_ms)
    .fetch_one(&mut **tx)
    .await?;
    let last_dropped: Option<(i64, String)> = match keep_from {
        Some(first_kept) => {
            sqlx::query_as(
                "SELECT seq, hash FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT 1",
            )
            .bind(first_kept)
            .fetch_optional(&mut **tx)
            .await?
        }
        None => {
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    let Some((seq, hash)) = last_dropped else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO audit_checkpoint (id, seq, hash, pruned_before_ms) VALUES (1, ?, ?, ?) \
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
         pruned_before_ms = excluded.pruned_before_ms",
    )
    .bind(seq)
    .bind(&hash)
    .bind(before_ms)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM audit_log WHERE seq <= ?")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What `verify` found wrong first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampering {
    /// An entry's content no longer matches its hash, or a record no longer matches its newest entry.
    #[error("audit record {record_id} was changed (chain entry {seq})")]
    Changed {
        /// The record.
        record_id: String,
        /// Its chain entry.
        seq: i64,
    },
    /// An entry does not follow the one before it: entries before it were removed, or entries were
    /// reordered.
    #[error(
        "audit record {record_id} (chain entry {seq}) does not follow the entry before it: records before it \
         were removed or reordered"
    )]
    Unlinked {
        /// The first record after the break.
        record_id: String,
        /// Its chain entry.
        seq: i64,
    },
    /// A record the chain holds is missing from the trail.
    #[error("audit record {record_id} was removed (chain entry {seq})")]
    Removed {
        /// The record.
        record_id: String,
        /// Its newest chain entry.
        seq: i64,
    },
    /// A record in the trail was never written through the chain.
    #[error("audit record {record_id} is not in the chain: it was inserted by hand")]
    Unchained {
        /// The record.
        record_id: String,
    },
}

/// How much a successful `verify` checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Chain entries checked.
    pub entries: u64,
    /// Records checked against their newest entry.
    pub records: u64,
    /// The checkpoint the chain started from, when a prune left one.
    pub from_checkpoint: Option<i64>,
}

/// Walks the whole chain and the trail. `Ok(Err(..))` names the first tampering found.
pub(super) async fn verify(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Result<Verified, Tampering>, AuditError> {
    let checkpoint: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, pruned_before_ms FROM audit_checkpoint WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (from_checkpoint, mut expected, pruned_before_ms) = match &checkpoint {
        Some((seq, hash, before)) => (Some(*seq), hash.clone(), *before),
        None => (None, GENESIS.to_owned(), i64::MIN),
    };
    let rows = sqlx::query(
        "SELECT seq, record_id, at_ms, content, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(&mut *conn)
    .await?;
    // The newest entry of each record: (seq, at_ms, content).
    let mut newest: HashMap<String, (i64, i64, String)> = HashMap::new();
    for row in &rows {
        let seq: i64 = row.try_get("seq")?;
        let record_id: String = row.try_get("record_id")?;
        let content: String = row.try_get("content")?;
        let prev_hash: String = row.try_get("prev_hash")?;
        let hash: String = row.try_get("hash")?;
        if prev_hash != expected {
            return Ok(Err(Tampering::Unlinked { record_id, seq }));
        }
        let names = serde_json::from_str::<serde_json::Value>(&content)
            .is_ok_and(|value| value["id"] == record_id.as_str());
        if link(&prev_hash, &content) != hash || !names {
            return Ok(Err(Tampering::Changed { record_id, seq }));
        }
        expected = hash;
        newest.insert(record_id, (seq, row.try_get("at_ms")?, content));
    }
    let records = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY id"))
        .fetch_all(&mut *conn)
        .await?;
    let mut checked = 0;
    for row in &records {
        let record = record_from_row(row)?;
        let Some((seq, _, content)) = newest.remove(&record.id) else {
            return Ok(Err(Tampering::Unchained {
                record_id: record.id,
            }));
        };
        if canonical(&record) != content {
            return Ok(Err(Tampering::Changed {
                record_id: record.id,
                seq,
            }));
        }
        checked += 1;
    }
    // Entries whose record is gone: removed by hand, unless a prune removed it.
    if let Some((record_id, (seq, _, _))) = newest
        .into_iter()
        .filter(|(_, (_, at_ms, _))| *at_ms >= pruned_before_ms)
        .min_by_key(|(_, (seq, _, _))| *seq)
    {
        return Ok(Err(Tampering::Removed { record_id, seq }));
    }
    Ok(Ok(Verified {
        entries: rows.len() as u64,
        records: checked,
        from_checkpoint,
    }))
}

/// The chain's entries for records that arrived at or after `since`, oldest first: one JSON object per
/// record version (`seq`, `hash`, and the record), for `reflex audit export`.
pub(super) async fn export(
    conn: &mut sqlx::SqliteConnection,
    since: OffsetDateTime,
) -> Result<Vec<serde_json::Value>, AuditError> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT seq, prev_hash, hash, content FROM audit_log WHERE at_ms >= ? ORDER BY seq",
    )
    .bind(millis(since))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, prev_hash, hash, content)| {
            serde_json::json!({
                "seq": seq,
                "prev_hash": prev_hash,
                "hash": hash,
                "record": serde_json::from_str::<serde_json::Value>(&content)
                    .unwrap_or(serde_json::Value::String(content)),
            })
        })
        .collect())
}
