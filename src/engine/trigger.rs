//! What a receiver hands the engine once it has proven who sent the request.

/// Proof that a request passed its receiver's authentication. Only the crate's verifiers can make one,
/// so an unverified request cannot be turned into a `Trigger`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    _private: (),
}

impl Authenticated {
    /// Issued by a verifier after its check succeeded.
    pub(crate) fn issued() -> Self {
        Self { _private: () }
    }
}

use crate::target::{Place, TargetRef};

/// A verified request to heal one target.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The load balancer, target group or rule to run, as the request (or the rule it matched) named it.
    pub target: TargetRef,
    /// The account and region the request says the target is in, when it says so.
    pub place: Place,
    /// The SNS Message, alert text or manual reason, echoed in the summary.
    pub message: String,
    /// Plan only, write nothing.
    pub dry_run: bool,
    /// What the run picks up from earlier work, if it does not start fresh from an alert.
    pub resume: Resume,
    /// For a rule's run: the instances its alert named, or the tag that selects them.
    pub resources: Resources,
    /// For a rule's run that must be approved whatever the rule's mode: why (a business metric's alarm).
    pub needs_approval: Option<String>,
    /// For a rule's run Alertmanager or Grafana started: the identities of its alerts, which a rule verified
    /// by its alert waits for resolved.
    pub alerts: Vec<String>,
    /// For a rule's run: what its alert names beside instances, which a step on the whole target may act on
    /// (an Auto Scaling group, an ECS service, a DB instance).
    pub named: AlertNames,
}

/// What an alert names, by key: its CloudWatch dimensions and its labels (a dimension wins over a label of
/// the same key).
pub type AlertNames = std::collections::BTreeMap<String, String>;

/// What a rule's run acts on, as its alert or the rule's `instances` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resources {
    /// Nothing named: a target's run, whose instances are its balancer's.
    #[default]
    None,
    /// These instances, by id (the alert's `InstanceId` dimension or `instance` label).
    Instances(Vec<String>),
    /// The running instances tagged `key` = `value`, looked up when the run reads.
    Tagged {
        /// The tag's key.
        key: String,
        /// Its value.
        value: String,
    },
}

/// What a run picks up from earlier work instead of starting fresh from an alert: a ladder's next step, a held
/// decision its approvers approved, a dead attempt at the same delivery. They may come together (the approval
/// of a held next step; a next step whose first attempt died with its process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// A ladder's next step: the run takes that step on the instances the earlier one did not fix.
    pub step: Option<NextStep>,
    /// A held decision approvers approved: the run acts on its instances only, if still broken.
    pub approved: Option<Box<Approved>>,
    /// The audit id of a dead attempt at the same delivery, which the run takes over: what that attempt
    /// decided counts against this run's cap, and its action is no cooldown for this one.
    pub takeover: Option<String>,
}

/// A ladder's next step: the instances an earlier step of an episode did not fix, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NextStep {
    /// The episode (the audit id of its first acting run).
    pub episode: String,
    /// Which step of the target's ladder this is (0 is the first).
    pub index: usize,
    /// The run of the earlier step: its action is no cooldown for this one.
    pub after: String,
    /// The instances it did not fix: the only ones this step may act on.
    pub instances: Vec<String>,
    /// The CloudWatch alarm the episode's checks wait for, for a rule verified by its alarm (for webhook
    /// alerts, their text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    /// The webhook alerts the episode's checks wait for resolved, by identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// For a rule's episode: the rule's fingerprint when its earlier step ran; under another, the step is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_fingerprint: Option<String>,
}

/// A held decision that approvers approved: what it would have acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The held decision's id (the run that held it).
    pub id: String,
    /// The instances it would have acted on.
    pub instances: Vec<String>,
    /// The action kind the approvers saw (`reboot`, `replace`, `isolate`, ...): when the target's ladder
    /// names another for this step since, the approved run does not act but holds again.
    pub kind: Option<String>,
    /// For a rule's: the rule's fingerprint the approvers saw; under a rule changed since, the approved run
    /// does not act but holds again.
    pub rule_fingerprint: Option<String>,
}

impl Trigger {
    /// A trigger for `target`, which the engine checks against the configured targets.
    pub fn new(_proof: Authenticated, target: TargetRef, message: String, dry_run: bool) -> Self {
        Self {
            target,
            place: Place::default(),
            message,
            dry_run,
            resume: Resume::default(),
            resources: Resources::None,
            needs_approval: None,
            alerts: Vec::new(),
            named: AlertNames::new(),
        }
    }

    /// The trigger taking a ladder's next step.
    pub fn next_step(mut self, step: NextStep) -> Self {
        self.resume.step = Some(step);
        self
    }

    /// The trigger acting on the held decision approvers approved.
    pub fn approved(mut self, approved: Approved) -> Self {
        self.resume.approved = Some(Box::new(approved));
        self
    }

    /// The trigger taking over `previous`, a dead attempt at its delivery.
    pub fn taking_over(mut self, previous: &str) -> Self {
        self.resume.takeover = Some(previous.to_owned());
        self
    }

    /// The trigger with the target's account and region as the request gave them.
    pub fn in_place(mut self, place: Place) -> Self {
        self.place = place;
        self
    }
}
