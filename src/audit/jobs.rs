//! The `jobs` table: durable background work (recovery checks, notifications; approval expiries and ladder
//! steps are further kinds). A job is a row with a kind, a due time, its payload (the owner's JSON) and its
//! attempts. Every process polls for due jobs; a claim names the claiming process, so a job runs once across
//! replicas, and a dead or hung claimer's job is taken over. A job is finished in the same commit as the
//! record it produced, or put back with a later due time to be retried.

use sqlx::{AnyPool, Row as _};

use super::backend::{Backend, values};
use super::processes::{alive_since, holder_is_dead};

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Jobs of a bounded kind waiting at most; past it, new ones are dropped (and counted by the caller).
pub const QUEUE_BOUND: u64 = 1024;

/// A job to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What kind of work it is (`recovery-check`, `notify`, ...): which handler runs it.
    pub kind: &'static str,
    /// A key that makes it unique (a second job with the same key is not added), if it has one.
    pub dedup_key: Option<String>,
    /// How long after it is added (on the database's clock) it is due, in ms.
    pub delay_ms: i64,
    /// The handler's data, as JSON.
    pub payload: String,
    /// Whether its kind's queue is bounded by `QUEUE_BOUND` (notifications), rather than never dropped.
    pub bounded: bool,
}

/// A job this process claimed and now runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its data.
    pub payload: String,
    /// Attempts including this one.
    pub attempts: u32,
}

/// Adds `jobs` at `now` (ms); returns how many were dropped because their bounded queue was full.
pub(super) async fn enqueue(
    tx: &mut Tx<'_>,
    jobs: &[&NewJob],
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut dropped = 0;
    let mut room: Vec<(&str, u64)> = Vec::new();
    let mut kept = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.bounded {
            let left = match room.iter_mut().find(|(kind, _)| *kind == job.kind) {
                Some((_, left)) => left,
                None => {
                    let waiting: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = $1")
                            .bind(job.kind)
                            .fetch_one(&mut **tx)
                            .await?;
                    let left = QUEUE_BOUND.saturating_sub(u64::try_from(waiting).unwrap_or(0));
                    room.push((job.kind, left));
                    &mut room.last_mut().expect("just pushed").1
                }
            };
            if *left == 0 {
                dropped += 1;
                continue;
            }
            *left -= 1;
        }
        kept.push(*job);
    }
    for chunk in kept.chunks(64) {
        let sql = format!(
            "INSERT INTO jobs (id, kind, dedup_key, due_ms, payload) VALUES {} ON CONFLICT DO NOTHING",
            values(chunk.len(), 5, 1)
        );
        let mut query = sqlx::query(&sql);
        for job in chunk {
            query = query
                .bind(super::next_id())
                .bind(job.kind)
                .bind(job.dedup_key.as_deref())
                .bind(now.saturating_add(job.delay_ms))
                .bind(job.payload.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(dropped)
}

/// The SQL condition "nobody runs this job": never claimed, put back, or claimed by a dead process. A job a
/// live process still runs is never taken over, however long it takes: taking it over would run it twice (a
/// process that hangs stops heartbeating only when it dies; its jobs are then taken over). `$alive` is bound to
/// the liveness threshold.
fn claimable(alive: usize) -> String {
    format!("(jobs.owner IS NULL OR {})", holder_is_dead("jobs", alive))
}

/// Claims the oldest due job for `owner` at `now` (ms), if any.
pub(super) async fn claim(
    tx: &mut Tx<'_>,
    backend: Backend,
    owner: &str,
    now: i64,
) -> Result<Option<ClaimedJob>, sqlx::Error> {
    // The condition is repeated outside the subquery: PostgreSQL re-checks it on the row it waited for, so
    // that of two replicas picking the same job only one claims it (and SKIP LOCKED lets the other pick the
    // next one instead of waiting).
    let claimable = claimable(3);
    let skip_locked = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET owner = $1, claimed_ms = $2, attempts = attempts + 1 WHERE id = \
         (SELECT id FROM jobs WHERE due_ms <= $2 AND {claimable} ORDER BY due_ms, id LIMIT 1{skip_locked}) \
         AND {claimable} RETURNING id, kind, payload, attempts"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(now)
        .bind(alive_since(now))
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| {
        let attempts: i64 = row.try_get("attempts")?;
        Ok(ClaimedJob {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        })
    })
    .transpose()
}

/// Puts the job `id`, claimed by `owner`, back to be tried again at `due_ms`, noting why it failed.
pub(super) async fn retry(
    tx: &mut Tx<'_>,
    id: &str,
    owner: &str,
    due_ms: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET owner = NULL, claimed_ms = NULL, due_ms = $3, last_error = $4 \
         WHERE id = $1 AND owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(due_ms)
    .bind(error)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Removes the job added with `dedup_key`, whoever holds it: what it would do is no longer wanted.
pub(super) async fn cancel(tx: &mut Tx<'_>, dedup_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM jobs WHERE dedup_key = $1")
        .bind(dedup_key)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Removes the finished job `id`.
pub(super) async fn finish(tx: &mut Tx<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Whether some job is due now (on the database's clock) that nobody runs: a read, so that idle polling
/// writes nothing.
pub(super) async fn any_due(readers: &AnyPool, backend: Backend) -> Result<bool, sqlx::Error> {
    let now = backend.now_ms(readers).await?;
    let sql = format!(
        "SELECT id FROM jobs WHERE due_ms <= $1 AND {} LIMIT 1",
        claimable(2)
    );
    let row = sqlx::query(&sql)
        .bind(now)
        .bind(alive_since(now))
        .fetch_optional(readers)
        .await?;
    Ok(row.is_some())
}

/// Jobs waiting, by kind.
pub(super) async fn waiting(readers: &AnyPool) -> Result<Vec<(String, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM jobs GROUP BY kind ORDER BY kind")
            .fetch_all(readers)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, count)| (kind, u64::try_from(count).unwrap_or(0)))
        .collect())
}
