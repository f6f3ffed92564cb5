//! The `pauses` table: the kill switch. A paused target (or everything) is refused without any AWS call
//! until it is resumed; the pause lives in the store, so it survives restarts and holds for every process.

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::keys::{Key, matches};
use super::times::from_millis;
use crate::target::TargetId;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// What a pause (or a resume) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every target.
    Everything,
    /// One target.
    Target(&'a TargetId),
}

impl Scope<'_> {
    /// The row it is stored as.
    pub(super) fn key(self) -> Key {
        match self {
            Self::Everything => Key::every_target(),
            Self::Target(id) => Key::from(id),
        }
    }
}

/// A pause in force: the kill switch for one target or for all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pause {
    /// The paused target's name; `None` for every target.
    pub target: Option<String>,
    /// Its AWS account (`None` for every target).
    pub account: Option<String>,
    /// Its AWS region (`None` for every target).
    pub region: Option<String>,
    /// What the operator said.
    pub reason: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A pauses row: account, region, target, reason, at_ms.
pub(super) type Row = (String, String, String, String, i64);

impl Pause {
    /// The pause a row stores.
    pub(super) fn from_row((account, region, target, reason, at_ms): Row) -> Self {
        let (target, account, region) = Key {
            account,
            region,
            target,
        }
        .into_shown();
        Self {
            target,
            account,
            region,
            reason,
            since: from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

/// Pauses `key` for `reason` at `now` (ms); pausing again replaces the reason.
pub(super) async fn pause(
    tx: &mut Tx<'_>,
    key: &Key,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pauses (account, region, target, reason, at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT(account, region, target) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms",
    )
    .bind(key.account.as_str())
    .bind(key.region.as_str())
    .bind(key.target.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Lifts the pause of `key`; whether there was one.
pub(super) async fn resume(tx: &mut Tx<'_>, key: &Key) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM pauses WHERE {}", matches("pauses", 1));
    let removed = sqlx::query(&sql)
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

/// Every pause in force, everything's first.
pub(super) async fn all(readers: &AnyPool) -> Result<Vec<Pause>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT account, region, target, reason, at_ms FROM pauses ORDER BY target, account, region",
    )
    .fetch_all(readers)
    .await?;
    let mut pauses: Vec<Pause> = rows.into_iter().map(Pause::from_row).collect();
    pauses.sort_by_key(|pause| pause.target.is_some());
    Ok(pauses)
}
