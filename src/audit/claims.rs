//! The delivery rows of one batch, written with a few multi-row statements instead of one per request (each
//! statement is a round trip to the database): completions, then releases, then claims. A claim whose key
//! another claim of the same batch already tries is answered from that one. Rows are written in key order, so
//! two PostgreSQL writers locking several keys each take them in the same order.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use sqlx::{AnyPool, Row as _};
use time::OffsetDateTime;

use super::backend::Backend;
use super::times::from_millis;

use super::backend::{list, row_values, statement_chunks, values};
use super::deliveries::{Claim, DeliveryUpdate};
use super::processes::{alive_since, holder_is_dead};

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A claim to try: the key, the request's audit id, and the time (ms) before which an older claim of the key
/// is taken over.
pub(super) type ClaimTry<'a> = (&'a str, &'a str, i64);

/// Settles every delivery (`settles`: the settling request's audit id and its update), then claims every
/// delivery of `claims` for the process `owner`; returns one `Claim` per claim, in order.
pub(super) async fn settle_and_claim(
    tx: &mut Tx<'_>,
    settles: &[(&str, &DeliveryUpdate)],
    claims: &[ClaimTry<'_>],
    owner: &str,
    now: i64,
) -> Result<Vec<Claim>, sqlx::Error> {
    let mut completions = Vec::new();
    for (audit_id, update) in settles {
        match update {
            DeliveryUpdate::Complete { key, answer } => {
                completions.push((key.as_str(), *audit_id, answer));
            }
            // Written before every other claim of the batch, by `claim_completed`.
            DeliveryUpdate::First { .. } => {}
            DeliveryUpdate::Release { key } => {
                sqlx::query("DELETE FROM deliveries WHERE key = $1 AND audit_id = $2")
                    .bind(key)
                    .bind(*audit_id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    completions.sort_unstable_by_key(|(key, audit_id, _)| (*key, *audit_id));
    completions.dedup_by_key(|(key, audit_id, _)| (*key, *audit_id));
    for chunk in statement_chunks(&completions) {
        let values = values(chunk.len(), 4, 1);
        let sql = format!(
            "INSERT INTO deliveries (key, audit_id, at_ms, summary) VALUES {values} ON CONFLICT(key) \
             DO UPDATE SET summary = excluded.summary WHERE deliveries.audit_id = excluded.audit_id"
        );
        let mut query = sqlx::query(&sql);
        for (key, audit_id, answer) in chunk {
            query = query
                .bind(*key)
                .bind(*audit_id)
                .bind(now)
                .bind(String::from_utf8_lossy(answer).into_owned());
        }
        query.execute(&mut **tx).await?;
    }
    claim_all(tx, claims, now, owner).await
}

/// Claims and completes at once each delivery of `firsts` (key, audit id, answer) whose key no one holds, in
/// key order; the audit ids that got their key (one per key, when a batch tries one key twice).
pub(super) async fn claim_completed(
    tx: &mut Tx<'_>,
    backend: Backend,
    firsts: &mut [(&str, &str, &Bytes)],
    owner: &str,
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    firsts.sort_unstable_by_key(|(key, _, _)| *key);
    let mut won = HashSet::with_capacity(firsts.len());
    for chunk in statement_chunks(firsts) {
        let sql = format!(
            "INSERT INTO deliveries (key, audit_id, at_ms, owner, summary) VALUES {} \
             ON CONFLICT(key) DO NOTHING RETURNING audit_id",
            row_values(backend, chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (key, audit_id, answer) in chunk {
            query = query
                .bind(*key)
                .bind(*audit_id)
                .bind(now)
                .bind(owner)
                .bind(String::from_utf8_lossy(answer).into_owned());
        }
        for row in query.fetch_all(&mut **tx).await? {
            won.insert(row.try_get("audit_id")?);
        }
    }
    Ok(won)
}

/// The claims of the batch: the first claim of each key tries to insert (or take over an expired row, or the
/// unsettled row of a dead process); the others learn who holds the key.
async fn claim_all(
    tx: &mut Tx<'_>,
    claims: &[ClaimTry<'_>],
    now: i64,
    owner: &str,
) -> Result<Vec<Claim>, sqlx::Error> {
    let mut first_of_key: HashMap<&str, &str> = HashMap::new();
    let mut tries: HashMap<i64, Vec<(&str, &str)>> = HashMap::new();
    for &(key, audit_id, expired_before_ms) in claims {
        if !first_of_key.contains_key(key) {
            first_of_key.insert(key, audit_id);
            tries
                .entry(expired_before_ms)
                .or_default()
                .push((key, audit_id));
        }
    }
    let won = try_claims(tx, &mut tries, now, owner).await?;
    let lost: Vec<&str> = first_of_key
        .keys()
        .copied()
        .filter(|key| !won.contains_key(*key))
        .collect();
    let holders = holders(tx, &lost).await?;
    let answer = |key: &str, audit_id: &str| -> Claim {
        let Some(previous) = won.get(key) else {
            return holders.get(key).cloned().unwrap_or(Claim::Existing {
                audit_id: String::new(),
                answer: None,
            });
        };
        match first_of_key.get(key) {
            Some(first) if *first == audit_id => Claim::New {
                previous: previous.clone(),
            },
            first => Claim::Existing {
                audit_id: first.map(|id| (*id).to_owned()).unwrap_or_default(),
                answer: None,
            },
        }
    };
    Ok(claims
        .iter()
        .map(|&(key, audit_id, _)| answer(key, audit_id))
        .collect())
}

/// Inserts (or takes over) the claims of `tries` (by the time before which an older claim expires), in key
/// order; the keys won, each with the dead attempt it took over.
async fn try_claims(
    tx: &mut Tx<'_>,
    tries: &mut HashMap<i64, Vec<(&str, &str)>>,
    now: i64,
    owner: &str,
) -> Result<HashMap<String, Option<String>>, sqlx::Error> {
    let alive_since = alive_since(now);
    let mut won: HashMap<String, Option<String>> = HashMap::new();
    for (expired_before_ms, rows) in tries {
        rows.sort_unstable_by_key(|(key, _)| *key);
        for chunk in statement_chunks(rows) {
            let params = chunk.len() * 4;
            let values = values(chunk.len(), 4, 1);
            let sql = format!(
                "INSERT INTO deliveries (key, audit_id, at_ms, owner) VALUES {values} ON CONFLICT(key) DO UPDATE \
                 SET previous = CASE WHEN deliveries.summary IS NULL THEN deliveries.audit_id END, \
                 audit_id = excluded.audit_id, at_ms = excluded.at_ms, owner = excluded.owner, summary = NULL \
                 WHERE deliveries.at_ms < ${} OR (deliveries.summary IS NULL AND {}) \
                 RETURNING key, previous",
                params + 1,
                holder_is_dead("deliveries", params + 2)
            );
            let mut query = sqlx::query(&sql);
            for (key, audit_id) in chunk.iter() {
                query = query.bind(*key).bind(*audit_id).bind(now).bind(owner);
            }
            let query = query.bind(*expired_before_ms).bind(alive_since);
            for row in query.fetch_all(&mut **tx).await? {
                won.insert(row.try_get("key")?, row.try_get("previous")?);
            }
        }
    }
    Ok(won)
}

/// Who holds each of the keys `lost`, and their answers once settled.
async fn holders(tx: &mut Tx<'_>, lost: &[&str]) -> Result<HashMap<String, Claim>, sqlx::Error> {
    let mut holders: HashMap<String, Claim> = HashMap::with_capacity(lost.len());
    for chunk in statement_chunks(lost) {
        let sql = format!(
            "SELECT key, audit_id, summary FROM deliveries WHERE key IN ({})",
            list(chunk.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let summary: Option<String> = row.try_get("summary")?;
            holders.insert(
                row.try_get("key")?,
                Claim::Existing {
                    audit_id: row.try_get("audit_id")?,
                    answer: summary.map(Into::into),
                },
            );
        }
    }
    Ok(holders)
}

/// Forgets the settled claims made before `before_ms` (pruning; unsettled ones are kept for their takeover).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM deliveries WHERE at_ms < $1 AND summary IS NOT NULL")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// A delivery claim whose process died before settling it, as `reflex audit list --stuck` shows it. The next
/// redelivery of the same message takes it over.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StuckClaim {
    /// The delivery key (`sns:<MessageId>:...`, `alertmanager:...`).
    pub key: String,
    /// The audit id of the attempt that claimed it.
    pub audit_id: String,
    /// When it was claimed.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    /// The process that held it (unset for claims from before leases).
    pub owner: Option<String>,
}

/// Who holds the claim of `key` now, and its answer once settled.
pub(super) async fn holder_of(
    readers: &AnyPool,
    key: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT audit_id, summary FROM deliveries WHERE key = $1")
        .bind(key)
        .fetch_optional(readers)
        .await
}

/// Delivery claims left unsettled by processes that are dead.
pub(super) async fn stuck(
    readers: &AnyPool,
    backend: Backend,
) -> Result<Vec<StuckClaim>, sqlx::Error> {
    let now = backend.now_ms(readers).await?;
    let sql = format!(
        "SELECT key, audit_id, at_ms, owner FROM deliveries WHERE summary IS NULL AND {} ORDER BY at_ms",
        holder_is_dead("deliveries", 1)
    );
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(&sql)
        .bind(alive_since(now))
        .fetch_all(readers)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, audit_id, at_ms, owner)| StuckClaim {
            key,
            audit_id,
            claimed_at: from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            owner,
        })
        .collect())
}
