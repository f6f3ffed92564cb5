//! The brakes kept in the store, so that they hold across restarts and for every process sharing it: each
//! target's breaker (consecutive runs that hit AWS errors; open until an operator resets it) and the recovery
//! checks still to run (claimed by one process at a time).

use serde::Serialize;
use sqlx::Row as _;
use time::OffsetDateTime;

use super::processes::{alive_since, holder_is_dead};
use super::rows::{from_millis, millis};

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

/// A recovery check due: the run that acted, its target, and how many instances should be InService once the
/// target recovered (those InService before the run plus those it replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCheck {
    /// The audit id of the run that acted.
    pub run_id: String,
    /// Its target.
    pub target: String,
    /// InService instances expected once the target recovered.
    pub expected_in_service: u32,
    /// When the check is due.
    pub due: OffsetDateTime,
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

/// Records a check to run at `check.due`.
pub(super) async fn schedule(tx: &mut Tx<'_>, check: &RecoveryCheck) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recovery_checks (run_id, target, due_ms, expected_in_service) VALUES ($1, $2, $3, $4) \
         ON CONFLICT(run_id) DO NOTHING",
    )
    .bind(check.run_id.as_str())
    .bind(check.target.as_str())
    .bind(millis(check.due))
    .bind(i64::from(check.expected_in_service))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims the oldest due check for `owner`: one nobody holds, whose holder died, or whose claim is older than
/// `retry_before` (a check that failed to read its target is tried again then).
pub(super) async fn take_check(
    tx: &mut Tx<'_>,
    owner: &str,
    now: i64,
    retry_before: i64,
) -> Result<Option<RecoveryCheck>, sqlx::Error> {
    // The claimable condition is repeated outside the subquery: PostgreSQL re-checks it on the row it waited
    // for, so that of two replicas picking the same check only one claims it.
    let claimable = format!(
        "(claimed_ms IS NULL OR claimed_ms < $3 OR {})",
        holder_is_dead("recovery_checks", 4)
    );
    let sql = format!(
        "UPDATE recovery_checks SET owner = $1, claimed_ms = $2 WHERE run_id = \
         (SELECT run_id FROM recovery_checks WHERE due_ms <= $2 AND {claimable} ORDER BY due_ms LIMIT 1) \
         AND {claimable} RETURNING run_id, target, expected_in_service, due_ms"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(now)
        .bind(retry_before)
        .bind(alive_since(now))
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| {
        let before: i64 = row.try_get("expected_in_service")?;
        let due: i64 = row.try_get("due_ms")?;
        Ok(RecoveryCheck {
            run_id: row.try_get("run_id")?,
            target: row.try_get("target")?,
            expected_in_service: u32::try_from(before).unwrap_or(0),
            due: from_millis(due).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    })
    .transpose()
}

/// Removes a check whose result is recorded in the same commit.
pub(super) async fn finish_check(tx: &mut Tx<'_>, run_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recovery_checks WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
