//! The `decisions` table: each acting run's decision (what it will do and why it may), written in the same
//! commit as its intent and read back typed by the engine when the run is finished later (a takeover). The
//! store keeps the decision's JSON; its meaning belongs to the engine.

use sqlx::{AnyPool, Row as _};

use super::keys::Key;
use super::times::millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A decision as stored beside its run's intent.
#[derive(Debug, Clone)]
pub(super) struct DecisionRow {
    /// The run that decided.
    pub run_id: String,
    /// Its target.
    pub target: Key,
    /// How many steps it decided.
    pub steps: u32,
    /// The decision, as JSON.
    pub body: String,
}

/// Writes `row` (once: a run decides once).
pub(super) async fn insert(
    tx: &mut Tx<'_>,
    row: &DecisionRow,
    now: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO decisions (run_id, target, decided_ms, steps, body, account, region) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(run_id) DO NOTHING",
    )
    .bind(row.run_id.as_str())
    .bind(row.target.target.as_str())
    .bind(millis(now))
    .bind(i64::from(row.steps))
    .bind(row.body.as_str())
    .bind(row.target.account.as_str())
    .bind(row.target.region.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The decision of the run `run_id`, as JSON, if it decided to act.
pub(super) async fn body_of(
    readers: &AnyPool,
    run_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT body FROM decisions WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(readers)
        .await
}

/// Most decisions of one target one read returns.
pub const READ_MAX: usize = 1000;

/// The decisions of `target` made at or after `since_ms`, newest first (at most `READ_MAX`): the run, when
/// it decided (milliseconds since the epoch), and the decision as JSON.
pub(super) async fn of_target_since(
    readers: &AnyPool,
    target: &Key,
    since_ms: i64,
) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT run_id, decided_ms, body FROM decisions \
         WHERE account = $1 AND region = $2 AND target = $3 AND decided_ms >= $4 \
         ORDER BY decided_ms DESC, run_id DESC LIMIT $5",
    )
    .bind(target.account.as_str())
    .bind(target.region.as_str())
    .bind(target.target.as_str())
    .bind(since_ms)
    .bind(i64::try_from(READ_MAX).unwrap_or(i64::MAX))
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// Removes the decisions made before `before_ms` (pruning, with the entries of the same age).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM decisions WHERE decided_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
