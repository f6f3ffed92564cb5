//! The audit trail: every request, accepted or rejected, written durably before it is answered.
//! It is also the source of truth for cooldowns.

mod completed;
mod record;
mod sqlite;

pub use record::{AuditRecord, Outcome, RequestMeta, Source, next_id};
pub use sqlite::{AuditStore, WriterTask};

/// The answer to claiming a delivery key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request owns the delivery: handle it.
    New,
    /// An earlier request owns it; its summary once it has answered.
    Existing {
        /// The first request's audit id.
        audit_id: String,
        /// The first request's answer, `None` while it is still being handled.
        summary: Option<serde_json::Value>,
    },
}

/// How a claimed delivery is settled together with its request's final record.
#[derive(Debug, Clone)]
pub enum DeliveryUpdate {
    /// Keep the answer, for redeliveries to return.
    Complete {
        /// The delivery key.
        key: String,
        /// The answer given.
        summary: serde_json::Value,
    },
    /// Forget the claim (the request failed), so a retry is handled afresh.
    Release {
        /// The delivery key.
        key: String,
    },
}

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
