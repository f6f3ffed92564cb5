//! The engine's port to a fleet: what it needs to read a target's health and to replace one instance, with
//! its own error type saying what a failure means for the caller. `aws/` implements it over the SDK; tests
//! implement it with a fake. The engine never names an SDK type.

use std::future::Future;
use std::pin::Pin;

pub use super::snapshot::{Ec2Facts, Health, HealthState, InstanceView, Snapshot};

/// A boxed future, so that the port can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fleet behind one kind of load balancer: reads its health, replaces an instance.
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// The health of every instance registered on `target`, with each instance's EC2 facts.
    fn snapshot<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Snapshot, FleetError>>;

    /// Replaces one instance (TerminateInstances); returns the state it is moving to.
    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>>;
}

/// What a failed fleet call means for whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network fault, timeout, throttling, a 5xx from AWS: retrying later may succeed.
    Transient,
    /// Permissions or validation (AccessDenied, UnauthorizedOperation, ...): retrying will not help until an
    /// operator changes something.
    Permanent,
    /// The target does not exist in this account and region.
    NotFound,
}

impl FailureKind {
    /// The kind as a metric label and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::NotFound => "not-found",
        }
    }
}

/// A failed fleet call, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed ({}{}): {detail}", kind.as_str(), code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct FleetError {
    /// What the failure means for the caller.
    pub kind: FailureKind,
    /// The operation, e.g. `DescribeInstanceHealth`.
    pub operation: &'static str,
    /// The service's error code (e.g. `AccessDenied`), or `HTTP <status>` when its answer had none.
    pub code: Option<String>,
    /// A description for logs and the audit trail.
    pub detail: String,
}

impl FleetError {
    /// A failure of `operation` of this kind.
    pub fn new(
        kind: FailureKind,
        operation: &'static str,
        code: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            code,
            detail: detail.into(),
        }
    }
}
