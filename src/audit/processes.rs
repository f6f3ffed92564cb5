//! The `processes` table: process liveness. Every process sharing the store is a row whose heartbeat its audit
//! writer rewrites every `HEARTBEAT_EVERY`; one whose heartbeat is `DEAD_AFTER` old is dead, and what it held
//! (delivery claims, leases, claimed jobs) is taken over. Other tables ask "is the holder dead?" through
//! `holder_is_dead`.

use std::time::Duration;

use sqlx::AnyConnection;

use super::backend::Backend;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// How often a process proves it is alive (a row in `processes`, rewritten by its audit writer).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A process whose heartbeat is older than this is dead: its unsettled claims and its target leases are taken
/// over. Three missed heartbeats, and shorter than SNS's 20 s between HTTPS retries, so the first retry after a
/// crash runs.
pub const DEAD_AFTER: Duration = Duration::from_secs(15);

/// Records that the process `owner` is alive now, on the database's clock.
pub(super) async fn beat(
    conn: &mut AnyConnection,
    backend: Backend,
    owner: &str,
) -> Result<(), sqlx::Error> {
    let now = backend.now_sql();
    sqlx::query(&format!(
        "INSERT INTO processes (owner, started_ms, heartbeat_ms) VALUES ($1, {now}, {now}) \
         ON CONFLICT(owner) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms"
    ))
    .bind(owner)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes the process `owner` (a clean stop).
pub(super) async fn remove(tx: &mut Tx<'_>, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM processes WHERE owner = $1")
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Forgets processes that stopped heartbeating before `before_ms` (killed ones never signed off).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM processes WHERE heartbeat_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// A process silent this long is forgotten when another process opens the store, whatever the trail's retention
/// (with `audit.retain_days = 0` nothing else ever prunes the table). What it held stays dead: a holder is alive
/// only while its row says so.
pub const FORGOTTEN_AFTER: Duration = Duration::from_secs(86_400);

/// Forgets the processes silent for `FORGOTTEN_AFTER`, on the database's clock.
pub(super) async fn forget_silent(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<u64, sqlx::Error> {
    let now = backend.now_sql();
    let silent_ms = i64::try_from(FORGOTTEN_AFTER.as_millis()).unwrap_or(i64::MAX);
    Ok(sqlx::query(&format!(
        "DELETE FROM processes WHERE heartbeat_ms < {now} - $1"
    ))
    .bind(silent_ms)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Heartbeats at or after this time (ms) are of live processes.
pub(super) fn alive_since(now: i64) -> i64 {
    now.saturating_sub(i64::try_from(DEAD_AFTER.as_millis()).unwrap_or(i64::MAX))
}

/// The SQL condition "the process named in `table.owner` is dead": no heartbeat since the value bound to
/// `$param` (now minus `DEAD_AFTER`), gone from `processes`, or never named (rows from before leases).
pub(super) fn holder_is_dead(table: &str, param: usize) -> String {
    format!(
        "({table}.owner IS NULL OR {table}.owner NOT IN \
         (SELECT owner FROM processes WHERE heartbeat_ms >= ${param}))"
    )
}

/// Ends the PostgreSQL sessions, inside a transaction, of reflex processes that are dead (their heartbeat is
/// `DEAD_AFTER` old): a frozen replica's open transaction would otherwise hold the chain's head, and every other
/// replica's writes with it, until the server's idle timeout. Answers how many were ended.
pub(super) async fn break_dead_holders(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<i64, sqlx::Error> {
    if backend != Backend::Postgres {
        return Ok(0);
    }
    let now = backend.now_sql();
    let dead_ms = i64::try_from(DEAD_AFTER.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_scalar(&format!(
        "SELECT COUNT(pg_terminate_backend(a.pid)) FROM pg_stat_activity a \
         JOIN processes p ON a.application_name = $1 || p.owner \
         WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL AND p.heartbeat_ms < {now} - {dead_ms}"
    ))
    .bind(super::backend::SESSION_PREFIX)
    .fetch_one(conn)
    .await
}
