//! The brakes a run asks for before anything is read: the pause that holds for its target and its breaker
//! when open, read together from `pauses` and `breakers` in one query (each table's writes live in its own
//! module).

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::breakers::OpenBreaker;
use super::keys::{self, Key};
use super::pauses::Pause;
use super::rows::from_millis;
use crate::target::TargetId;

/// What stops a target before anything is read (`AuditStore::brakes_of`).
#[derive(Debug, Clone, Default)]
pub struct Brakes {
    /// The pause in force for it.
    pub pause: Option<Pause>,
    /// Its breaker, when open.
    pub breaker: Option<OpenBreaker>,
}

/// What stops `target` before anything is read: the pause that holds for it (the pause of everything, or
/// else its own) and its breaker when open. Asked on every run, so it is one query of three rows at most.
pub(super) async fn of(readers: &AnyPool, target: &TargetId) -> Result<Brakes, sqlx::Error> {
    of_key(readers, &Key::from(target)).await
}

/// `of` for the target stored as `key`, read on `conn` (the pool, or the writer's transaction: a run's intent
/// is refused in the very commit that would have written it).
pub(super) async fn of_key<'c, E>(conn: E, key: &Key) -> Result<Brakes, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let every = Key::every_target();
    let sql = format!(
        "SELECT 'pause' AS kind, account, region, target, reason, at_ms FROM pauses \
         WHERE ({}) OR ({}) UNION ALL \
         SELECT 'breaker' AS kind, account, region, target, open_reason, opened_ms FROM breakers \
         WHERE {} AND opened_ms IS NOT NULL",
        keys::matches("pauses", 1),
        keys::matches("pauses", 4),
        keys::matches("breakers", 1),
    );
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(&sql)
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
        .bind(every.account.as_str())
        .bind(every.region.as_str())
        .bind(every.target.as_str())
        .fetch_all(conn)
        .await?;
    let mut brakes = Brakes::default();
    for (kind, account, region, target, reason, at_ms) in rows {
        let since = from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if kind == "breaker" {
            brakes.breaker = Some(OpenBreaker {
                target,
                account,
                region,
                reason,
                since,
            });
        } else if brakes.pause.as_ref().is_none_or(|p| p.target.is_some()) {
            // The pause of everything wins over the target's own.
            let everything = target == every.target;
            brakes.pause = Some(Pause {
                target: (!everything).then_some(target),
                account: (!everything).then_some(account),
                region: (!everything).then_some(region),
                reason,
                since,
            });
        }
    }
    Ok(brakes)
}
