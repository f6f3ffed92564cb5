//! The JSON summary every remediation answers with; keeps the original tool's `message` and
//! `elb-instance-ids` keys. The engine fills it from its plan (`engine::summary`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApprovalRef, Skip};

/// The lists of instances acted on that every summary has, even when empty, whatever the target's kinds: the
/// keys the original tool and earlier releases answered with.
pub const STANDING_LISTS: [&str; 3] = [
    "terminated-instance-ids",
    "asg-unhealthy-instance-ids",
    "rebooted-instance-ids",
];

/// A run's acts in words when nothing says otherwise.
pub(crate) const REPLACED: (&str, &str) = ("replaced", "replace");

/// The answer to an accepted alert or manual request.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// The SNS Message, alert text or manual reason.
    pub message: String,
    /// Every instance registered on the balancer (or target group).
    pub elb_instance_ids: Vec<String>,
    /// The classic load balancer; for a target group, the first load balancer routing to it (`app/NAME/ID`),
    /// empty when none does.
    pub load_balancer: String,
    /// The target group, as configured; absent for classic load balancers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// The AWS account of the target (empty when the alert named none).
    pub account: String,
    /// The AWS region of the target (empty when the alert named none).
    pub region: String,
    /// The `[[rules]]` entry whose run this is; absent for a target's run (whose balancer is named above,
    /// and `load-balancer` is empty for a rule's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Instances not InService.
    pub unhealthy_instance_ids: Vec<String>,
    /// The instances acted on (in a dry run: that would have been), one list per way of acting, named by
    /// the action kind: `terminated-instance-ids` and `asg-unhealthy-instance-ids` (replace),
    /// `rebooted-instance-ids` (reboot, or a start of a stopped instance), `isolated-instance-ids`
    /// (isolate), ... The standing lists are always there.
    #[serde(flatten)]
    pub listed: BTreeMap<&'static str, Vec<String>>,
    /// One entry per act, in order: the instance (or the resource), the call, and the state AWS answered
    /// or the error (`planned` before the run acted, and in a dry run).
    pub actions: Vec<ActEntry>,
    /// Unhealthy instances left alone, with reasons.
    pub skipped: Vec<Skip>,
    /// What the run's acts do, in words (a past participle and a verb), as their kinds say: one kind's own
    /// (`replaced`/`replace`, `rebooted`/`reboot`, `isolated`/`isolate`), `acted on`/`act on` for several.
    #[serde(skip)]
    pub words: (&'static str, &'static str),
    /// The sentence of the safety rule that stopped the whole run.
    pub refused: Option<String>,
    /// That rule's name (`cooldown`, `paused`, `breaker-open`, ...); absent when nothing was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_rule: Option<&'static str>,
    /// Per-instance failures.
    pub errors: Vec<ActionError>,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// `observe` when the target is in observe mode: what it lists is what would have been done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Set when the run holds its decision for approvers (a target in approve mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// Whether this answers a redelivery of an earlier request.
    pub duplicate: bool,
    /// The audit record of the run.
    pub audit_id: String,
    /// Why a verified alert led to nothing (e.g. an `OK` alarm); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// How a summary names its target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// See `Summary::load_balancer`.
    pub load_balancer: String,
    /// See `Summary::target_group`.
    pub target_group: Option<String>,
    /// See `Summary::account`.
    pub account: String,
    /// See `Summary::region`.
    pub region: String,
    /// See `Summary::rule`.
    pub rule: Option<String>,
}

/// What one act is on: an instance, or the whole target (a service, a group) by the name AWS knows it by.
/// Written as its one key: `"instance-id": "i-0abc"` or `"resource": "web-elb"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    /// One instance, by its id.
    InstanceId(String),
    /// The whole target: its load balancer's name or its target group's ARN.
    Resource(String),
}

impl Subject {
    /// Its id: the instance's, or the resource's.
    pub fn id(&self) -> &str {
        match self {
            Self::InstanceId(id) | Self::Resource(id) => id,
        }
    }

    /// The instance, when the act is on one.
    pub fn instance(&self) -> Option<&str> {
        match self {
            Self::InstanceId(id) => Some(id),
            Self::Resource(_) => None,
        }
    }
}

/// One act of a run, as the summary's `actions` list tells it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ActEntry {
    /// What was acted on: `instance-id`, or `resource` for an act on the whole target.
    #[serde(flatten)]
    pub subject: Subject,
    /// For an act on the whole target, the broken instances it is for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
    /// The call (`terminate`, `asg-unhealthy`, `reboot`, `start`, `isolate`, ...).
    pub action: String,
    /// What AWS answered: the new state; `planned` for an act not (yet) carried out; `pending` for one under
    /// way, which the step's check follows by its `handle`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The handle of an act under way (an SSM command's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Why the act failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of an act in a summary before it is carried out.
pub const PLANNED: &str = "planned";

/// One failed action.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ActionError {
    /// What the action was on: `instance-id`, or `resource` for an act on the whole target.
    #[serde(flatten)]
    pub subject: Subject,
    /// What AWS answered.
    pub error: String,
    /// Whether the action kind refused the act itself before any write (its precondition did not hold):
    /// not an AWS error, so the breaker does not count it.
    #[serde(skip)]
    pub refused: bool,
}

impl Summary {
    /// The instances of the summary list `list` (empty when the summary has no such list).
    pub fn list(&self, list: &str) -> &[String] {
        self.listed.get(list).map_or(&[], Vec::as_slice)
    }

    /// The summary list `list`, made when missing.
    pub fn list_mut(&mut self, list: &'static str) -> &mut Vec<String> {
        self.listed.entry(list).or_default()
    }

    /// Every instance the run acted on (or would have), list by list.
    pub fn acted_on(&self) -> Vec<String> {
        self.listed.values().flatten().cloned().collect()
    }

    /// What the run did (or would do) to its instances, in words: as a past participle and as a verb
    /// (`replaced`/`replace`, `rebooted`/`reboot`, ..., or `acted on`/`act on` for several kinds).
    pub fn verb(&self) -> (&'static str, &'static str) {
        self.words
    }

    /// Moves every instance acted on out of the summary's lists, and every act out of `actions` (a held
    /// decision acted on nothing; a run about to act lists what it really did).
    pub fn take_acted_on(&mut self) -> Vec<String> {
        let acted = self.acted_on();
        for list in self.listed.values_mut() {
            list.clear();
        }
        self.actions.clear();
        acted
    }

    /// The answer to a verified alert that asks for nothing: no AWS call was made.
    pub fn ignored(message: String, reason: String, dry_run: bool, audit_id: String) -> Self {
        Self {
            message,
            elb_instance_ids: Vec::new(),
            load_balancer: String::new(),
            target_group: None,
            account: String::new(),
            region: String::new(),
            rule: None,
            unhealthy_instance_ids: Vec::new(),
            listed: STANDING_LISTS
                .into_iter()
                .map(|list| (list, Vec::new()))
                .collect(),
            actions: Vec::new(),
            words: REPLACED,
            skipped: Vec::new(),
            refused: None,
            refused_rule: None,
            errors: Vec::new(),
            dry_run,
            mode: None,
            approval: None,
            duplicate: false,
            audit_id,
            ignored: Some(reason),
        }
    }
}
