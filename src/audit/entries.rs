//! The chain in the database (`audit_entries`, `audit_chain`): appending a batch's record versions, pruning a
//! prefix behind a checkpoint, hashing entries carried over from a store older than the chain, and reading the
//! entries back for verification and export. The hashing and the checks themselves are in `chain`.

use sqlx::Connection as _;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::AuditError;
use super::backend::Backend;
use super::backend::statement_chunks;
use super::chain::{self, Break, Entry, Mark, Verifier};
use super::rows::{COLUMNS, PreparedRow, StoredRow, insert_sql};

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Entries read per query while verifying or exporting.
pub(super) const PAGE: i64 = 2000;

/// The head of the chain, locked until the transaction ends (on SQLite the IMMEDIATE transaction already holds
/// the only write lock; on PostgreSQL the row lock orders the replicas' appends).
async fn lock_head(tx: &mut Tx<'_>, backend: Backend) -> Result<Mark, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let (seq, hash): (i64, String) = sqlx::query_as(&format!(
        "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1{lock}"
    ))
    .fetch_one(&mut **tx)
    .await?;
    Ok(Mark { seq, hash })
}

async fn set_head(tx: &mut Tx<'_>, head: &Mark) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE audit_chain SET head_seq = $1, head_hash = $2 WHERE id = 1")
        .bind(head.seq)
        .bind(head.hash.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Whether the record `id` has a version other than its intent in the chain.
pub(super) async fn has_final(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let found =
        sqlx::query("SELECT 1 FROM audit_entries WHERE id = $1 AND outcome <> 'acting' LIMIT 1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Appends one entry per record version, in order, after the chain's head.
pub(super) async fn append(
    tx: &mut Tx<'_>,
    backend: Backend,
    rows: &[&PreparedRow],
) -> Result<Option<Mark>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut head = lock_head(tx, backend).await?;
    let links: Vec<(i64, String, String)> = rows
        .iter()
        .map(|prepared| {
            let hash = chain::link_canonical(&head.hash, &prepared.canonical);
            head.seq += 1;
            (
                head.seq,
                std::mem::replace(&mut head.hash, hash.clone()),
                hash,
            )
        })
        .collect();
    let entries: Vec<(&StoredRow, &(i64, String, String))> = rows
        .iter()
        .map(|prepared| &prepared.row)
        .zip(&links)
        .collect();
    for chunk in statement_chunks(&entries) {
        let sql = insert_sql(backend, chunk.len());
        let mut query = sqlx::query(&sql);
        for (row, (seq, prev_hash, hash)) in chunk {
            query = row
                .bind(query)
                .bind(*seq)
                .bind(prev_hash.as_str())
                .bind(hash.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    set_head(tx, &head).await?;
    Ok(Some(head))
}

/// A run whose intent is younger than this may still be acting (a target lease lasts at most 10 minutes), so
/// pruning never removes it, whatever the cutoff. An older `acting` record is an attempt that died (a takeover
/// finished its job under a record of its own).
const IN_FLIGHT_MS: i64 = 3_600_000;

/// Removes the oldest entries, up to the last one written before `before_ms` and before the first entry of a
/// run that may still be in flight: a prefix of the chain, so what is left still verifies, from a checkpoint
/// that keeps the last removed entry's hash. Returns how many entries went.
pub(super) async fn prune(
    tx: &mut Tx<'_>,
    backend: Backend,
    before_ms: i64,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    lock_head(tx, backend).await?;
    let keep_from: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(seq) FROM audit_entries WHERE at_ms >= $1 OR (at_ms >= $2 AND id IN \
         (SELECT id FROM audit_records WHERE outcome = 'acting' AND at_ms >= $2))",
    )
    .bind(before_ms)
    .bind(now_ms.saturating_sub(IN_FLIGHT_MS))
    .fetch_one(&mut **tx)
    .await?;
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_entries WHERE seq < $1 AND hash IS NOT NULL \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(keep_from.unwrap_or(i64::MAX))
    .fetch_optional(&mut **tx)
    .await?;
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    let removed = sqlx::query("DELETE FROM audit_entries WHERE seq <= $1")
        .bind(seq)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query("UPDATE audit_chain SET checkpoint_seq = $1, checkpoint_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    Ok(removed)
}

/// Hashes, once, the entries a store from before the chain was carried over with (after the head, their
/// hashes unset), in sequence order: only while nothing was ever chained (the head at 0), that is at the first
/// open after the migration that introduced the chain. Afterwards an unhashed entry is one added by hand, which
/// verification reports, never adopts. On every later open the chain ends at its head, which two lookups by key
/// show, so start-up never scans the trail.
pub(super) async fn adopt(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
) -> Result<u64, sqlx::Error> {
    let (head_seq, last): (i64, Option<i64>) = sqlx::query_as(
        "SELECT head_seq, (SELECT MAX(seq) FROM audit_entries) FROM audit_chain WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await?;
    if head_seq != 0 || last.is_none_or(|last| last <= head_seq) {
        return Ok(0);
    }
    let mut tx = backend.begin(conn).await?;
    let mut head = lock_head(&mut tx, backend).await?;
    // Another process may have chained since the look above: then nothing is adopted.
    if head.seq != 0 {
        return Ok(0);
    }
    let rows = sqlx::query(&format!(
        "SELECT seq, {COLUMNS} FROM audit_entries WHERE seq > $1 AND hash IS NULL ORDER BY seq"
    ))
    .bind(head.seq)
    .fetch_all(&mut *tx)
    .await?;
    let mut adopted = 0;
    for row in &rows {
        let seq: i64 = row.try_get("seq")?;
        let hash = chain::link(&head.hash, &StoredRow::read(row)?);
        sqlx::query("UPDATE audit_entries SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(head.hash.as_str())
            .bind(hash.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        head = Mark { seq, hash };
        adopted += 1;
    }
    set_head(&mut tx, &head).await?;
    tx.commit().await?;
    Ok(adopted)
}

/// What a verification of the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Where verification started: the checkpoint of the last prune (sequence 0 when never pruned).
    pub from: i64,
    /// The last entry.
    pub to: i64,
}

/// Reads `pool`'s chain in pages and checks every entry; the first break, or what was verified. The head and
/// every page are read in one read-only transaction (a snapshot: PostgreSQL's REPEATABLE READ, SQLite's read
/// transaction), so a server writing meanwhile neither breaks nor extends what is checked.
pub(super) async fn verify(
    pool: &sqlx::AnyPool,
    backend: Backend,
) -> Result<Result<Verified, Break>, AuditError> {
    let mut conn = pool.acquire().await?;
    let begin = match backend {
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        Backend::Sqlite => "BEGIN",
    };
    let mut tx = conn.begin_with(begin).await?;
    let (checkpoint, head) = marks(&mut *tx).await?;
    let from = checkpoint.seq;
    let mut verifier = Verifier::new(checkpoint);
    let mut after = i64::MIN;
    loop {
        let page = entries_after(&mut *tx, after, None).await?;
        for entry in &page {
            if let Err(broken) = verifier.push(entry) {
                return Ok(Err(broken));
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.seq,
            _ => break,
        }
    }
    tx.rollback().await?;
    Ok(verifier.finish(&head).map(|(entries, last)| Verified {
        entries,
        from,
        to: last.seq,
    }))
}

/// The chain's checkpoint and head.
pub(super) async fn marks<'c, E>(executor: E) -> Result<(Mark, Mark), AuditError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT head_seq, head_hash, checkpoint_seq, checkpoint_hash FROM audit_chain WHERE id = 1",
    )
    .fetch_one(executor)
    .await?;
    Ok((
        Mark {
            seq: row.try_get("checkpoint_seq")?,
            hash: row.try_get("checkpoint_hash")?,
        },
        Mark {
            seq: row.try_get("head_seq")?,
            hash: row.try_get("head_hash")?,
        },
    ))
}

/// The hash of entry `seq`, when it is there.
pub(super) async fn hash_of(pool: &sqlx::AnyPool, seq: i64) -> Result<Option<String>, AuditError> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT hash FROM audit_entries WHERE seq = $1")
            .bind(seq)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// Up to `PAGE` entries after sequence number `after`, in order; with `since_ms`, only those written at or after it.
pub(super) async fn entries_after<'c, E>(
    pool: E,
    after: i64,
    since_ms: Option<i64>,
) -> Result<Vec<Entry>, AuditError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query(&format!(
        "SELECT seq, prev_hash, hash, {COLUMNS} FROM audit_entries WHERE seq > $1 AND at_ms >= $2 \
         ORDER BY seq LIMIT {PAGE}"
    ))
    .bind(after)
    .bind(since_ms.unwrap_or(i64::MIN))
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}

fn entry(row: &AnyRow) -> Result<Entry, AuditError> {
    Ok(Entry {
        seq: row.try_get("seq")?,
        prev_hash: row
            .try_get::<Option<String>, _>("prev_hash")?
            .unwrap_or_default(),
        hash: row
            .try_get::<Option<String>, _>("hash")?
            .unwrap_or_default(),
        row: StoredRow::read(row)?,
    })
}
