//! The `breakers` table: each target's breaker (consecutive runs that hit AWS errors; open until an operator
//! resets it), kept in the store so that it holds across restarts and for every process sharing it.

use serde::Serialize;
use sqlx::Row as _;
use time::OffsetDateTime;

use super::rows::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A change to one target's breaker, written by the writer.
#[derive(Debug)]
pub(super) enum BreakerChange {
    /// A run hit AWS errors: one more consecutive failure; the breaker opens at `trip_after`.
    Failed { target: String, trip_after: u32 },
    /// A run read its target without AWS errors: the failures start again from 0.
    Succeeded { target: String },
    /// Open the breaker now, for `reason` (a budget exhausted, a failed recovery check).
    Trip { target: String, reason: String },
    /// An operator closes the breaker.
    Reset { target: String },
}

/// An open breaker: the target is refused without any AWS call until an operator resets it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenBreaker {
    /// The target.
    pub target: String,
    /// Why it opened.
    pub reason: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A target's breaker as `GET /admin/state` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerState {
    /// The target.
    pub target: String,
    /// Consecutive runs that hit AWS errors.
    pub failures: u32,
    /// Set while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenBreaker>,
}

/// Applies `change`; whether it changed the breaker's state (it opened, or a reset closed an open one).
pub(super) async fn change_breaker(
    tx: &mut Tx<'_>,
    change: &BreakerChange,
    now: i64,
) -> Result<bool, sqlx::Error> {
    match change {
        BreakerChange::Failed { target, trip_after } => {
            let row = sqlx::query(
                "INSERT INTO breakers (target, failures) VALUES ($1, 1) ON CONFLICT(target) \
                 DO UPDATE SET failures = breakers.failures + 1 RETURNING failures, opened_ms",
            )
            .bind(target.as_str())
            .fetch_one(&mut **tx)
            .await?;
            let failures: i64 = row.try_get("failures")?;
            let opened: Option<i64> = row.try_get("opened_ms")?;
            if failures < i64::from(*trip_after) || opened.is_some() {
                return Ok(false);
            }
            let reason = format!("{failures} consecutive runs hit AWS errors");
            open(tx, target, &reason, now).await
        }
        BreakerChange::Succeeded { target } => {
            sqlx::query("UPDATE breakers SET failures = 0 WHERE target = $1 AND failures > 0")
                .bind(target.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(false)
        }
        BreakerChange::Trip { target, reason } => open(tx, target, reason, now).await,
        BreakerChange::Reset { target } => Ok(sqlx::query(
            "UPDATE breakers SET failures = 0, open_reason = NULL, opened_ms = NULL \
             WHERE target = $1 AND opened_ms IS NOT NULL",
        )
        .bind(target.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected()
            > 0),
    }
}

/// Opens `target`'s breaker unless it is open already; whether it opened now.
async fn open(tx: &mut Tx<'_>, target: &str, reason: &str, now: i64) -> Result<bool, sqlx::Error> {
    let opened = sqlx::query(
        "INSERT INTO breakers (target, failures, open_reason, opened_ms) VALUES ($1, 0, $2, $3) \
         ON CONFLICT(target) DO UPDATE SET open_reason = excluded.open_reason, opened_ms = excluded.opened_ms \
         WHERE breakers.opened_ms IS NULL RETURNING target",
    )
    .bind(target)
    .bind(reason)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(opened.is_some())
}

/// Reads a breakers row (`target, failures, open_reason, opened_ms`).
pub(super) fn breaker_from_row(row: &sqlx::any::AnyRow) -> Result<BreakerState, sqlx::Error> {
    let target: String = row.try_get("target")?;
    let failures: i64 = row.try_get("failures")?;
    let reason: Option<String> = row.try_get("open_reason")?;
    let opened_ms: Option<i64> = row.try_get("opened_ms")?;
    let open = match (reason, opened_ms) {
        (Some(reason), Some(at)) => Some(OpenBreaker {
            target: target.clone(),
            reason,
            since: from_millis(at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }),
        _ => None,
    };
    Ok(BreakerState {
        target,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        open,
    })
}
