//! Why an instance is left alone, as the answer's `skipped` list and the metrics name it.

use serde::Serialize;

/// Why an unhealthy instance is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The balancer reports a state or reason reflex does not know.
    UnknownState,
    /// The instance is still being registered or in its first health checks.
    RegistrationInProgress,
    /// The target is being deregistered.
    Draining,
    /// The target is registered but not serving (zone not enabled, not registered).
    NotInUse,
    /// Health checks are disabled for the target group: no verdict.
    HealthCheckDisabled,
    /// The balancer failed to check the target (an `Elb.*` reason).
    BalancerError,
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
    /// `action = "asg-unhealthy"`, and the instance belongs to no Auto Scaling group.
    NotInAutoScalingGroup,
    /// More candidates than `max_terminations_per_run`.
    CapReached,
    /// The hourly or daily budget of instances acted on is used up (per target or over all targets).
    Budget,
    /// The target's speed limit (`max_removed_fraction_per_hour` of its instances in any hour) is reached.
    SpeedLimit,
    /// Approved, but no longer broken when the approval came (InService again, or gone).
    NoLongerBroken,
    /// Broken now, but not in the decision the approvers approved.
    NotApproved,
    /// Broken now, but not one of the instances whose earlier step this ladder step follows (its own alert
    /// starts its own episode).
    NotInEpisode,
    /// A parameter of the step's call, rendered for the instance, is refused by its pattern (or cannot be
    /// rendered): nothing is sent.
    BadParameter,
    /// The step's `[[actions]]` entry acted on the instance less than its `cooldown_secs` ago.
    ActionCooldown,
    /// The instance itself is paused (`reflex pause --instance`): no run acts on it until it is resumed.
    Paused,
    /// The instance itself is silenced (`reflex silence --instance`) until its silence ends or is lifted.
    Silenced,
}

impl SkipReason {
    /// The reason as reported in summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownState => "unknown-state",
            Self::RegistrationInProgress => "registration-in-progress",
            Self::Draining => "draining",
            Self::NotInUse => "not-in-use",
            Self::HealthCheckDisabled => "health-check-disabled",
            Self::BalancerError => "balancer-error",
            Self::InstanceNotFound => "instance-not-found",
            Self::AlreadyTerminating => "already-terminating",
            Self::StateInTransition => "state-in-transition",
            Self::GracePeriod => "grace-period",
            Self::Protected => "protected",
            Self::NotInAutoScalingGroup => "not-in-auto-scaling-group",
            Self::CapReached => "cap-reached",
            Self::Budget => "budget",
            Self::SpeedLimit => "speed-limit",
            Self::NoLongerBroken => "no-longer-broken",
            Self::NotApproved => "not-approved",
            Self::NotInEpisode => "not-in-episode",
            Self::BadParameter => "bad-parameter",
            Self::ActionCooldown => "action-cooldown",
            Self::Paused => "paused",
            Self::Silenced => "silenced",
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
