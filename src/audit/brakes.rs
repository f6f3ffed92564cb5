//! The brakes a run asks for before anything is read: the pause that holds for its target, the silence in
//! force for it and its breaker when open, and the instances of its account and region paused or silenced on
//! their own, read together from `pauses`, `silences` and `breakers` in one query (each table's writes live
//! in its own module).

use std::collections::BTreeMap;

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::backend::Backend;
use super::breakers::OpenBreaker;
use super::keys::{self, Key};
use super::pauses::Pause;
use super::silences::Silence;
use super::times::from_millis;
use crate::target::TargetId;

/// What stops a target before anything is read (`AuditStore::brakes_of`).
#[derive(Debug, Clone, Default)]
pub struct Brakes {
    /// The pause in force for it.
    pub pause: Option<Pause>,
    /// The silence in force for it (of several, the one that ends last).
    pub silence: Option<Silence>,
    /// Its breaker, when open.
    pub breaker: Option<OpenBreaker>,
    /// The instances of its account and region paused or silenced on their own, by id: a run leaves them
    /// alone, whatever its target or rule.
    pub instances: BTreeMap<String, InstanceBrake>,
}

/// Why an instance is held back on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceBrake {
    /// It is paused until an operator resumes it.
    Paused,
    /// It is silenced until its silence ends or is lifted.
    Silenced,
}

impl Brakes {
    /// Whether any brake holds for the target itself (an instance's own brake holds back that instance only).
    pub fn any(&self) -> bool {
        self.pause.is_some() || self.silence.is_some() || self.breaker.is_some()
    }
}

/// What stops `target` before anything is read: the pause that holds for it (the pause of everything, or
/// else its own), the silence in force for it and its breaker when open, and the instances held back in its
/// place. Asked on every run, so it is one query of a few rows.
pub(super) async fn of(
    readers: &AnyPool,
    backend: Backend,
    target: &TargetId,
) -> Result<Brakes, sqlx::Error> {
    of_key(readers, backend, &Key::from(target)).await
}

/// A brakes row: kind, account, region, target, reason, at_ms, until_ms, id, by_whom.
type Row = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
);

/// `of` for the target stored as `key`, read on `conn` (the pool, or the writer's transaction: a run's intent
/// is refused in the very commit that would have written it). Silences are compared with the database's clock.
pub(super) async fn of_key<'c, E>(
    conn: E,
    backend: Backend,
    key: &Key,
) -> Result<Brakes, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let every = Key::every_target();
    let none = "CAST(0 AS BIGINT) AS until_ms, '' AS id, '' AS by_whom";
    // The instances held back in the target's place: their rows' names begin with the prefix no target's has.
    // (`substr`, not `LIKE`, which SQLite compares without case.)
    let held = format!(
        "account = $1 AND region = $2 AND substr(target, 1, {}) = '{}'",
        keys::INSTANCE_PREFIX.len(),
        keys::INSTANCE_PREFIX
    );
    let sql = format!(
        "SELECT 'pause' AS kind, account, region, target, reason, at_ms, {none} FROM pauses \
         WHERE ({}) OR ({}) OR ({held}) UNION ALL \
         SELECT 'silence' AS kind, account, region, target, reason, at_ms, until_ms, id, by_whom FROM silences \
         WHERE (({}) OR ({}) OR ({held})) AND until_ms > {} UNION ALL \
         SELECT 'breaker' AS kind, account, region, target, open_reason, opened_ms, {none} FROM breakers \
         WHERE {} AND opened_ms IS NOT NULL",
        keys::matches("pauses", 1),
        keys::matches("pauses", 4),
        keys::matches("silences", 1),
        keys::matches("silences", 4),
        backend.now_sql(),
        keys::matches("breakers", 1),
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
        .bind(every.account.as_str())
        .bind(every.region.as_str())
        .bind(every.target.as_str())
        .fetch_all(conn)
        .await?;
    let mut brakes = Brakes::default();
    rows.into_iter().for_each(|row| brakes.add(row));
    Ok(brakes)
}

impl Brakes {
    /// Adds what `row` says holds: an instance's own brake, or the target's (or everything's) pause, silence
    /// or open breaker.
    fn add(&mut self, (kind, account, region, target, reason, at_ms, until_ms, id, by): Row) {
        if let Some(instance) = target.strip_prefix(keys::INSTANCE_PREFIX) {
            let brake = if kind == "pause" {
                InstanceBrake::Paused
            } else {
                InstanceBrake::Silenced
            };
            // A pause holds until resumed: it is what the instance is held back by when both hold.
            let held = self.instances.entry(instance.to_owned()).or_insert(brake);
            if brake == InstanceBrake::Paused {
                *held = brake;
            }
            return;
        }
        let since = from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        match kind.as_str() {
            "breaker" => {
                self.breaker = Some(OpenBreaker {
                    target,
                    account,
                    region,
                    reason,
                    since,
                });
            }
            "silence" => {
                let silence =
                    Silence::from_row((id, account, region, target, reason, by, at_ms, until_ms));
                if self
                    .silence
                    .as_ref()
                    .is_none_or(|held| held.until < silence.until)
                {
                    self.silence = Some(silence);
                }
            }
            _ if self.pause.as_ref().is_none_or(|p| p.target.is_some()) => {
                // The pause of everything wins over the target's own.
                self.pause = Some(Pause::from_row((account, region, target, reason, at_ms)));
            }
            _ => {}
        }
    }
}
