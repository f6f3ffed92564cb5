//! The planner: a pure function from a health snapshot, the safety policy and the clock to the actions to take.
//! Every safety rule of reflex lives here, so that it can be tested exhaustively without AWS.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::snapshot::{HealthState, InstanceView, Snapshot};
use crate::config::RemediationConfig;

/// The safety limits the planner enforces (the `[remediation]` config section).
#[derive(Debug, Clone)]
pub struct Policy {
    /// At most this many instances acted on per run.
    pub max_terminations_per_run: usize,
    /// Refuse when the fraction of instances not InService exceeds this.
    pub max_unhealthy_fraction: f64,
    /// Refuse when fewer than this many instances are InService (at least 1 always applies).
    pub min_in_service: usize,
    /// Never touch instances younger than this.
    pub grace_period: Duration,
    /// Refuse when the balancer was acted on less than this long ago.
    pub cooldown: Duration,
    /// Never touch instances with a tag of this key.
    pub protect_tag: String,
}

impl From<&RemediationConfig> for Policy {
    fn from(config: &RemediationConfig) -> Self {
        Self {
            max_terminations_per_run: config.max_terminations_per_run,
            max_unhealthy_fraction: config.max_unhealthy_fraction,
            min_in_service: config.min_in_service,
            grace_period: Duration::from_secs(config.grace_period_secs),
            cooldown: Duration::from_secs(config.cooldown_secs),
            protect_tag: config.protect_tag.clone(),
        }
    }
}

/// What the planner knows besides the snapshot: the time, and when this balancer was last acted on.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The moment the plan is made for.
    pub now: OffsetDateTime,
    /// When instances of this balancer were last terminated (from the audit trail).
    pub last_action_at: Option<OffsetDateTime>,
}

/// Why an unhealthy instance is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The balancer reports `Unknown`.
    UnknownState,
    /// The instance is still being registered (ReasonCode `ELB` or a "registration in progress" description).
    RegistrationInProgress,
    /// EC2 does not know the instance.
    InstanceNotFound,
    /// EC2 already shuts it down or has terminated it.
    AlreadyTerminating,
    /// EC2 reports pending or stopping: wait until it settles.
    StateInTransition,
    /// Launched less than the grace period ago, or its launch time is unknown.
    GracePeriod,
    /// Carries the protect tag.
    Protected,
    /// More candidates than `max_terminations_per_run`.
    CapReached,
}

impl SkipReason {
    /// The reason as reported in summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownState => "unknown-state",
            Self::RegistrationInProgress => "registration-in-progress",
            Self::InstanceNotFound => "instance-not-found",
            Self::AlreadyTerminating => "already-terminating",
            Self::StateInTransition => "state-in-transition",
            Self::GracePeriod => "grace-period",
            Self::Protected => "protected",
            Self::CapReached => "cap-reached",
        }
    }
}

/// Why the whole run was refused: no writes at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Refusal {
    /// Too large a share of the balancer is not InService: the cause is systemic.
    TooManyUnhealthy {
        /// OutOfService instances.
        unhealthy: usize,
        /// Registered instances.
        total: usize,
        /// The configured limit.
        max_fraction: f64,
    },
    /// Too few instances are InService to risk changing anything.
    BelowMinInService {
        /// InService instances.
        in_service: usize,
        /// The configured floor.
        min_in_service: usize,
    },
    /// The balancer was acted on too recently.
    Cooldown {
        /// Seconds until the cooldown ends.
        remaining_secs: u64,
    },
}

impl Refusal {
    /// The sentence reported in the summary's `refused` field.
    pub fn sentence(&self) -> String {
        match self {
            Self::TooManyUnhealthy {
                unhealthy,
                total,
                max_fraction,
            } => format!(
                "{unhealthy} of {total} instances are not InService, more than max_unhealthy_fraction {max_fraction}: \
                 the cause looks systemic, nothing was terminated"
            ),
            Self::BelowMinInService {
                in_service,
                min_in_service,
            } => format!(
                "only {in_service} instances are InService, fewer than min_in_service {min_in_service}: \
                 nothing was terminated"
            ),
            Self::Cooldown { remaining_secs } => format!(
                "this load balancer was remediated recently; cooldown ends in {remaining_secs} s: nothing was terminated"
            ),
        }
    }
}

/// An instance left alone, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// The instance.
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    /// Why.
    pub reason: SkipReason,
}

/// The planner's decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every registered instance.
    pub registered: Vec<String>,
    /// Every instance not InService (OutOfService or Unknown).
    pub unhealthy: Vec<String>,
    /// Instances to terminate, at most the per-run cap; empty when refused.
    pub act_on: Vec<String>,
    /// Unhealthy instances left alone, with reasons.
    pub skipped: Vec<Skip>,
    /// Set when a safety rule stops the whole run.
    pub refused: Option<Refusal>,
}

/// Decides which instances to terminate. Pure: the same inputs always give the same plan.
pub fn plan(snapshot: &Snapshot, policy: &Policy, clock: Clock) -> Plan {
    let registered: Vec<String> = snapshot
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    let unhealthy: Vec<&InstanceView> = snapshot
        .instances
        .iter()
        .filter(|i| i.health.state != HealthState::InService)
        .collect();
    let in_service = snapshot
        .instances
        .iter()
        .filter(|i| i.health.state == HealthState::InService)
        .count();
    let mut plan = Plan {
        registered,
        unhealthy: unhealthy.iter().map(|i| i.instance_id.clone()).collect(),
        ..Plan::default()
    };
    if unhealthy.is_empty() {
        return plan;
    }
    plan.refused = refusal(
        unhealthy.len(),
        snapshot.instances.len(),
        in_service,
        policy,
        clock,
    );
    if plan.refused.is_some() {
        return plan;
    }
    let mut candidates: Vec<&InstanceView> = Vec::new();
    for instance in unhealthy {
        match skip_reason(instance, policy, clock.now) {
            Some(reason) => plan.skipped.push(Skip {
                instance_id: instance.instance_id.clone(),
                reason,
            }),
            None => candidates.push(instance),
        }
    }
    candidates.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    for (index, instance) in candidates.into_iter().enumerate() {
        if index < policy.max_terminations_per_run {
            plan.act_on.push(instance.instance_id.clone());
        } else {
            plan.skipped.push(Skip {
                instance_id: instance.instance_id.clone(),
                reason: SkipReason::CapReached,
            });
        }
    }
    plan
}

fn refusal(
    unhealthy: usize,
    total: usize,
    in_service: usize,
    policy: &Policy,
    clock: Clock,
) -> Option<Refusal> {
    if unhealthy as f64 > policy.max_unhealthy_fraction * total as f64 {
        return Some(Refusal::TooManyUnhealthy {
            unhealthy,
            total,
            max_fraction: policy.max_unhealthy_fraction,
        });
    }
    if in_service < policy.min_in_service.max(1) {
        return Some(Refusal::BelowMinInService {
            in_service,
            min_in_service: policy.min_in_service,
        });
    }
    let last = clock.last_action_at?;
    let elapsed = clock.now - last;
    let cooldown = time::Duration::try_from(policy.cooldown).unwrap_or(time::Duration::MAX);
    (elapsed < cooldown).then(|| Refusal::Cooldown {
        remaining_secs: (cooldown - elapsed).whole_seconds().max(1).unsigned_abs(),
    })
}

fn skip_reason(
    instance: &InstanceView,
    policy: &Policy,
    now: OffsetDateTime,
) -> Option<SkipReason> {
    if instance.health.state == HealthState::Unknown {
        return Some(SkipReason::UnknownState);
    }
    if registration_in_progress(instance) {
        return Some(SkipReason::RegistrationInProgress);
    }
    let Some(ec2) = &instance.ec2 else {
        return Some(SkipReason::InstanceNotFound);
    };
    match ec2.state.as_str() {
        "running" | "stopped" => {}
        "shutting-down" | "terminated" => return Some(SkipReason::AlreadyTerminating),
        _ => return Some(SkipReason::StateInTransition),
    }
    if ec2.tags.iter().any(|(key, _)| *key == policy.protect_tag) {
        return Some(SkipReason::Protected);
    }
    let grace = time::Duration::try_from(policy.grace_period).unwrap_or(time::Duration::MAX);
    match ec2.launch_time {
        Some(launched) if now - launched >= grace => None,
        _ => Some(SkipReason::GracePeriod),
    }
}

/// Classic ELB reports a fresh registration as OutOfService with ReasonCode `ELB`
/// and "Instance registration is still in progress."
fn registration_in_progress(instance: &InstanceView) -> bool {
    instance.health.reason_code.as_deref() == Some("ELB")
        || instance.health.description.as_deref().is_some_and(|d| {
            let d = d.to_ascii_lowercase();
            d.contains("registration") && d.contains("in progress")
        })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
