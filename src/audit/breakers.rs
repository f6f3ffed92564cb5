//! The `breakers` table: each target's breaker (consecutive runs that hit AWS errors; open until an operator
//! resets it), kept in the store so that it holds across restarts and for every process sharing it. Keyed by
//! the target's account, region and name.

use serde::Serialize;
use sqlx::{AnyPool, Row as _};
use time::OffsetDateTime;

use super::keys::{Key, matches};
use super::times::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// What a change does to one target's breaker, written by the writer.
#[derive(Debug)]
pub(super) enum BreakerChange {
    /// A run hit AWS errors: one more consecutive failure; the breaker opens at `trip_after`.
    Failed { trip_after: u32 },
    /// A run read its target without AWS errors: the failures start again from 0.
    Succeeded,
    /// Open the breaker now, for `reason` (a budget exhausted, a failed recovery check).
    Trip { reason: String },
    /// An operator closes the breaker.
    Reset,
}

/// An open breaker: the target is refused without any AWS call until an operator resets it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenBreaker {
    /// The target's name.
    pub target: String,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
    /// Why it opened.
    pub reason: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A target's breaker as `GET /admin/state` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerState {
    /// The target's name.
    pub target: String,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
    /// Consecutive runs that hit AWS errors.
    pub failures: u32,
    /// Set while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenBreaker>,
}

/// Applies `change` to `key`'s breaker; whether it changed the breaker's state (it opened, or a reset closed
/// an open one).
pub(super) async fn change(
    tx: &mut Tx<'_>,
    key: &Key,
    change: &BreakerChange,
    now: i64,
) -> Result<bool, sqlx::Error> {
    match change {
        BreakerChange::Failed { trip_after } => {
            let row = sqlx::query(
                "INSERT INTO breakers (account, region, target, failures) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT(account, region, target) DO UPDATE SET failures = breakers.failures + 1 \
                 RETURNING failures, opened_ms",
            )
            .bind(key.account.as_str())
            .bind(key.region.as_str())
            .bind(key.target.as_str())
            .fetch_one(&mut **tx)
            .await?;
            let failures: i64 = row.try_get("failures")?;
            let opened: Option<i64> = row.try_get("opened_ms")?;
            if failures < i64::from(*trip_after) || opened.is_some() {
                return Ok(false);
            }
            let reason = format!("{failures} consecutive runs hit AWS errors");
            open(tx, key, &reason, now).await
        }
        BreakerChange::Succeeded => {
            let sql = format!(
                "UPDATE breakers SET failures = 0 WHERE {} AND failures > 0",
                matches("breakers", 1)
            );
            bind(sqlx::query(&sql), key).execute(&mut **tx).await?;
            Ok(false)
        }
        BreakerChange::Trip { reason } => open(tx, key, reason, now).await,
        BreakerChange::Reset => {
            let sql = format!(
                "UPDATE breakers SET failures = 0, open_reason = NULL, opened_ms = NULL \
                 WHERE {} AND opened_ms IS NOT NULL",
                matches("breakers", 1)
            );
            let reset = bind(sqlx::query(&sql), key).execute(&mut **tx).await?;
            Ok(reset.rows_affected() > 0)
        }
    }
}

/// Binds `key` as `$1..$3`.
fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    key: &'q Key,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
}

/// Opens `key`'s breaker unless it is open already; whether it opened now.
async fn open(tx: &mut Tx<'_>, key: &Key, reason: &str, now: i64) -> Result<bool, sqlx::Error> {
    let opened = sqlx::query(
        "INSERT INTO breakers (account, region, target, failures, open_reason, opened_ms) \
         VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT(account, region, target) \
         DO UPDATE SET open_reason = excluded.open_reason, opened_ms = excluded.opened_ms \
         WHERE breakers.opened_ms IS NULL RETURNING target",
    )
    .bind(key.account.as_str())
    .bind(key.region.as_str())
    .bind(key.target.as_str())
    .bind(reason)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(opened.is_some())
}

/// Every breaker with a row: open ones, and closed ones counting failures.
pub(super) async fn all(readers: &AnyPool) -> Result<Vec<BreakerState>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT account, region, target, failures, open_reason, opened_ms FROM breakers \
         ORDER BY target, account, region",
    )
    .fetch_all(readers)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Reads a breakers row.
fn from_row(row: &sqlx::any::AnyRow) -> Result<BreakerState, sqlx::Error> {
    let target: String = row.try_get("target")?;
    let account: String = row.try_get("account")?;
    let region: String = row.try_get("region")?;
    let failures: i64 = row.try_get("failures")?;
    let reason: Option<String> = row.try_get("open_reason")?;
    let opened_ms: Option<i64> = row.try_get("opened_ms")?;
    let open = match (reason, opened_ms) {
        (Some(reason), Some(at)) => Some(OpenBreaker {
            target: target.clone(),
            account: account.clone(),
            region: region.clone(),
            reason,
            since: from_millis(at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }),
        _ => None,
    };
    Ok(BreakerState {
        target,
        account,
        region,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        open,
    })
}
