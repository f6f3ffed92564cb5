//! The `pauses` table: the kill switch. A paused target (or every target) is refused without any AWS call
//! until it is resumed; the pause lives in the store, so it survives restarts and holds for every process.

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::rows::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// How the pause of every target is stored.
pub(super) const ALL_TARGETS: &str = "*";

/// A pause in force: the kill switch for one target or for all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pause {
    /// The paused target; `None` for every target.
    pub target: Option<String>,
    /// What the operator said.
    pub reason: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Pause {
    pub(super) fn from_row((target, reason, at_ms): (String, String, i64)) -> Self {
        Self {
            target: (target != ALL_TARGETS).then_some(target),
            reason,
            since: from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

/// Pauses `target` (`ALL_TARGETS`: every target) for `reason` at `now` (ms); pausing again replaces the reason.
pub(super) async fn pause(
    tx: &mut Tx<'_>,
    target: &str,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pauses (target, reason, at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT(target) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms",
    )
    .bind(target)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Lifts the pause of `target`; whether there was one.
pub(super) async fn resume(tx: &mut Tx<'_>, target: &str) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM pauses WHERE target = $1")
        .bind(target)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

/// Every pause in force, everything's first.
pub(super) async fn all(readers: &AnyPool) -> Result<Vec<Pause>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT target, reason, at_ms FROM pauses ORDER BY target")
            .fetch_all(readers)
            .await?;
    let mut pauses: Vec<Pause> = rows.into_iter().map(Pause::from_row).collect();
    pauses.sort_by_key(|pause| pause.target.is_some());
    Ok(pauses)
}
