//! The `silences` table: pauses with a required end. A silenced target (or everything) is refused without any
//! AWS call until the silence ends; the end is a time on the database's clock, so it comes at the same instant
//! for every process sharing the store, and a durable job announces it once.

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::backend::Backend;
use super::jobs::{self, NewJob};
use super::keys::Key;
use super::times::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// The job kind that announces a silence's end.
pub const END_JOB: &str = "silence-end";

/// A silence in force: the kill switch with an end, for one target or for all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Silence {
    /// Its id, to lift it early (`DELETE /admin/silences/{id}`).
    pub id: String,
    /// The silenced target's name; `None` for every target.
    pub target: Option<String>,
    /// Its AWS account (`None` for every target).
    pub account: Option<String>,
    /// Its AWS region (`None` for every target).
    pub region: Option<String>,
    /// What the operator said.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When it ends by itself.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// A silence to add: for whom, why, by whom and for how long (ms, from the commit's time).
#[derive(Debug, Clone)]
pub(super) struct NewSilence {
    pub id: String,
    pub key: Key,
    pub reason: String,
    pub by: String,
    pub for_ms: i64,
}

/// A silences row: id, account, region, target, reason, by_whom, at_ms, until_ms.
pub(super) type Row = (String, String, String, String, String, String, i64, i64);

impl Silence {
    /// The silence a row stores.
    pub(super) fn from_row(
        (id, account, region, target, reason, by, at_ms, until_ms): Row,
    ) -> Self {
        let (target, account, region) = Key {
            account,
            region,
            target,
        }
        .into_shown();
        Self {
            id,
            target,
            account,
            region,
            reason,
            by,
            since: from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            until: from_millis(until_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

/// Adds `silence` at `now` (ms), with the job that announces its end; the silence as stored.
pub(super) async fn add(
    tx: &mut Tx<'_>,
    silence: &NewSilence,
    now: i64,
) -> Result<Silence, sqlx::Error> {
    let added = insert(tx, silence, now).await?;
    let end = NewJob {
        kind: END_JOB,
        dedup_key: Some(end_key(&added.id)),
        delay_ms: silence.for_ms,
        payload: serde_json::to_string(&added).unwrap_or_default(),
        bounded: false,
    };
    jobs::enqueue(tx, &[&end], now).await?;
    Ok(added)
}

/// Lifts the silence `id` before its end, if it is still in force at `now`, and cancels its end's job: the
/// silence lifted.
pub(super) async fn lift(
    tx: &mut Tx<'_>,
    id: &str,
    now: i64,
) -> Result<Option<Silence>, sqlx::Error> {
    let lifted = remove(tx, id, now).await?;
    if lifted.is_some() {
        jobs::cancel(tx, &end_key(id)).await?;
    }
    Ok(lifted)
}

/// The key of the job that announces the end of the silence `id`.
fn end_key(id: &str) -> String {
    format!("{END_JOB}:{id}")
}

/// Writes the row of `silence` at `now` (ms).
async fn insert(tx: &mut Tx<'_>, silence: &NewSilence, now: i64) -> Result<Silence, sqlx::Error> {
    let row: Row = (
        silence.id.clone(),
        silence.key.account.clone(),
        silence.key.region.clone(),
        silence.key.target.clone(),
        silence.reason.clone(),
        silence.by.clone(),
        now,
        now.saturating_add(silence.for_ms),
    );
    sqlx::query(
        "INSERT INTO silences (id, account, region, target, reason, by_whom, at_ms, until_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.0.as_str())
    .bind(row.1.as_str())
    .bind(row.2.as_str())
    .bind(row.3.as_str())
    .bind(row.4.as_str())
    .bind(row.5.as_str())
    .bind(row.6)
    .bind(row.7)
    .execute(&mut **tx)
    .await?;
    Ok(Silence::from_row(row))
}

/// Removes the silence `id`, if it is still in force at `now`.
async fn remove(tx: &mut Tx<'_>, id: &str, now: i64) -> Result<Option<Silence>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM silences WHERE id = $1 AND until_ms > $2 \
         RETURNING id, account, region, target, reason, by_whom, at_ms, until_ms",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Silence::from_row))
}

/// Removes the silences that ended before `before_ms`.
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM silences WHERE until_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Every silence in force now (on the database's clock), everything's first, then by end.
pub(super) async fn all(readers: &AnyPool, backend: Backend) -> Result<Vec<Silence>, sqlx::Error> {
    let sql = format!(
        "SELECT id, account, region, target, reason, by_whom, at_ms, until_ms FROM silences \
         WHERE until_ms > {} ORDER BY until_ms, id",
        backend.now_sql()
    );
    let rows: Vec<Row> = sqlx::query_as(&sql).fetch_all(readers).await?;
    let mut silences: Vec<Silence> = rows.into_iter().map(Silence::from_row).collect();
    silences.sort_by_key(|silence| silence.target.is_some());
    Ok(silences)
}
