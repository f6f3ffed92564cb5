//! The engine's port to a fleet: what it needs to check a target exists, read its health and replace one
//! instance, with its own error type saying what a failure means for the caller. `aws/` implements it over the
//! SDK; tests implement it with a fake. The engine never names an SDK type.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub use super::snapshot::{Ec2Facts, Health, HealthState, InstanceView, Snapshot};
pub use super::trigger::Resources;
pub use crate::target::TargetRef;

tokio::task_local! {
    /// The audit id of the run a fleet call is made for, when there is one: credentials assumed for the call
    /// are named after it (the STS session name), so that the member account's CloudTrail leads back to the
    /// record.
    pub static RUN_ID: String;
}

/// The audit id of the run this task works for, if any.
pub fn current_run() -> Option<String> {
    RUN_ID.try_with(Clone::clone).ok()
}

/// A boxed future, so that the port can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fleet behind classic load balancers and target groups: reads health, replaces instances.
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Looks up a target group by name or ARN (once, at start-up).
    fn target_group<'a>(
        &'a self,
        name_or_arn: &'a str,
    ) -> BoxFuture<'a, Result<TargetGroupInfo, FleetError>>;

    /// The health of every instance registered on `target` (a load balancer's name or a target group's
    /// ARN), with each instance's EC2 facts.
    fn snapshot<'a>(&'a self, target: &'a TargetRef)
    -> BoxFuture<'a, Result<Snapshot, FleetError>>;

    /// EC2's facts of the instances `resources` names, for a rule's run: by id (an id EC2 does not know is
    /// absent), or by tag (the running ones).
    fn instances<'a>(
        &'a self,
        resources: &'a Resources,
    ) -> BoxFuture<'a, Result<HashMap<String, Ec2Facts>, FleetError>>;

    /// The state of the CloudWatch alarm `name` (DescribeAlarms), for a rule verified by its alarm; `None`
    /// when no such alarm exists.
    fn alarm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<AlarmState>, FleetError>>;

    /// The Auto Scaling group of each of `instance_ids` that belongs to one (absent: in no group).
    fn auto_scaling_groups<'a>(
        &'a self,
        instance_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, FleetError>>;

    /// What each of `groups` (Auto Scaling group names) shows of a change under way: instances entering or
    /// leaving service, processes suspended, scaling activities in progress.
    fn group_changes<'a>(
        &'a self,
        groups: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<GroupChange>, FleetError>>;

    /// Replaces one instance (TerminateInstances); returns the state it is moving to.
    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>>;

    /// Reboots one running instance (RebootInstances); returns its state (AWS answers a reboot with nothing,
    /// so `rebooting`).
    fn reboot<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>>;

    /// Starts one stopped instance (StartInstances), which AWS refuses to reboot; returns the state it is
    /// moving to.
    fn start<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>>;

    /// Hands one instance to its Auto Scaling group for replacement (SetInstanceHealth Unhealthy, respecting
    /// the group's grace period); returns the health status set.
    fn mark_unhealthy<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, FleetError>>;

    /// The SDK clients behind the fleet, for an action kind that makes calls of its own (`aws::clients_of`
    /// reads them; the engine never does); none for a fleet that is not AWS's.
    fn clients(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        None
    }
}

/// A CloudWatch alarm's state, as a rule's check reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlarmState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub value: String,
    /// When it last changed state (Unix seconds).
    pub updated_at: i64,
}

/// What one Auto Scaling group shows of a change under way; nothing in it (but `refreshes_unread`): no change
/// seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupChange {
    /// The group's name.
    pub group: String,
    /// Its instances in a lifecycle state of a change (`Pending`, `Terminating`, `Standby`, `Detaching`, and
    /// their `:Wait`/`:Proceed` steps), with the state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<(String, String)>,
    /// Its suspended processes among those that replace instances (`Launch`, `Terminate`, `HealthCheck`,
    /// `ReplaceUnhealthy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<String>,
    /// Its scaling activities in progress (their descriptions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<String>,
    /// Its instance refreshes not yet over (status and progress).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refreshes: Vec<String>,
    /// Why its instance refreshes could not be read, when a read failed for a moment (not a change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshes_unread: Option<String>,
}

/// The processes whose suspension means a person is holding the group's replacements back.
pub const REPLACING_PROCESSES: [&str; 4] =
    ["Launch", "Terminate", "HealthCheck", "ReplaceUnhealthy"];

/// Whether an Auto Scaling lifecycle state is part of a change (an instance entering, leaving or out of
/// service on purpose).
pub fn is_changing_state(state: &str) -> bool {
    [
        "Pending",
        "Terminating",
        "Standby",
        "EnteringStandby",
        "Detaching",
        "Detached",
    ]
    .iter()
    .any(|prefix| state == *prefix || state.starts_with(&format!("{prefix}:")))
        || state.starts_with("Warmed:Pending")
        || state.starts_with("Warmed:Terminating")
}

impl GroupChange {
    /// Whether anything of a change was seen.
    pub fn is_changing(&self) -> bool {
        !(self.instances.is_empty()
            && self.suspended.is_empty()
            && self.activities.is_empty()
            && self.refreshes.is_empty())
    }

    /// What was seen, in words.
    pub fn seen(&self) -> String {
        let mut parts = Vec::new();
        if !self.instances.is_empty() {
            let states: Vec<String> = self
                .instances
                .iter()
                .map(|(id, state)| format!("{id} {state}"))
                .collect();
            parts.push(format!("instances {}", states.join(", ")));
        }
        if !self.suspended.is_empty() {
            parts.push(format!("suspended {}", self.suspended.join(", ")));
        }
        if !self.activities.is_empty() {
            parts.push(format!(
                "{} scaling activit{} in progress",
                self.activities.len(),
                if self.activities.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ));
        }
        parts.extend(self.refreshes.iter().cloned());
        parts.join("; ")
    }
}

/// What start-up needs to know of a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    /// Its ARN, which every later call uses.
    pub arn: String,
    /// `instance`, `ip`, `lambda` or `alb`: reflex heals only `instance` target groups.
    pub target_type: String,
    /// The load balancers that route to it, as CloudWatch names them (`app/NAME/ID`, `net/NAME/ID`).
    pub load_balancers: Vec<String>,
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
    /// The action kind's own precondition refused the act before any write (a group at its maximum, a
    /// service rolling out, a database not available): not an AWS error, so the breaker does not count it.
    Refused,
}

impl FailureKind {
    /// The kind as a metric label and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::NotFound => "not-found",
            Self::Refused => "refused",
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
    /// The `[[accounts]]` name whose role could not be assumed, when that is what failed.
    pub account: Option<String>,
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
            account: None,
        }
    }
}
