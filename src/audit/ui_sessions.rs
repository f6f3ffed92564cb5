//! The audit page's tables: `ui_key`, the random key that signs its session and CSRF values (made the first
//! time it is needed, shared by every replica, replaced by `reflex ui rotate-key`), and `ui_sessions`, the
//! sessions it issued (a logout or a rotation ends them; each expires).

use sqlx::AnyPool;

use super::backend::Backend;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// The key, made from `fresh` when there is none yet.
pub(super) async fn key_or(tx: &mut Tx<'_>, fresh: &str, now: i64) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO ui_key (id, key, created_ms) VALUES (1, $1, $2) ON CONFLICT(id) DO NOTHING",
    )
    .bind(fresh)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar("SELECT key FROM ui_key WHERE id = 1")
        .fetch_one(&mut **tx)
        .await
}

/// Replaces the key with `fresh` and ends every session.
pub(super) async fn rotate(tx: &mut Tx<'_>, fresh: &str, now: i64) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO ui_key (id, key, created_ms) VALUES (1, $1, $2) \
         ON CONFLICT(id) DO UPDATE SET key = excluded.key, created_ms = excluded.created_ms",
    )
    .bind(fresh)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM ui_sessions")
        .execute(&mut **tx)
        .await?;
    Ok(fresh.to_owned())
}

/// The key, when one was made.
pub(super) async fn key(readers: &AnyPool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT key FROM ui_key WHERE id = 1")
        .fetch_optional(readers)
        .await
}

/// Records the session `id`, ending `lifetime_ms` from now; forgets sessions that have expired.
pub(super) async fn start(
    tx: &mut Tx<'_>,
    id: &str,
    now: i64,
    lifetime_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE expires_ms <= $1")
        .bind(now)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO ui_sessions (id, created_ms, expires_ms) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(now)
        .bind(now.saturating_add(lifetime_ms))
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Ends the session `id` (a logout).
pub(super) async fn end(tx: &mut Tx<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Whether the session `id` was issued, not ended, and has not expired (on the database's clock).
pub(super) async fn is_live(
    readers: &AnyPool,
    backend: Backend,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let live: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM ui_sessions WHERE id = $1 AND expires_ms > {}",
        backend.now_sql()
    ))
    .bind(id)
    .fetch_one(readers)
    .await?;
    Ok(live > 0)
}
