//! The `target_leases` table: a run about to act holds its target's lease, so that one run at a time acts on
//! a target across every process sharing the store, and the budget lease, so that runs of different targets
//! count the global budgets one after the other. A run's final record gives its leases back in the same
//! commit; a dead holder's lease is taken over.

use std::time::Duration;

use super::AuditRecord;
use super::backend::list;
use super::keys::Key;
use super::processes::{alive_since, holder_is_dead};
use crate::target::TargetId;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A hard bound on a lease: even a live process that holds one this long (a run hung far beyond every AWS
/// timeout) gives it up. A dead holder's lease is taken over as soon as its heartbeat is `DEAD_AFTER` old.
const LEASE_FOR: Duration = Duration::from_secs(600);

/// What a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease<'a> {
    /// Acting on this target.
    Target(&'a TargetId),
    /// Counting the budgets over all targets (the row of every target).
    Budget,
}

/// How a lease request came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leased {
    /// Taken at the first try: no other run held it.
    AtOnce,
    /// Taken after waiting for another run to give it back (or to be found dead).
    AfterWaiting,
    /// Still held by another run when the wait ran out.
    Busy,
}

impl Lease<'_> {
    /// The lease's key in the table.
    pub(super) fn key(self) -> Key {
        match self {
            Self::Target(id) => Key::from(id),
            Self::Budget => Key::every_target(),
        }
    }
}

/// Takes the lease `key` for the run `audit_id` of the process `owner` when it is free, expired, held by a
/// dead process, or already this process's (runs of one process are serialised before they get here);
/// whether it is held now.
pub(super) async fn take(
    tx: &mut Tx<'_>,
    key: &Key,
    audit_id: &str,
    owner: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let expires = now.saturating_add(i64::try_from(LEASE_FOR.as_millis()).unwrap_or(i64::MAX));
    let sql = format!(
        "INSERT INTO target_leases (target, owner, audit_id, expires_ms, account, region) \
         VALUES ($1, $2, $3, $4, $7, $8) \
         ON CONFLICT(account, region, target) DO UPDATE SET owner = excluded.owner, \
         audit_id = excluded.audit_id, expires_ms = excluded.expires_ms \
         WHERE target_leases.expires_ms < $5 OR target_leases.owner = excluded.owner OR {} \
         RETURNING target",
        holder_is_dead("target_leases", 6)
    );
    let taken = sqlx::query(&sql)
        .bind(key.target.as_str())
        .bind(owner)
        .bind(audit_id)
        .bind(expires)
        .bind(now)
        .bind(alive_since(now))
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(taken.is_some())
}

/// Gives back the leases of the runs whose final records are in `records`, in the same commit.
pub(super) async fn release_finished(
    tx: &mut Tx<'_>,
    records: &[&AuditRecord],
) -> Result<(), sqlx::Error> {
    let finished: Vec<&str> = records
        .iter()
        .filter(|record| record.ends_a_run())
        .map(|record| record.id.as_str())
        .collect();
    for chunk in finished.chunks(256) {
        let sql = format!(
            "DELETE FROM target_leases WHERE audit_id IN ({})",
            list(chunk.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Gives back every lease the process `owner` holds (a clean stop).
pub(super) async fn release_held_by(tx: &mut Tx<'_>, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM target_leases WHERE owner = $1")
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
