//! Why a run or an instance is left alone: a refusal of the whole run by a safety rule, a brake or a person,
//! and the reason one instance is skipped. Shared by the stages that refuse (the gate, the planner, the zones,
//! the change check, the act stage's brakes), so that none of them owns what the others name.

use serde::Serialize;

pub use crate::contract::{Skip, SkipReason};

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
    /// A takeover of a rule's run whose rule changed since the dead attempt decided (another fingerprint).
    RuleChanged {
        /// The dead attempt.
        run: String,
        /// The rule's fingerprint when it decided.
        decided: String,
        /// The rule's fingerprint now.
        now: String,
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
            Self::RuleChanged { .. } => "rule-changed",
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
            Self::RuleChanged { run, decided, now } => format!(
                "the rule changed since run {run} decided (fingerprint {decided}, now {now}): its takeover \
                 does not finish what another rule began; nothing was done, the next alert runs the rule as it is"
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
