//! The engine's port to a remedy: an action kind (`replace`, `reboot`, `isolate`, ...) says what it does to a
//! target (on each broken instance, or once on the whole target) and how its success is judged, reads its own
//! config keys, chooses how it acts on one broken instance, and acts through the target's fleet. Every gate of a run (mode, pause, silence, window, breaker, cooldown, budgets, speed limit,
//! leases, the intent, approval, episode, check, escalation, record, summary, metrics) lives in the engine's
//! stages and applies to every kind alike; a kind holds only its calls and its declared effect. The kinds are
//! registered in `Kinds`, which the engine is given at start-up, so that a kind is one file and one line.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use super::keys::{KeyError, Keys};
use super::port::{BoxFuture, Fleet, FleetError, InstanceView, TargetRef};
use super::refusal::SkipReason;
use super::trigger::AlertNames;
use crate::contract::Subject;

/// How a step's check judges whether it worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Each instance acted on is InService again (a reboot): those still down go to the ladder's next step.
    InstancesBack,
    /// The target's capacity is back: as many instances InService as before the run plus those acted on (a
    /// replacement, an isolation).
    CapacityBack,
}

/// What an act of a kind is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActsOn {
    /// One broken instance per act (a reboot, a replacement).
    Instance,
    /// The whole target, once for all its broken instances (an ECS service's redeploy, a group's capacity):
    /// a run that would act on any instance acts once on the target instead, for all of them.
    Target,
}

/// What an action kind does, declared once: the engine's stages read it, never the kind's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// Whether it acts on each instance or on the whole target.
    pub acts_on: ActsOn,
    /// Whether the instance stays in service once acted on (a reboot keeps it; a replacement or an isolation
    /// takes it out). Only the last step of a ladder may take it out: a later step would act on an instance
    /// already gone.
    pub keeps_instance: bool,
    /// Whether acting removes capacity for a while: every action kind counts against the budgets and the speed
    /// limit; one that removes capacity is also remembered as a replacement (the relapse memory).
    pub removes_capacity: bool,
    /// Whether it adds capacity beside what is broken (a group's desired count raised) rather than acting on
    /// the broken instances themselves: a balancer's capacity rules (the unhealthy fraction, the minimum in
    /// service), which hold back acts that could take the last instances out, do not bound it.
    pub adds_capacity: bool,
    /// How its check judges it.
    pub judged: Judged,
    /// How long after acting its check runs: the kind's own wait (a reboot's `reboot_verify_secs`), or when
    /// `None`, `remediation.verify_after_secs`.
    pub checked_after: Option<std::time::Duration>,
}

/// What a kind's call is given: the target's fleet, the target as the fleet knows it, and the act.
#[derive(Debug, Clone, Copy)]
pub struct On<'a> {
    /// The fleet the target is read and healed through.
    pub fleet: &'a dyn Fleet,
    /// The target: a load balancer's name or a target group's ARN.
    pub target: &'a TargetRef,
    /// The act: the instance, the call the kind chose for it, its Auto Scaling group.
    pub act: &'a Act,
    /// The dead attempts this run finishes when it is a takeover (the latest first; empty otherwise): a kind
    /// whose act AWS's state does not show (a command sent) looks for an act one of them may already have made.
    pub resumes: &'a [String],
}

/// What a kind's call is given beside the instance (an SSM command's rendered parameters), decided when the run
/// plans and recorded with its decision: every run that plans (an approved one, a ladder's later step, a
/// takeover) decides it again from the instance as it is then.
pub type Arguments = BTreeMap<String, Vec<String>>;

/// Why a kind cannot decide its call's arguments for an instance: the instance is skipped for `reason`, and the
/// run's plan says `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentsRefused {
    /// The skip reason (`bad-parameter`).
    pub reason: SkipReason,
    /// What was refused, for the record.
    pub why: String,
}

/// One act of a decision: what it is on (an instance, or the whole target), and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Act {
    /// What it is on, written as `instance-id` (as every earlier release wrote it) or `resource`.
    #[serde(flatten)]
    pub subject: Subject,
    /// The call its action kind chose for it (`terminate`, `asg-unhealthy`, `reboot`, `start`, `isolate`).
    pub action: String,
    /// The action kind (the ladder's step); empty in decisions stored before kinds were named: see
    /// `Act::kind`.
    #[serde(default)]
    pub kind: String,
    /// Its Auto Scaling group, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
    /// For an act on the whole target, the broken instances it is for: its check expects them back, and a
    /// ladder step or an approval asked about any of them keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
    /// What its kind's call is given beside the instance (`Action::arguments`), when anything: recorded with
    /// the decision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: Arguments,
}

impl Act {
    /// An act of `kind`'s call `action` on one instance.
    pub fn on_instance(
        instance_id: &str,
        action: &str,
        kind: &str,
        auto_scaling_group: Option<String>,
    ) -> Self {
        Self {
            subject: Subject::InstanceId(instance_id.to_owned()),
            action: action.to_owned(),
            kind: kind.to_owned(),
            auto_scaling_group,
            covers: Vec::new(),
            arguments: Arguments::new(),
        }
    }

    /// The instances it is for: its own, or those an act on the whole target covers.
    pub fn instances(&self) -> Vec<&str> {
        match &self.subject {
            Subject::InstanceId(id) => vec![id.as_str()],
            Subject::Resource(_) => self.covers.iter().map(String::as_str).collect(),
        }
    }

    /// Whether it is for the instance or resource `id`.
    pub fn is_for(&self, id: &str) -> bool {
        self.subject.id() == id || self.covers.iter().any(|covered| covered == id)
    }

    /// The action kind of the act: as stored, or for a decision stored before kinds were named, the kind
    /// whose call it is (`reboot` and `start` were the reboot step's, the rest replacements).
    pub fn kind(&self) -> &str {
        crate::detail::act_kind(&self.kind, &self.action)
    }
}

/// One action kind.
pub trait Action: Send + Sync + Debug {
    /// Its name, as configured in a ladder and recorded in episodes, decisions and metrics: the kind's, or an
    /// `[[actions]]` entry's.
    fn name(&self) -> &str;

    /// What it does to an instance, as a verb in sentences (`replace`, `reboot`, `run a command on`).
    fn verb(&self) -> &'static str {
        "act on"
    }

    /// What it does, for the engine's stages.
    fn effect(&self) -> Effect;

    /// What it did to an instance, as a past participle in sentences (`replaced`, `rebooted`, `isolated`).
    fn done(&self) -> &'static str;

    /// The IAM actions its calls need (each is in the IAM templates under `deploy/`).
    fn iam_actions(&self) -> &'static [&'static str];

    /// How `reflex check-config` names it for a target: its name, with the values of its keys that matter.
    fn described(&self) -> String {
        self.name().to_owned()
    }

    /// The config keys it reads, on a target or as a default under `[remediation]` (`action`,
    /// `reboot_verify_secs`); none by default.
    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// This kind as a target's `keys` set it, read once at start-up: `None` when it reads no keys (the
    /// registered kind serves every target), else a bad value's key and what to do.
    fn with_keys(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        let _ = keys;
        Ok(None)
    }

    /// Whether a ladder may name the kind only through an `[[actions]]` entry of it, because it needs
    /// settings no default gives (an SSM command's document).
    fn needs_entry(&self) -> bool {
        false
    }

    /// The keys an `[[actions]]` entry of this kind may set: by default those it reads on a target.
    fn entry_keys(&self) -> &'static [&'static str] {
        self.keys()
    }

    /// This kind as an `[[actions]]` entry's `keys` set it (the entry's over `[remediation]`'s): by default as
    /// `with_keys` reads them.
    fn with_entry(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        self.with_keys(keys)
    }

    /// What its call on `instance` is given beside the instance, decided when the run is planned (none by
    /// default); why the instance is left alone when that cannot be decided (a parameter that fails its
    /// pattern).
    fn arguments(&self, instance: &InstanceView) -> Result<Arguments, ArgumentsRefused> {
        let _ = instance;
        Ok(Arguments::new())
    }

    /// What its one act on a whole target is given from what the run's alert names beside instances (an
    /// `AutoScalingGroupName` dimension, a `service_from` label), decided when the run is planned: none by
    /// default; why nothing is acted on when the entry needs a name the alert lacks. `alone`: the act has no
    /// instance to fall back on (a rule on no instance), so what it acts on must be named.
    fn named_arguments(
        &self,
        named: &AlertNames,
        alone: bool,
    ) -> Result<Arguments, ArgumentsRefused> {
        let _ = (named, alone);
        Ok(Arguments::new())
    }

    /// The call it makes when it acts once on a whole target whatever its instances (`add-capacity`), so
    /// that a rule on no instance (`instances = "none"`) may take it; none for a kind that chooses per instance.
    fn whole_target_call(&self) -> Option<&'static str> {
        None
    }

    /// Whether choosing needs each instance's Auto Scaling group: then a run whose read of the groups fails
    /// fails (the sender retries) rather than refusing `change-unknown`.
    fn needs_groups(&self) -> bool {
        false
    }

    /// How often it may act (an `[[actions]]` entry's `max_per_run`, `max_per_hour`, `max_per_day` and
    /// `cooldown_secs`); a kind as such has no limits beyond its target's.
    fn limits(&self) -> crate::config::ActionLimits {
        crate::config::ActionLimits::default()
    }

    /// How it acts on `instance`, one the safety rules let through (OutOfService, running or stopped, past
    /// its grace period, not protected): the call it makes (`terminate`, `reboot`, ...), or why the instance
    /// is left alone.
    fn choose(&self, instance: &InstanceView) -> Result<&'static str, SkipReason>;

    /// The summary list an instance acted on by `call` is listed in (e.g. `terminated-instance-ids`).
    fn listed_as(&self, call: &str) -> &'static str;

    /// Every summary list `listed_as` may name: each is in the summary of a run of a target with this kind,
    /// empty when nothing was listed.
    fn lists(&self) -> &'static [&'static str];

    /// Acts once, as `on.act` says: done, with the state AWS answered (the instance's new state, the health
    /// status set), or under way, with a handle the step's check polls (an SSM command's id).
    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>>;

    /// Checks, once at start-up through the target's `fleet`, the resource its settings name (nothing by
    /// default): one that cannot serve it (a failover asked of a database without a standby) is refused
    /// before the first alert rather than at it.
    fn probe<'a>(&'a self, fleet: &'a dyn Fleet) -> BoxFuture<'a, Result<(), FleetError>> {
        let _ = fleet;
        Box::pin(async { Ok(()) })
    }

    /// Follows an act that `start` answered pending with `handle`. A kind that never answers pending keeps
    /// this default, which says so.
    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        let why = format!(
            "{} answers no act pending, yet its act on {} has handle {handle:?}",
            self.name(),
            on.act.subject.id()
        );
        Box::pin(async move { Ok(Polled::Failed(why)) })
    }
}

/// What an act's call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Done: the state AWS answered.
    Done(String),
    /// Under way: the handle the step's check polls until it is done.
    Pending(String),
}

/// What a poll of a pending act found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Done, with its final state.
    Done(String),
    /// Still under way.
    Pending,
    /// Over, and it failed: why.
    Failed(String),
}

/// Why a target's ladder cannot be served by the registered kinds, or their keys not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    /// A kind's key is unusable, or a key is no kind's.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A step names no registered kind.
    #[error("`targets.ladder` has step {step:?}, which is no action kind; the kinds are {known}")]
    Unknown {
        /// The step as configured.
        step: String,
        /// The registered kinds' names, comma separated.
        known: String,
    },
    /// A step names a kind that needs an `[[actions]]` entry of its own.
    #[error(
        "`targets.ladder` has step {step:?}, a kind that needs settings of its own: add an [[actions]] entry \
         with `kind = {step:?}` and name the entry in the ladder instead (docs/actions.md)"
    )]
    NeedsEntry {
        /// The step as configured.
        step: String,
    },
    /// A step that takes the instance out of service is followed by another.
    #[error(
        "`targets.ladder` has {step:?} before {next:?}, but {step:?} takes the instance out of service: only the last step may; \
         put the steps that keep the instance (such as \"reboot\") first"
    )]
    RemovesBeforeLast {
        /// The step that removes the instance.
        step: String,
        /// The step after it.
        next: String,
    },
    /// A rule's ladder names a step that takes the instance out of service: a rule's instances are not a
    /// balancer's, whose capacity rules would bound it.
    #[error(
        "`rules.ladder` has {step:?}, which takes the instance out of service: a rule's instances are not checked \
         against a balancer's capacity rules, so its steps must keep the instance (such as \"reboot\" or an \
         ssm-command entry); leave replacement to a target's ladder"
    )]
    RuleRemoves {
        /// The step as configured.
        step: String,
    },
    /// A target's ladder names a step that reads what it acts on from the alert, which a balancer's alert does
    /// not name.
    #[error(
        "`targets.ladder` has {step:?}, which acts on what the alert names ({why}), but a target's alerts name \
         only its balancer: use it in a rule's ladder, or name the resource in the entry"
    )]
    NeedsAlertNames {
        /// The step as configured.
        step: String,
        /// What it would lack.
        why: String,
    },
    /// A rule on no instance (`instances = "none"`) names a step that acts on an instance.
    #[error(
        "`rules.ladder` has {step:?}, which acts on an instance, but the rule's instances = \"none\": its steps \
         act on what the alert names (such as asg-set-capacity, ecs-redeploy, rds-reboot or webhook entries)"
    )]
    RuleOnNoInstance {
        /// The step as configured.
        step: String,
    },
    /// A rule is served with no ladder.
    #[error(
        "`rules.ladder` is empty: name the actions the rule runs, in order (kinds or [[actions]] names)"
    )]
    RuleWithoutLadder,
}

/// The registered action kinds, by name.
#[derive(Debug, Clone, Default)]
pub struct Kinds(BTreeMap<String, Arc<dyn Action>>);

impl Kinds {
    /// The kinds with `kind` registered too (a kind of the same name is replaced).
    #[must_use]
    pub fn with(self, kind: impl Action + 'static) -> Self {
        self.with_arc(Arc::new(kind))
    }

    /// The kinds with `action` registered under its own name (an `[[actions]]` entry).
    #[must_use]
    pub fn with_arc(mut self, action: Arc<dyn Action>) -> Self {
        self.0.insert(action.name().to_owned(), action);
        self
    }

    /// The kind of this name, if registered.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.0.get(name)
    }

    /// Every registered kind, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.0.values()
    }

    /// The kinds of `ladder`'s steps, in order and as `keys` set them, when every step is registered and only
    /// the last one takes the instance out of service. (That the ladder is not empty and names each step once
    /// is the config's own check.)
    pub fn ladder(
        &self,
        ladder: &[String],
        keys: &Keys<'_>,
    ) -> Result<Vec<Arc<dyn Action>>, LadderError> {
        let steps = ladder
            .iter()
            .map(|step| {
                let kind = self.get(step).ok_or_else(|| LadderError::Unknown {
                    step: step.clone(),
                    known: self.known(),
                })?;
                if kind.needs_entry() {
                    return Err(LadderError::NeedsEntry { step: step.clone() });
                }
                Ok(kind.with_keys(keys)?.unwrap_or_else(|| Arc::clone(kind)))
            })
            .collect::<Result<Vec<_>, LadderError>>()?;
        for pair in steps.windows(2) {
            if !pair[0].effect().keeps_instance {
                return Err(LadderError::RemovesBeforeLast {
                    step: pair[0].name().to_owned(),
                    next: pair[1].name().to_owned(),
                });
            }
        }
        Ok(steps)
    }

    /// Every registered name, comma separated, for messages.
    pub fn known(&self) -> String {
        self.0
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Refuses a key of `table` (written under `section`) that is neither one of reflex's own there (they are
    /// read into the config's fields, so `table` holds only the rest) nor any registered kind's.
    pub fn known_keys(&self, table: &toml::Table, section: &str) -> Result<(), KeyError> {
        super::keys::unknown(
            table,
            section,
            self.0.values().flat_map(|kind| kind.keys().iter().copied()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_act_stored_by_an_earlier_release_reads_as_one_on_its_instance() {
        let stored = serde_json::json!({"instance-id": "i-1", "action": "terminate"});
        let act: Act = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(act.subject, Subject::InstanceId("i-1".to_owned()));
        assert_eq!((act.kind(), act.instances()), ("replace", vec!["i-1"]));
        // Written again, it is what an earlier release reads.
        assert_eq!(
            serde_json::to_value(&act).unwrap(),
            serde_json::json!({"instance-id": "i-1", "action": "terminate", "kind": ""})
        );
    }

    #[test]
    fn an_act_on_the_whole_target_names_its_resource_and_the_instances_it_covers() {
        let act = Act {
            subject: Subject::Resource("web-elb".to_owned()),
            action: "restart".to_owned(),
            kind: "restart".to_owned(),
            auto_scaling_group: None,
            covers: vec!["i-1".to_owned(), "i-2".to_owned()],
            arguments: Arguments::new(),
        };
        let stored = serde_json::to_value(&act).unwrap();
        assert_eq!(stored["resource"], "web-elb");
        assert!(stored.get("instance-id").is_none(), "{stored}");
        let read: Act = serde_json::from_value(stored).unwrap();
        assert_eq!(read, act);
        assert_eq!(read.instances(), ["i-1", "i-2"]);
        assert!(read.is_for("i-2") && read.is_for("web-elb") && !read.is_for("i-3"));
    }
}
