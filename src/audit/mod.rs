//! The audit trail: every request, accepted or rejected, written durably before it is answered. It is also
//! the source of truth for cooldowns and for deduplicating deliveries.
//!
//! One home per table: `record` is what one row says and `rows` maps it to and from the database; `chain`
//! hashes and checks the tamper-evident chain of entries, `entries` keeps it (`audit_entries`, `audit_chain`);
//! `deliveries` is the claim-or-replay primitive and `claims` its table's SQL; `decisions`, `leases`,
//! `pauses`, `silences`, `approvals`, `episodes` (and `replacements`, the relapse memory), `breakers`, `jobs`, `processes` (liveness) and `readiness` each own their table. `writer`
//! only orders a batch's operations through those modules and commits it (group commit); `store` is the API
//! the rest of reflex uses; `backend` is what differs between SQLite and PostgreSQL; the schema lives in
//! `migrations/<backend>/`.

mod anchor;
mod approvals;
mod backend;
mod brakes;
mod breakers;
mod chain;
mod checks;
mod claims;
mod completed;
mod decisions;
mod deliveries;
mod entries;
mod episodes;
mod held;
mod home;
mod jobs;
mod keys;
mod leases;
mod link;
mod ops;
mod pauses;
mod processes;
mod readiness;
mod record;
mod records;
mod replacements;
mod rows;
mod silences;
mod store;
mod times;
mod ui_sessions;
mod writer;

pub use anchor::{Anchor, Checked as AnchorsChecked, Mismatch};
pub use approvals::{
    ACT_JOB as APPROVAL_ACT_JOB, Approval, ApprovalState, ApprovalWrite, Approver,
    EXPIRE_JOB as APPROVAL_EXPIRE_JOB, NewApproval, Vote,
};
pub use backend::{Backend, PAGE_READERS, redacted};
pub use brakes::{Brakes, InstanceBrake};
pub use breakers::{BreakerState, OpenBreaker};
pub use chain::{Break, Entry};
pub use claims::StuckClaim;
pub use decisions::READ_MAX as DECISIONS_READ_MAX;
pub use deliveries::{Delivery, DeliveryKey, DeliveryUpdate, Replay};
pub use entries::Verified;
pub use episodes::{EpisodeStep, EpisodeWrite};
pub use home::Home;
pub use jobs::{ClaimedJob, NewJob, QUEUE_BOUND};
pub use keys::INSTANCE_PREFIX;
pub use leases::{Lease, Leased};
pub use pauses::{Pause, Scope};
pub use processes::{DEAD_AFTER, HEARTBEAT_EVERY};
pub use record::{AuditRecord, Auth, Outcome, RequestMeta, Source, next_id};
pub use records::{Activity, Filter, HealthPoint, LastAction, SharedClock, Tally};
pub use replacements::{Joined, Replacement};
pub use rows::StoredRow;
pub use silences::{END_JOB as SILENCE_END_JOB, Silence};
pub use store::AuditStore;
pub use times::{millis, rfc3339};
pub use writer::WriterTask;

/// Why the audit trail could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database refused or failed.
    #[error("audit store: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("audit store migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The store's writer has stopped (shutting down).
    #[error("audit store writer has stopped")]
    WriterGone,
    /// A batch commit failed; every request in it is told.
    #[error("audit store commit failed: {0}")]
    Commit(String),
}

#[cfg(test)]
mod tests;
