//! The audit trail: every request, accepted or rejected, written durably before it is answered. It is also
//! the source of truth for cooldowns and for deduplicating deliveries.
//!
//! `record` is what one row says; `rows` maps it to and from the database; `writer` batches writes into group
//! commits; `store` is the API the rest of reflex uses; `deliveries` is the claim-or-replay primitive;
//! `chain` hashes and checks the tamper-evident chain of entries, `entries` keeps it in the database;
//! `backend` is what differs between SQLite and PostgreSQL; the schema lives in `migrations/<backend>/`.

mod backend;
mod brakes;
mod chain;
mod claims;
mod completed;
mod decisions;
mod deliveries;
mod entries;
mod leases;
mod processes;
mod record;
mod rows;
mod store;
mod writer;

pub use backend::{Backend, redacted};
pub use brakes::{BreakerState, OpenBreaker, RecoveryCheck};
pub use chain::{Break, Entry};
pub use deliveries::{Delivery, DeliveryKey, DeliveryUpdate};
pub use entries::Verified;
pub use leases::Lease;
pub use processes::{DEAD_AFTER, HEARTBEAT_EVERY};
pub use record::{AuditRecord, Auth, Outcome, RequestMeta, Source, next_id};
pub use rows::StoredRow;
pub use store::{AuditStore, Brakes, Filter, Pause, StuckClaim};
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
