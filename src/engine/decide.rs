//! The decide stage: from what was observed, the plan under the safety policy, the leases a run that will act
//! takes (its target's and the budget's, so that one run acts per target and the budgets are counted one run
//! after another across processes), and the budgets. Its result is a typed, serialisable `Decision`, stored
//! as its own row with the run's intent, so that it can be acted on later (a takeover finishes it).

use std::time::Duration;

use time::OffsetDateTime;

use super::action::Action as ActionKind;
use super::action_limits::HeldBack;
use super::breaker::{Trip, Tripped};
use super::budget;
pub use super::decision::Decision;
use super::observe::Observation;
use super::plan::{self, Act, Clock, Plan, Policy, Refusal, SkipReason};
use super::port::Snapshot;
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{Lease, Leased, RequestMeta, SharedClock};

/// How long a run that is about to act waits for another process's run on the same target to finish.
const LEASE_WAIT: Duration = Duration::from_secs(10);

/// What the decide stage hands the act stage.
pub(super) struct Decided<'a> {
    /// The whole plan: the steps and every instance skipped or the refusal, for the summary.
    pub plan: Plan,
    /// What will be done.
    pub decision: Decision,
    /// Set when the budgets cut the plan to nothing and opened the breaker (or a relapse opened it).
    pub tripped: Option<Tripped>,
    /// Why the budgets cut a plan that still acts: the breaker opens once the run has acted, so that the next
    /// run is stopped (opened now, it would refuse this run's own intent).
    pub budget_cut: Option<String>,
    /// Held from reading the budgets until the intent counts against them: no other run of this process reads
    /// them meanwhile (other processes wait for the budget lease).
    pub budget_gate: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// The database's clock, which stamps when the run acts.
    pub clock: SharedClock,
    /// What the plan was made from (the evidence of a held decision).
    pub snapshot: Snapshot,
    /// Replacements the plan acts on again: relapses, marked in the run's commit once it acts.
    pub relapsed: Vec<String>,
}

/// The instances a dead attempt decided to act on that it may have acted on before it died: those EC2 now shows
/// shutting down or terminated, and those no longer registered with the target (deregistered since: acted on,
/// as far as the cap can tell). Counting one too many only leaves an instance for the next run; counting one
/// too few acts past the cap. Pure.
pub fn already_replaced(decided: &[Act], snapshot: &Snapshot) -> Vec<String> {
    // An act on the whole target may have been done: it counts, as one act.
    let on_target = decided
        .iter()
        .filter(|act| act.subject.instance().is_none())
        .map(|act| act.subject.id().to_owned());
    let on_instances = decided
        .iter()
        .filter_map(|act| act.subject.instance())
        .filter(|id| {
            let seen = snapshot.instances.iter().find(|i| i.instance_id == *id);
            seen.is_none_or(|instance| {
                instance
                    .ec2
                    .as_ref()
                    .is_some_and(|ec2| matches!(ec2.state.as_str(), "shutting-down" | "terminated"))
            })
        })
        .map(str::to_owned);
    on_target.chain(on_instances).collect()
}

/// The plan for what was observed at `now` under `policy`; a takeover's cap counts the instances its dead
/// attempt already replaced, whose ids (and its act on the whole target) are returned beside the plan. Pure.
pub fn plan_for(
    observation: &Observation,
    mut policy: Policy,
    now: OffsetDateTime,
) -> (Plan, Option<Vec<String>>) {
    let clock = Clock {
        now,
        last_action_at: observation.last_action_at,
    };
    let replaced = observation.takeover.as_ref().map(|(_, decision)| {
        let decided = decision.as_ref().map_or(&[][..], |d| d.steps.as_slice());
        already_replaced(decided, &observation.snapshot)
    });
    if let Some(replaced) = &replaced {
        // An act on the whole target is taken over, not spent: its kind finds and follows what the dead
        // attempt did (its tag, its deployment, its idempotency key), so the takeover plans it again.
        let target = &observation.snapshot.target;
        let spent = replaced.iter().filter(|id| *id != target).count();
        policy.max_terminations_per_run = policy.max_terminations_per_run.saturating_sub(spent);
    }
    (plan::plan(&observation.snapshot, &policy, clock), replaced)
}

/// What the plan holds back: the instances `braked` (their own pause or silence, which says why) and those
/// the step's entry `held` back. Pure.
fn held_back(
    held: &HeldBack,
    braked: &std::collections::BTreeMap<String, SkipReason>,
) -> std::collections::BTreeMap<String, SkipReason> {
    let mut held_back = held.instances.clone();
    held_back.extend(braked.iter().map(|(id, reason)| (id.clone(), *reason)));
    held_back
}

/// What a run asks the decide stage for.
pub(super) struct Asked<'a> {
    /// The dead attempt this run takes over, if it is a takeover.
    pub previous: Option<&'a str>,
    /// Runs whose action is no cooldown for this one (the dead attempt, the earlier step of its episode).
    pub except: &'a [&'a str],
    /// Whether the run will act now (not a dry run, not a decision to hold): only then are leases taken and
    /// a budget or a relapse opens the breaker.
    pub acting: bool,
    /// The only instances it may act on, and the skip of the rest: an approval's, or a ladder step's.
    pub only: Option<(&'a [String], SkipReason)>,
    /// The action kind of the step of the target's ladder it takes.
    pub step: &'a std::sync::Arc<dyn ActionKind>,
    /// For a rule's run, what its alert selected (a resumed step's or approval's: those in `only`).
    pub resources: &'a super::trigger::Resources,
    /// The instances paused or silenced on their own (the gate's), left alone whatever else holds.
    pub braked: &'a std::collections::BTreeMap<String, SkipReason>,
    /// For a rule's run: what its alert named beside instances.
    pub named: &'a super::trigger::AlertNames,
}

impl Engine {
    /// Observes `target` and decides what to do as `asked`; a run that will act takes the leases first, and
    /// looks again when another run acted meanwhile. A replacement of instances that replaced broken ones
    /// not long ago is a relapse, counted (`relapse`).
    pub(super) async fn decide(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        asked: Asked<'_>,
    ) -> Result<Decided<'_>, EngineError> {
        let Asked {
            previous,
            except,
            resources,
            ..
        } = asked;
        let mut observation = self
            .observe(meta, target, previous, except, resources)
            .await?;
        let now = observation.clock.now();
        let held = self
            .held_back(meta, target, asked.step.as_ref(), except, now)
            .await?;
        let mut plan = self.plan_noted(meta, target, &observation, &asked, &held);
        let acting = asked.acting && !plan.act_on.is_empty();
        if acting && self.moved_since(meta, target, except, &observation).await? {
            observation = self
                .observe(meta, target, previous, except, resources)
                .await?;
            plan = self.plan_noted(meta, target, &observation, &asked, &held);
        }
        let budget_gate = if acting {
            Some(self.budget_gate.lock().await)
        } else {
            None
        };
        let now = observation.clock.now();
        let mut relapse = super::relapse::Relapse::default();
        // A step that takes instances out of service has them replaced: what replaced broken ones not long
        // ago and broke again is a relapse.
        if !asked.step.effect().keeps_instance && !plan.act_on.is_empty() {
            relapse = self
                .relapses(meta, target, &mut plan, asked.acting, now)
                .await?;
        }
        let (mut tripped, mut budget_cut) = (relapse.tripped, None);
        if !plan.act_on.is_empty() {
            budget_cut = self
                .trim_to_limits(meta, target, &mut plan, !asked.acting, now)
                .await?;
            if plan.act_on.is_empty()
                && let Some(reason) = budget_cut.take()
            {
                tripped = self.trip(meta, &target.id, Trip::Budget, reason).await?;
            }
        } else if let Some(reason) = held.spent(&plan).filter(|_| asked.acting) {
            tripped = self.trip(meta, &target.id, Trip::Budget, reason).await?;
        }
        let decision = Decision {
            run_id: meta.id.clone(),
            target: target.id.name.clone(),
            steps: plan.act_on.clone(),
            in_service: u32::try_from(observation.snapshot.in_service()).unwrap_or(u32::MAX),
            takeover_of: previous.map(str::to_owned),
            attempts: Decision::attempts_after(
                previous,
                observation.takeover.as_ref().and_then(|(_, d)| d.as_ref()),
            ),
            rule_fingerprint: target.fingerprint.clone(),
        };
        Ok(Decided {
            plan,
            decision,
            tripped,
            budget_cut,
            budget_gate,
            clock: observation.clock,
            snapshot: observation.snapshot,
            relapsed: relapse.relapsed,
        })
    }

    /// Takes the target's and the budget's leases for a run about to act, and says whether the target may
    /// have moved since `observation`: another run acted on it since we looked (the last action read before
    /// the target moved), or held the target when we asked (it may have acted and died before its record
    /// said so). Then the run looks again, holding the lease.
    async fn moved_since(
        &self,
        meta: &RequestMeta,
        target: &Target,
        except: &[&str],
        observation: &Observation,
    ) -> Result<bool, EngineError> {
        let mut contended = false;
        for lease in [Lease::Target(&target.id), Lease::Budget] {
            match self.audit.lease(lease, &meta.id, LEASE_WAIT).await? {
                Leased::Busy => return Err(EngineError::TargetBusy(target.id.name.clone())),
                Leased::AfterWaiting => contended |= matches!(lease, Lease::Target(_)),
                Leased::AtOnce => {}
            }
        }
        Ok(contended
            || self.audit.last_action(&target.id, except).await?.at != observation.last_action_at)
    }

    /// The plan for `observation` under the target's policy at the step `asked` takes, cut to the only
    /// instances it may act on (an approval's, a ladder step's), noted (with the takeover's context).
    fn plan_noted(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        observation: &Observation,
        asked: &Asked<'_>,
        held: &HeldBack,
    ) -> Plan {
        let mut policy = Policy {
            cooldown: target.cooldown,
            capacity_rules: !target.is_rule() && !asked.step.effect().adds_capacity,
            held_back: held_back(held, asked.braked),
            on_alert: target.on_alert,
            named: asked.named.clone(),
            ..Policy::new(&self.config.remediation, std::sync::Arc::clone(asked.step))
        };
        policy.max_terminations_per_run = held.cap(policy.max_terminations_per_run);
        // An approval (or a ladder step) caps what it may act on, not what broke since: it plans uncapped,
        // then keeps its own.
        let cap = policy.max_terminations_per_run;
        if asked.only.is_some() {
            policy.max_terminations_per_run = usize::MAX;
        }
        let (mut plan, replaced) = plan_for(observation, policy, observation.clock.now());
        if !plan.act_on.is_empty()
            && let Some(refusal) = super::change::change_refusal(&observation.changes)
        {
            if matches!(refusal, Refusal::ChangeInProgress { .. }) {
                target.saw_change(&refusal);
            }
            plan.refuse(refusal);
        }
        if let Some((only, outside)) = asked.only {
            plan::keep_only(&mut plan, only, cap, outside);
        }
        if let Some(refusal) = rule_changed(target, observation) {
            plan.refuse(refusal);
        }
        if let (Some((of, _)), Some(replaced)) = (&observation.takeover, replaced) {
            meta.note(
                "takeover",
                serde_json::json!({"of": of, "already_replaced": replaced}),
            );
        }
        meta.note("plan", &plan);
        plan
    }

    /// Cuts the plan to what the budgets (the rest skipped for `budget`) and the target's speed limit (a
    /// fraction of its registered instances per hour; the rest skipped for `speed-limit`) still allow,
    /// whichever is tighter. A real run that the budgets cut short opens the breaker: why is returned, for
    /// the caller to open it; the speed limit opens nothing: it only slows the removal of capacity down.
    async fn trim_to_limits(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        plan: &mut Plan,
        dry_run: bool,
        now: OffsetDateTime,
    ) -> Result<Option<String>, EngineError> {
        let used = budget::usage(&self.audit, &target.id, now).await?;
        let left = budget::Left::of(budget::Budgets::from(&self.config.remediation), used);
        meta.note("budget_left", left);
        let registered = plan.registered.len();
        let per_hour = target
            .removed_fraction
            .map_or(u64::MAX, |fraction| plan::speed_limit(registered, fraction));
        let speed_left = per_hour.saturating_sub(used.target_hour);
        meta.note(
            "speed_limit",
            serde_json::json!({"per_hour": per_hour, "left": speed_left, "registered": registered}),
        );
        // Only the tighter limit can cut (the looser one then finds nothing to cut), and it names the
        // skips: a run held back by the speed limit does not open the breaker through a budget that would
        // have allowed no more (a tie is the budget's).
        let (cut, slowed) = if left.allowed() <= speed_left {
            (plan::trim_to(plan, left.allowed(), SkipReason::Budget), 0)
        } else {
            (0, plan::trim_to(plan, speed_left, SkipReason::SpeedLimit))
        };
        if cut + slowed > 0 {
            meta.note("plan", &*plan);
        }
        if cut == 0 || dry_run {
            return Ok(None);
        }
        let (key, allowed) = left.tightest();
        Ok(Some(format!(
            "budget exhausted: remediation.{key} leaves {allowed} now"
        )))
    }
}

/// A takeover of a rule's run that the rule, changed since (another fingerprint), did not decide: refused,
/// since what the dead attempt began is not what the rule now says.
fn rule_changed(target: &Target, observation: &Observation) -> Option<Refusal> {
    let (of, Some(dead)) = observation.takeover.as_ref()? else {
        return None;
    };
    let (decided, now) = (
        dead.rule_fingerprint.as_ref()?,
        target.fingerprint.as_ref()?,
    );
    (decided != now).then(|| Refusal::RuleChanged {
        run: of.clone(),
        decided: decided.clone(),
        now: now.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::port::{Ec2Facts, InstanceView};

    fn instance(id: &str, state: &str) -> InstanceView {
        InstanceView {
            instance_id: id.into(),
            health: crate::engine::health::classic("OutOfService", Some("Instance"), None),
            ec2: Some(Ec2Facts {
                state: state.into(),
                launch_time: Some(OffsetDateTime::UNIX_EPOCH),
                tags: vec![],
                zone: None,
                image_id: None,
            }),
            auto_scaling_group: None,
        }
    }

    fn act(id: &str) -> Act {
        Act::on_instance(id, "terminate", "replace", None)
    }

    #[test]
    fn a_dead_attempt_replaced_what_it_decided_and_ec2_shows_going() {
        let snapshot = Snapshot {
            target: "web".into(),
            instances: vec![
                instance("i-1", "shutting-down"),
                instance("i-2", "running"),
                instance("i-3", "terminated"),
            ],
        };
        assert_eq!(
            already_replaced(&[act("i-1"), act("i-2")], &snapshot),
            ["i-1"],
            "i-3 is going too, but the attempt did not decide it"
        );
        assert!(already_replaced(&[], &snapshot).is_empty());
        // An act on the whole target may have been done: it counts.
        let on_target = Act {
            subject: crate::contract::Subject::Resource("web".into()),
            covers: vec!["i-2".into()],
            ..act("i-2")
        };
        assert_eq!(already_replaced(&[on_target], &snapshot), ["web"]);
        // Deregistered since the attempt decided on it: counted, whatever EC2 says of it.
        assert_eq!(
            already_replaced(&[act("i-2"), act("i-gone")], &snapshot),
            ["i-gone"]
        );
    }

    #[test]
    fn a_decision_reads_back_as_it_was_stored() {
        let decision = Decision {
            run_id: "01J".into(),
            target: "web".into(),
            steps: vec![act("i-1")],
            in_service: 4,
            takeover_of: None,
            attempts: Vec::new(),
            rule_fingerprint: None,
        };
        let text = serde_json::to_string(&decision).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), decision);
        assert!(
            !text.contains("takeover") && !text.contains("attempts"),
            "{text}"
        );
    }

    #[test]
    fn a_takeover_of_a_takeover_finishes_every_dead_attempt_before_it() {
        assert!(Decision::attempts_after(None, None).is_empty());
        assert_eq!(Decision::attempts_after(Some("A"), None), ["A"]);
        let b = Decision {
            run_id: "B".into(),
            target: "web".into(),
            steps: vec![act("i-1")],
            in_service: 4,
            takeover_of: Some("A".into()),
            attempts: vec!["A".into()],
            rule_fingerprint: None,
        };
        assert_eq!(Decision::attempts_after(Some("B"), Some(&b)), ["B", "A"]);
    }
}
