//! The planner: a pure function from a health snapshot, the safety policy and the clock to the actions to take.
//! Every safety rule of reflex lives here, so that it can be tested exhaustively without AWS.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use std::sync::Arc;

use super::action::Action as ActionKind;
use super::snapshot::{HealthState, InstanceView, Snapshot};
use crate::config::{Action, RemediationConfig};

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
    /// How the `replace` kind replaces an instance (needs `InstanceView::auto_scaling_group` filled unless
    /// `Terminate`).
    pub action: Action,
    /// The action kind of the step of the target's ladder this run takes.
    pub step: Arc<dyn ActionKind>,
}

impl Policy {
    /// The `[remediation]` limits, for a run that takes `step`.
    pub fn new(config: &RemediationConfig, step: Arc<dyn ActionKind>) -> Self {
        Self {
            max_terminations_per_run: config.max_terminations_per_run,
            max_unhealthy_fraction: config.max_unhealthy_fraction,
            min_in_service: config.min_in_service,
            grace_period: Duration::from_secs(config.grace_period_secs),
            cooldown: Duration::from_secs(config.cooldown_secs),
            protect_tag: config.protect_tag.clone(),
            action: config.action,
            step,
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
    /// An operator paused reflex for this target (or for every target): the kill switch.
    Paused {
        /// What the operator said when pausing.
        reason: String,
    },
    /// The target's breaker is open (a budget was exhausted, runs kept hitting AWS errors, or a recovery check
    /// failed) until an operator resets it.
    BreakerOpen {
        /// Why it opened.
        reason: String,
    },
    /// An operator silenced this target (or every target) until a time: a pause with an end.
    Silenced {
        /// What the operator said.
        reason: String,
        /// Who set it.
        by: String,
        /// When it ends (RFC 3339).
        until: String,
    },
    /// The alert came inside a configured maintenance window of this target.
    MaintenanceWindow {
        /// The window's name.
        window: String,
        /// When this occurrence of it ends (RFC 3339).
        until: String,
    },
    /// The target's Auto Scaling group is changing (a deploy, an instance refresh, a scaling event) or has the
    /// processes that replace instances suspended: what looks broken may be the change.
    ChangeInProgress {
        /// The Auto Scaling group.
        group: String,
        /// What was seen.
        seen: String,
    },
    /// Whether a change is under way could not be read: reflex refuses rather than guess.
    ChangeUnknown {
        /// The Auto Scaling groups asked about (empty: their membership could not be read).
        group: String,
        /// What failed.
        error: String,
    },
    /// Instances that replaced broken ones keep breaking: the cause is not the instances (an image, a config,
    /// a dependency), and replacing more would not help.
    Relapsing {
        /// Relapses in the window, this run's included.
        relapses: usize,
        /// The window (`remediation.relapse_window_secs`).
        window_secs: u64,
        /// The instances, what they replaced, their image and launch template, and the runs.
        instances: String,
    },
    /// Every instance of one Availability Zone is unhealthy while other zones are healthy: a zone is failing,
    /// and replacing its instances in the same zone removes capacity without helping.
    ZonalFailure {
        /// The failing zone.
        zone: String,
        /// Its instances, all unhealthy.
        unhealthy: usize,
        /// Healthy instances in the other zones.
        healthy_elsewhere: usize,
    },
}

/// The rules of standing refusals, by name: states the operator already knows of (a cooldown, a pause, a
/// silence, an open breaker, a maintenance window, a deploy under way), answered to every alert while they
/// last, rather than news about the target.
pub const STANDING_RULES: [&str; 6] = [
    "cooldown",
    "paused",
    "breaker-open",
    "silenced",
    "maintenance-window",
    "change-in-progress",
];

impl Refusal {
    /// The rule's name, as in the summary's `refused-rule` and in metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::TooManyUnhealthy { .. } => "too-many-unhealthy",
            Self::BelowMinInService { .. } => "below-min-in-service",
            Self::Cooldown { .. } => "cooldown",
            Self::Paused { .. } => "paused",
            Self::BreakerOpen { .. } => "breaker-open",
            Self::Silenced { .. } => "silenced",
            Self::MaintenanceWindow { .. } => "maintenance-window",
            Self::ChangeInProgress { .. } => "change-in-progress",
            Self::ChangeUnknown { .. } => "change-unknown",
            Self::ZonalFailure { .. } => "zonal-failure",
            Self::Relapsing { .. } => "relapsing",
        }
    }

    /// The sentence reported in the summary's `refused` field.
    pub fn sentence(&self) -> String {
        match self {
            Self::TooManyUnhealthy {
                unhealthy,
                total,
                max_fraction,
            } => format!(
                "{unhealthy} of {total} instances are not InService, more than max_unhealthy_fraction {max_fraction}: \
                 the cause looks systemic, nothing was replaced"
            ),
            Self::BelowMinInService {
                in_service,
                min_in_service,
            } => format!(
                "only {in_service} instances are InService, fewer than min_in_service {min_in_service}: \
                 nothing was replaced"
            ),
            Self::Cooldown { remaining_secs } => format!(
                "this target was remediated recently; cooldown ends in {remaining_secs} s: nothing was replaced"
            ),
            Self::Paused { reason } => format!(
                "paused: reflex is paused for this target ({reason}); nothing was read or replaced until \
                 `reflex resume`"
            ),
            Self::BreakerOpen { reason } => format!(
                "breaker-open: this target's breaker is open ({reason}); nothing was read or replaced until \
                 `reflex breaker reset`"
            ),
            Self::Silenced { reason, by, until } => format!(
                "silenced: reflex is silenced for this target until {until} by {by} ({reason}); nothing was read \
                 or replaced"
            ),
            Self::MaintenanceWindow { window, until } => format!(
                "maintenance-window: the alert came inside maintenance window {window:?}, which ends {until}; \
                 nothing was read or replaced"
            ),
            Self::ChangeInProgress { group, seen } => format!(
                "change-in-progress: Auto Scaling group {group} is changing ({seen}); what looks broken may be \
                 the change: nothing was replaced"
            ),
            Self::ChangeUnknown { group, error } => {
                let which = if group.is_empty() {
                    "the instances' Auto Scaling groups are".to_owned()
                } else {
                    format!("Auto Scaling group {group} is")
                };
                format!(
                    "change-unknown: cannot tell whether {which} changing ({error}); nothing was replaced"
                )
            }
            Self::Relapsing {
                relapses,
                window_secs,
                instances,
            } => format!(
                "relapsing: {relapses} instances that replaced broken ones broke again within {window_secs} s \
                 ({instances}): the cause is not the instances; nothing was replaced, and the breaker stays open \
                 until `reflex breaker reset`"
            ),
            Self::ZonalFailure {
                zone,
                unhealthy,
                healthy_elsewhere,
            } => format!(
                "zonal-failure: all {unhealthy} instances in {zone} are not InService while {healthy_elsewhere} \
                 in other zones are: the zone is failing, and replacing its instances there would not help; \
                 nothing was replaced"
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

/// One instance to act on, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Act {
    /// The instance.
    pub instance_id: String,
    /// The call its action kind chose for it (`terminate`, `asg-unhealthy`, `reboot`, `start`, `isolate`).
    pub action: String,
    /// The action kind (the ladder's step); empty in decisions stored before kinds were named: see
    /// `Act::kind`.
    #[serde(default)]
    pub kind: String,
    /// Its Auto Scaling group, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
}

/// The planner's decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every registered instance.
    pub registered: Vec<String>,
    /// Every instance not InService (OutOfService or Unknown).
    pub unhealthy: Vec<String>,
    /// Instances to replace, at most the per-run cap; empty when refused.
    pub act_on: Vec<Act>,
    /// Unhealthy instances left alone, with reasons.
    pub skipped: Vec<Skip>,
    /// Set when a safety rule stops the whole run.
    pub refused: Option<Refusal>,
}

impl Act {
    /// The action kind of the act: as stored, or for a decision stored before kinds were named, the kind
    /// whose call it is (`reboot` and `start` were the reboot step's, the rest replacements).
    pub fn kind(&self) -> &str {
        match (self.kind.as_str(), self.action.as_str()) {
            ("", "reboot" | "start") => "reboot",
            ("", _) => "replace",
            (kind, _) => kind,
        }
    }
}

impl Plan {
    /// Refuses the whole run: nothing is acted on.
    pub fn refuse(&mut self, refusal: Refusal) {
        self.act_on.clear();
        self.refused = Some(refusal);
    }
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
    let in_service = snapshot.in_service();
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
    )
    .or_else(|| super::zones::zonal_refusal(snapshot));
    if plan.refused.is_some() {
        return plan;
    }
    let mut candidates: Vec<(&InstanceView, &'static str)> = Vec::new();
    for instance in unhealthy {
        match replacement_or_skip(instance, policy, clock.now) {
            Err(reason) => plan.skipped.push(Skip {
                instance_id: instance.instance_id.clone(),
                reason,
            }),
            Ok(replacement) => candidates.push((instance, replacement)),
        }
    }
    candidates.sort_by(|a, b| a.0.instance_id.cmp(&b.0.instance_id));
    for (index, (instance, action)) in candidates.into_iter().enumerate() {
        if index < policy.max_terminations_per_run {
            plan.act_on.push(Act {
                instance_id: instance.instance_id.clone(),
                action: action.to_owned(),
                kind: policy.step.name().to_owned(),
                auto_scaling_group: instance.auto_scaling_group.clone(),
            });
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
    cooldown_refusal(policy.cooldown, clock)
}

/// The cooldown refusal, while a run acted on the target less than `cooldown` ago. The engine also asks it
/// before reading the target at all, so that a storm of alerts during a cooldown makes no AWS call.
pub fn cooldown_refusal(cooldown: Duration, clock: Clock) -> Option<Refusal> {
    let last = clock.last_action_at?;
    let elapsed = clock.now - last;
    let cooldown = time::Duration::try_from(cooldown).unwrap_or(time::Duration::MAX);
    (elapsed < cooldown).then(|| Refusal::Cooldown {
        remaining_secs: (cooldown - elapsed).whole_seconds().max(1).unsigned_abs(),
    })
}

/// How many instances a target of `registered` instances may have acted on in any hour under its speed limit
/// `fraction`: the fraction of the fleet, rounded up, and at least one (4 instances at 0.34 -> 2, 12 -> 5).
pub fn speed_limit(registered: usize, fraction: f64) -> u64 {
    // A product a rounding error puts just above a whole number (0.1 x 30) is that number.
    let exact = fraction * registered as f64;
    let limit = (exact - 1e-9).ceil();
    if limit >= u64::MAX as f64 {
        return u64::MAX;
    }
    (limit as u64).max(1)
}

/// Keeps at most `left` instances of the plan's actions (what a limit still allows), and reports the rest as
/// skipped for `reason` (`budget`, `speed-limit`); how many had to be left out.
pub fn trim_to(plan: &mut Plan, left: u64, reason: SkipReason) -> usize {
    let keep = usize::try_from(left).unwrap_or(usize::MAX);
    if plan.act_on.len() <= keep {
        return 0;
    }
    let over = plan.act_on.split_off(keep);
    let count = over.len();
    for act in over {
        plan.skipped.push(Skip {
            instance_id: act.instance_id,
            reason,
        });
    }
    count
}

/// Keeps, of what an uncapped plan acts on now, only `approved` (the rest skipped for `outside`: `not-approved`
/// for an approval, `not-in-episode` for a ladder's next step), then the per-run `cap` of those (the rest
/// skipped for `cap-reached`), and says why each approved instance left out is: its own skip when the plan has
/// one, else `no-longer-broken`. A refused plan acts on nothing and adds no skip. Pure.
pub fn keep_only(plan: &mut Plan, approved: &[String], cap: usize, outside: SkipReason) {
    let (kept, unapproved): (Vec<Act>, Vec<Act>) = std::mem::take(&mut plan.act_on)
        .into_iter()
        .partition(|act| approved.contains(&act.instance_id));
    plan.act_on = kept;
    for act in unapproved {
        plan.skipped.push(Skip {
            instance_id: act.instance_id,
            reason: outside,
        });
    }
    trim_to(
        plan,
        u64::try_from(cap).unwrap_or(u64::MAX),
        SkipReason::CapReached,
    );
    if plan.refused.is_some() {
        return;
    }
    for id in approved {
        let planned = plan.act_on.iter().any(|act| &act.instance_id == id);
        if !planned && !plan.skipped.iter().any(|skip| &skip.instance_id == id) {
            plan.skipped.push(Skip {
                instance_id: id.clone(),
                reason: SkipReason::NoLongerBroken,
            });
        }
    }
}

/// How the step's action kind acts on an unhealthy instance (its call), or why to leave it alone.
fn replacement_or_skip(
    instance: &InstanceView,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<&'static str, SkipReason> {
    match instance.health.state {
        HealthState::OutOfService => {}
        HealthState::Registering => return Err(SkipReason::RegistrationInProgress),
        HealthState::Draining => return Err(SkipReason::Draining),
        HealthState::NotInUse => return Err(SkipReason::NotInUse),
        HealthState::HealthCheckDisabled => return Err(SkipReason::HealthCheckDisabled),
        HealthState::BalancerError => return Err(SkipReason::BalancerError),
        HealthState::Unknown | HealthState::InService => return Err(SkipReason::UnknownState),
    }
    let Some(ec2) = &instance.ec2 else {
        return Err(SkipReason::InstanceNotFound);
    };
    match ec2.state.as_str() {
        "running" | "stopped" => {}
        "shutting-down" | "terminated" => return Err(SkipReason::AlreadyTerminating),
        _ => return Err(SkipReason::StateInTransition),
    }
    if ec2.tags.iter().any(|(key, _)| *key == policy.protect_tag) {
        return Err(SkipReason::Protected);
    }
    let grace = time::Duration::try_from(policy.grace_period).unwrap_or(time::Duration::MAX);
    if ec2
        .launch_time
        .is_none_or(|launched| now - launched < grace)
    {
        return Err(SkipReason::GracePeriod);
    }
    policy.step.choose(instance, policy)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
