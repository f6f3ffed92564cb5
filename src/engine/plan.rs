//! The planner: a pure function from a health snapshot, the safety policy and the clock to the actions to take.
//! Every safety rule of reflex lives here, so that it can be tested exhaustively without AWS.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use std::sync::Arc;

pub use super::action::Act;
use super::action::{Action as ActionKind, ActsOn, Arguments};
pub use super::refusal::{Refusal, STANDING_RULES, Skip, SkipReason};
use super::snapshot::{HealthState, InstanceView, Snapshot};
use crate::config::RemediationConfig;
use crate::contract::Subject;

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
    /// The action kind of the step of the target's ladder this run takes.
    pub step: Arc<dyn ActionKind>,
    /// Whether the balancer's capacity rules (too many unhealthy, the in-service floor, a zone's share)
    /// bound the run: not for a rule's, whose steps keep the instance.
    pub capacity_rules: bool,
    /// The instances the step's `[[actions]]` entry may not act on now (its cooldown, its hourly or daily
    /// count), with why: skipped before the cap, so that they take no one's place.
    pub held_back: std::collections::BTreeMap<String, SkipReason>,
    /// For a rule on no instance (`instances = "none"`): the run acts once on what its alert names, with
    /// no instance read.
    pub on_alert: bool,
    /// What the run's alert named beside instances, which a step on the whole target may act on.
    pub named: super::trigger::AlertNames,
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
            step,
            capacity_rules: true,
            held_back: std::collections::BTreeMap::new(),
            on_alert: false,
            named: super::trigger::AlertNames::new(),
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
    /// What a kind refused for an instance it skipped, when it said (a parameter that fails its pattern).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_arguments: Vec<String>,
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
    if policy.on_alert {
        return on_alert(snapshot, policy, clock);
    }
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
    plan.refused = if policy.capacity_rules {
        refusal(
            unhealthy.len(),
            snapshot.instances.len(),
            in_service,
            policy,
            clock,
        )
        .or_else(|| super::zones::zonal_refusal(snapshot))
    } else {
        cooldown_refusal(policy.cooldown, clock)
    };
    if plan.refused.is_some() {
        return plan;
    }
    let candidates = candidates(unhealthy, policy, clock.now, &mut plan);
    if policy.step.effect().acts_on == ActsOn::Target {
        plan_on_target(snapshot, policy, candidates, &mut plan);
        return plan;
    }
    for (index, candidate) in candidates.into_iter().enumerate() {
        let instance = candidate.instance;
        if index < policy.max_terminations_per_run {
            plan.act_on.push(Act {
                arguments: candidate.arguments,
                ..Act::on_instance(
                    &instance.instance_id,
                    candidate.call,
                    policy.step.name(),
                    instance.auto_scaling_group.clone(),
                )
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

/// An unhealthy instance the step may act on: the call its kind chose, and what the call is given.
struct Candidate<'a> {
    instance: &'a InstanceView,
    call: &'static str,
    arguments: Arguments,
}

/// The unhealthy instances the step may act on, by id; each other one is skipped in `plan` with its reason.
fn candidates<'a>(
    unhealthy: Vec<&'a InstanceView>,
    policy: &Policy,
    now: OffsetDateTime,
    plan: &mut Plan,
) -> Vec<Candidate<'a>> {
    let mut candidates = Vec::new();
    for instance in unhealthy {
        if let Some(reason) = policy.held_back.get(&instance.instance_id) {
            plan.skipped.push(Skip {
                instance_id: instance.instance_id.clone(),
                reason: *reason,
            });
            continue;
        }
        let chosen = replacement_or_skip(instance, policy, now).and_then(|call| {
            let arguments = policy.step.arguments(instance).map_err(|refused| {
                plan.refused_arguments.push(refused.why);
                refused.reason
            })?;
            Ok((call, arguments))
        });
        match chosen {
            Err(reason) => plan.skipped.push(Skip {
                instance_id: instance.instance_id.clone(),
                reason,
            }),
            Ok((call, arguments)) => candidates.push(Candidate {
                instance,
                call,
                arguments,
            }),
        }
    }
    candidates.sort_by(|a, b| a.instance.instance_id.cmp(&b.instance.instance_id));
    candidates
}

/// The one act of a step that acts on the whole target, for every instance it may act on (the call the kind
/// chose for the first), with the Auto Scaling group they all share, if they do; none when there is no such
/// instance. It counts as one act against the per-run cap.
fn on_target(
    snapshot: &Snapshot,
    policy: &Policy,
    candidates: &[Candidate<'_>],
    arguments: Arguments,
) -> Option<Act> {
    let first = candidates.first()?;
    let group = first.instance.auto_scaling_group.clone();
    let shared = candidates
        .iter()
        .all(|candidate| candidate.instance.auto_scaling_group == group);
    (policy.max_terminations_per_run > 0).then(|| Act {
        subject: Subject::Resource(snapshot.target.clone()),
        action: first.call.to_owned(),
        kind: policy.step.name().to_owned(),
        auto_scaling_group: group.filter(|_| shared),
        covers: candidates
            .iter()
            .map(|candidate| candidate.instance.instance_id.clone())
            .collect(),
        arguments,
    })
}

/// Plans a step on the whole target into `plan`: one act for every candidate, or, when there is none (the
/// cap, a name the alert lacks), each candidate skipped with why.
fn plan_on_target(
    snapshot: &Snapshot,
    policy: &Policy,
    candidates: Vec<Candidate<'_>>,
    plan: &mut Plan,
) {
    let mut skipped = SkipReason::CapReached;
    match policy.step.named_arguments(&policy.named, false) {
        Ok(arguments) => plan
            .act_on
            .extend(on_target(snapshot, policy, &candidates, arguments)),
        Err(refused) => {
            plan.refused_arguments.push(refused.why);
            skipped = refused.reason;
        }
    }
    if plan.act_on.is_empty() {
        for candidate in candidates {
            plan.skipped.push(Skip {
                instance_id: candidate.instance.instance_id.clone(),
                reason: skipped,
            });
        }
    }
}

/// The plan of a rule's run on no instance (`instances = "none"`): one act on the whole target, on what the
/// alert names, unless the cooldown holds it or the step cannot tell what that is (a name the alert lacks).
fn on_alert(snapshot: &Snapshot, policy: &Policy, clock: Clock) -> Plan {
    let mut plan = Plan {
        refused: cooldown_refusal(policy.cooldown, clock),
        ..Plan::default()
    };
    let Some(call) = policy.step.whole_target_call() else {
        return plan;
    };
    if plan.refused.is_some() || policy.max_terminations_per_run == 0 {
        return plan;
    }
    // The entry's own limits count its acts on what the rule's alerts name under the rule's name.
    if let Some(reason) = policy.held_back.get(&snapshot.target) {
        plan.skipped.push(Skip {
            instance_id: snapshot.target.clone(),
            reason: *reason,
        });
        return plan;
    }
    match policy.step.named_arguments(&policy.named, true) {
        Ok(arguments) => plan.act_on.push(Act {
            subject: Subject::Resource(snapshot.target.clone()),
            action: call.to_owned(),
            kind: policy.step.name().to_owned(),
            auto_scaling_group: None,
            // What the alert names is the rule's to check: the act covers it under the rule's name.
            covers: vec![snapshot.target.clone()],
            arguments,
        }),
        Err(refused) => plan.refused_arguments.push(refused.why),
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
        skip_all(plan, &act, reason);
    }
    count
}

/// Skips every instance `act` is for, for `reason`.
fn skip_all(plan: &mut Plan, act: &Act, reason: SkipReason) {
    for instance_id in act.instances() {
        plan.skipped.push(Skip {
            instance_id: instance_id.to_owned(),
            reason,
        });
    }
}

/// Keeps, of what an uncapped plan acts on now, only `approved` (the rest skipped for `outside`: `not-approved`
/// for an approval, `not-in-episode` for a ladder's next step), then the per-run `cap` of those (the rest
/// skipped for `cap-reached`), and says why each approved instance left out is: its own skip when the plan has
/// one, else `no-longer-broken`. A refused plan acts on nothing and adds no skip. Pure.
pub fn keep_only(plan: &mut Plan, approved: &[String], cap: usize, outside: SkipReason) {
    let (kept, unapproved): (Vec<Act>, Vec<Act>) = std::mem::take(&mut plan.act_on)
        .into_iter()
        .partition(|act| approved.iter().any(|id| act.is_for(id)));
    plan.act_on = kept;
    for act in unapproved {
        skip_all(plan, &act, outside);
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
        let planned = plan.act_on.iter().any(|act| act.is_for(id));
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
    policy.step.choose(instance)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
