//! The delivery rows of one batch, written with a few multi-row statements instead of one per request (each
//! statement is a round trip to the database): completions, then releases, then claims. A claim whose key
//! another claim of the same batch already tries is answered from that one. Rows are written in key order, so
//! two PostgreSQL writers locking several keys each take them in the same order.

use std::collections::HashMap;

use sqlx::Row as _;

use super::backend::{list, values};
use super::deliveries::{Claim, DeliveryUpdate};
use super::processes::{alive_since, holder_is_dead};

/// Rows per multi-row statement (4 bound values each, well under either database's limit).
const CHUNK: usize = 256;

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
    for chunk in completions.chunks(CHUNK) {
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

/// The claims of the batch: the first claim of each key tries to insert (or take over an expired row, or the
/// unsettled row of a dead process); the others learn who holds the key.
async fn claim_all(
    tx: &mut Tx<'_>,
    claims: &[ClaimTry<'_>],
    now: i64,
    owner: &str,
) -> Result<Vec<Claim>, sqlx::Error> {
    let alive_since = alive_since(now);
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
    let mut won: HashMap<String, Option<String>> = HashMap::new();
    for (expired_before_ms, rows) in &mut tries {
        rows.sort_unstable_by_key(|(key, _)| *key);
        for chunk in rows.chunks(CHUNK) {
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
            for (key, audit_id) in chunk {
                query = query.bind(*key).bind(*audit_id).bind(now).bind(owner);
            }
            let query = query.bind(*expired_before_ms).bind(alive_since);
            for row in query.fetch_all(&mut **tx).await? {
                won.insert(row.try_get("key")?, row.try_get("previous")?);
            }
        }
    }
    let lost: Vec<&str> = first_of_key
        .keys()
        .copied()
        .filter(|key| !won.contains_key(*key))
        .collect();
    let mut holders: HashMap<String, Claim> = HashMap::with_capacity(lost.len());
    for chunk in lost.chunks(CHUNK) {
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

/// Forgets the settled claims made before `before_ms` (pruning; unsettled ones are kept for their takeover).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM deliveries WHERE at_ms < $1 AND summary IS NOT NULL")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
