//! The JSON summary every remediation answers with; keeps the original tool's `message` and
//! `elb-instance-ids` keys.

use serde::Serialize;

use super::plan::{Plan, Refusal, Replacement, Skip};

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
    /// Instances not InService.
    pub unhealthy_instance_ids: Vec<String>,
    /// Instances terminated by reflex (in dry-run: that would have been).
    pub terminated_instance_ids: Vec<String>,
    /// Instances marked Unhealthy in their Auto Scaling group, which replaces them (in dry-run: that would
    /// have been).
    pub asg_unhealthy_instance_ids: Vec<String>,
    /// Instances rebooted (or started, when stopped) by the `reboot` step of the target's ladder (in dry-run:
    /// that would have been).
    pub rebooted_instance_ids: Vec<String>,
    /// Unhealthy instances left alone, with reasons.
    pub skipped: Vec<Skip>,
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

/// Where a held decision waits: its id, when it expires, where to approve it and what it would replace.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ApprovalRef {
    /// The approval's id (the id of the run that held it).
    pub id: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The audit page that shows its evidence, with the buttons.
    pub url: String,
    /// The instances the decision would act on once approved (the summary's own lists stay empty: nothing
    /// was done).
    pub would_replace: Vec<String>,
    /// What it would do to them: `replace`, `reboot` (a ladder's first step) or `act on`.
    #[serde(
        default = "ApprovalRef::replace",
        skip_serializing_if = "ApprovalRef::is_replace"
    )]
    pub verb: String,
}

impl ApprovalRef {
    fn replace() -> String {
        "replace".to_owned()
    }

    fn is_replace(verb: &str) -> bool {
        verb == "replace"
    }
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
}

/// One failed action.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ActionError {
    /// The instance the action was for.
    pub instance_id: String,
    /// What AWS answered.
    pub error: String,
}

impl Summary {
    /// The summary of a plan before any action: what would be replaced, and how.
    pub fn of_plan(
        message: String,
        target: Names,
        plan: &Plan,
        dry_run: bool,
        audit_id: String,
    ) -> Self {
        let planned = |action: Replacement| {
            plan.act_on
                .iter()
                .filter(|act| act.action == action)
                .map(|act| act.instance_id.clone())
                .collect()
        };
        Self {
            message,
            elb_instance_ids: plan.registered.clone(),
            load_balancer: target.load_balancer,
            target_group: target.target_group,
            account: target.account,
            region: target.region,
            unhealthy_instance_ids: plan.unhealthy.clone(),
            terminated_instance_ids: planned(Replacement::Terminate),
            asg_unhealthy_instance_ids: planned(Replacement::AsgUnhealthy),
            rebooted_instance_ids: plan
                .act_on
                .iter()
                .filter(|act| act.action.keeps_instance())
                .map(|act| act.instance_id.clone())
                .collect(),
            skipped: plan.skipped.clone(),
            refused: plan.refused.as_ref().map(|r| r.sentence()),
            refused_rule: plan.refused.as_ref().map(Refusal::rule),
            errors: Vec::new(),
            dry_run,
            mode: None,
            approval: None,
            duplicate: false,
            audit_id,
            ignored: None,
        }
    }

    /// Every instance the run acted on (or would have): terminated, handed to its group, rebooted.
    pub fn acted_on(&self) -> Vec<String> {
        let lists = [
            &self.terminated_instance_ids,
            &self.asg_unhealthy_instance_ids,
            &self.rebooted_instance_ids,
        ];
        lists.into_iter().flatten().cloned().collect()
    }

    /// What the run did (or would do) to its instances, in words: as a past participle and as a verb
    /// (`replaced`/`replace`, `rebooted`/`reboot`, or `acted on`/`act on` for both).
    pub fn verb(&self) -> (&'static str, &'static str) {
        let rebooted = self.rebooted_instance_ids.len();
        let all = self.acted_on().len();
        match (rebooted, rebooted == all) {
            (0, _) => ("replaced", "replace"),
            (_, true) => ("rebooted", "reboot"),
            (_, false) => ("acted on", "act on"),
        }
    }

    /// Moves every instance acted on out of the summary's lists (a held decision acted on nothing).
    pub fn take_acted_on(&mut self) -> Vec<String> {
        let acted = self.acted_on();
        self.terminated_instance_ids.clear();
        self.asg_unhealthy_instance_ids.clear();
        self.rebooted_instance_ids.clear();
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
            unhealthy_instance_ids: Vec::new(),
            terminated_instance_ids: Vec::new(),
            asg_unhealthy_instance_ids: Vec::new(),
            rebooted_instance_ids: Vec::new(),
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
