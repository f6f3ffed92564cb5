//! The audit trail: every request, accepted or rejected, written durably before it is answered.
//! It is also the source of truth for cooldowns.

mod record;
mod sqlite;

pub use record::{AuditRecord, Outcome, RequestMeta, Source};
pub use sqlite::{AuditStore, WriterTask};

/// Why the audit trail could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database refused or failed.
    #[error("audit store: {0}")]
    Database(#[from] sqlx::Error),
    /// The store's writer has stopped (shutting down).
    #[error("audit store writer has stopped")]
    WriterGone,
    /// A batch commit failed; every request in it is told.
    #[error("audit store commit failed: {0}")]
    Commit(String),
}
