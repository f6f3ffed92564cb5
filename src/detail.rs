//! What is read back of a record's `detail` (by the audit page, by the hold's list of earlier runs and by the
//! store's index of checks), typed: the one place that says the shape of each part read. Its tests note the
//! engine's own types (plan, snapshot, summary) and read them back, so that a key the engine renames fails
//! there instead of leaving a page empty. Each part is read on its own, and each item of a list too: one that
//! is missing, or of another shape (a record of an older release), is absent, and never hides the rest. Leaf:
//! it names nothing of reflex.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The parts of a record's detail that are read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDetail {
    /// What the receiver verified (an SNS signature, a webhook's token), as noted.
    pub verified: Option<Value>,
    /// The request as noted (a manual request's body).
    pub request: Option<Value>,
    /// The alert's text or the manual reason, as the answer echoed it.
    pub message: Option<String>,
    /// The sentence of a refusal, as the answer gave it.
    pub refused: Option<String>,
    /// How many instances the answer listed as unhealthy and as skipped.
    pub answered: Answered,
    /// What failed, when the run failed.
    pub error: Option<String>,
    /// The instances the run saw.
    pub seen: Vec<SeenInstance>,
    /// The plan, when the run made one.
    pub plan: Option<PlanPart>,
    /// One entry per AWS call, when the run acted.
    pub actions: Option<Vec<ActionPart>>,
    /// A check's finding, when the record is a replacement's check.
    pub check: Option<CheckPart>,
    /// What a check found of the acts under way it followed (their evidence: a command's status and output, a
    /// deployment's rollout, a webhook's answer).
    pub polled: Vec<PolledPart>,
}

/// What a check found of one act under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PolledPart {
    /// The instance (empty for an act on the whole target).
    pub instance_id: String,
    /// The whole target, for an act on it.
    pub resource: String,
    /// What the act was followed by.
    pub handle: String,
    /// Its state when the check last looked.
    pub state: Option<String>,
    /// Why the act, or the look, failed.
    pub error: Option<String>,
}

impl PolledPart {
    /// What the act was on: the instance, or the whole target.
    pub fn subject(&self) -> &str {
        subject_of(&self.instance_id, &self.resource)
    }
}

/// How many instances a run's answer listed, as the timeline counts them (none when it has no answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    /// Listed as unhealthy.
    pub unhealthy: usize,
    /// Listed as skipped.
    pub skipped: usize,
}

impl Answered {
    /// The counts of the answer in a record's `detail`, read alone (the timeline reads nothing else).
    pub fn of(detail: &Value) -> Self {
        Self {
            unhealthy: length(&detail["answer"]["unhealthy-instance-ids"]),
            skipped: length(&detail["answer"]["skipped"]),
        }
    }
}

/// One instance of the run's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SeenInstance {
    /// Its id.
    pub instance_id: String,
    /// The balancer's verdict.
    pub health: SeenHealth,
    /// EC2's description, when EC2 knew it.
    pub ec2: Option<SeenEc2>,
    /// Its Auto Scaling group, when it belongs to one.
    pub auto_scaling_group: Option<String>,
}

/// The balancer's verdict on one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SeenHealth {
    /// The planner's reading (`InService`, `OutOfService`, `Unknown`).
    pub state: String,
    /// As AWS spelled it.
    pub reported: String,
    /// AWS's reason code, if it gave one.
    pub reason_code: Option<String>,
}

/// EC2's description of one instance, as far as it is read back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SeenEc2 {
    /// Its state (`running`, `stopped`, ...).
    pub state: String,
}

/// The run's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanPart {
    /// The rule that refused the whole run, if one did.
    pub refused_rule: Option<String>,
    /// What it acts on.
    pub act_on: Vec<PlannedAct>,
    /// What it leaves alone, and why.
    pub skipped: Vec<PlannedSkip>,
}

/// One act of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PlannedAct {
    /// The instance (empty for an act on the whole target).
    pub instance_id: String,
    /// The whole target, for an act on it (empty for an act on an instance).
    pub resource: String,
    /// The call its action kind chose (`terminate`, `reboot`, `isolate`, ...).
    pub action: String,
    /// The action kind; empty in records written before kinds were named.
    pub kind: String,
    /// For an act on the whole target, the broken instances it is for.
    pub covers: Vec<String>,
    /// What its kind's call was given beside the instance (an SSM command's rendered parameters).
    pub arguments: std::collections::BTreeMap<String, Vec<String>>,
}

impl PlannedAct {
    /// What it is on: the instance, or the whole target.
    pub fn subject(&self) -> &str {
        subject_of(&self.instance_id, &self.resource)
    }

    /// The action kind: as recorded, or for a record written before kinds were named, the kind whose call it
    /// is (`reboot` and `start` were the reboot step's, the rest replacements).
    pub fn kind(&self) -> &str {
        act_kind(&self.kind, &self.action)
    }
}

/// The action kind of an act recorded with `kind` and the call `action`: as recorded, or for an act recorded
/// before kinds were named (`kind` empty), the kind whose call it is (`reboot` and `start` were the reboot
/// step's, the rest replacements).
pub fn act_kind<'a>(kind: &'a str, action: &str) -> &'a str {
    match (kind, action) {
        ("", "reboot" | "start") => "reboot",
        ("", _) => "replace",
        (kind, _) => kind,
    }
}

/// One instance a plan leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PlannedSkip {
    /// The instance.
    pub instance_id: String,
    /// Why (`cooldown`, `grace-period`, `not-approved`, ...).
    pub reason: String,
}

/// One AWS call of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ActionPart {
    /// The instance (empty for an act on the whole target).
    pub instance_id: String,
    /// The whole target, for an act on it (empty for an act on an instance).
    pub resource: String,
    /// The call.
    pub action: String,
    /// What AWS answered: the instance's new state, or the health status set.
    pub new_state: Option<String>,
    /// Why the call failed, when it did.
    pub error: Option<String>,
    /// For an act under way, what its check follows it by (a command id, a deployment).
    pub handle: Option<String>,
}

impl ActionPart {
    /// What the call was on: the instance, or the whole target.
    pub fn subject(&self) -> &str {
        subject_of(&self.instance_id, &self.resource)
    }
}

/// What an act recorded with `instance_id` and `resource` was on: the instance, or else the whole target.
fn subject_of<'a>(instance_id: &'a str, resource: &'a str) -> &'a str {
    if instance_id.is_empty() {
        resource
    } else {
        instance_id
    }
}

/// A replacement's check: the instances InService it found, of those it expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckPart {
    /// InService when it looked.
    pub in_service: Option<u64>,
    /// InService expected once the run's replacements joined.
    pub expected_in_service: Option<u64>,
}

impl RunDetail {
    /// The parts of `detail` that are read back, each as far as it can be read.
    pub fn of(detail: &Value) -> Self {
        let plan = &detail["plan"];
        let check = &detail["recovery"];
        Self {
            verified: present(&detail["verified"]),
            request: present(&detail["request"]),
            message: part(&detail["answer"]["message"]),
            refused: part(&detail["answer"]["refused"]),
            answered: Answered::of(detail),
            error: present(&detail["error"]).map(|error| match error {
                Value::String(text) => text,
                other => other.to_string(),
            }),
            seen: items(&detail["seen"]["instances"]).unwrap_or_default(),
            plan: plan.is_object().then(|| PlanPart {
                refused_rule: part(&plan["refused"]["rule"]),
                act_on: items(&plan["act_on"]).unwrap_or_default(),
                skipped: items(&plan["skipped"]).unwrap_or_default(),
            }),
            actions: items(&detail["actions"]),
            check: check.is_object().then(|| CheckPart {
                in_service: part(&detail["in_service"]),
                expected_in_service: part(&check["expected_in_service"]),
            }),
            polled: items(&detail["polled"]).unwrap_or_default(),
        }
    }
}

/// The run a check's record `detail` checked: a replacement's (`recovery.run`) or a ladder step's
/// (`ladder.run`).
pub fn checked_run(detail: &Value) -> Option<&str> {
    detail["recovery"]["run"]
        .as_str()
        .or_else(|| detail["ladder"]["run"].as_str())
}

/// How many items `value` lists (none when it is no list).
fn length(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

/// `value`, unless it is missing.
fn present(value: &Value) -> Option<Value> {
    (!value.is_null()).then(|| value.clone())
}

/// The items of the list `value` that read as a `T` (those of another shape left out); `None` when it is no
/// list.
fn items<T: DeserializeOwned>(value: &Value) -> Option<Vec<T>> {
    let list = value.as_array()?;
    Some(list.iter().filter_map(part).collect())
}

/// `value` read as a `T`, unless it is missing or of another shape.
fn part<T: DeserializeOwned>(value: &Value) -> Option<T> {
    if value.is_null() {
        return None;
    }
    T::deserialize(value).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::{Outcome, RequestMeta, Source};
    use crate::contract::Summary;
    use crate::engine::snapshot::{Ec2Facts, Health, HealthState, InstanceView, Snapshot};
    use crate::engine::{Act, Plan, Skip, SkipReason};

    #[test]
    fn what_the_engine_notes_reads_back_part_by_part() {
        let mut meta = RequestMeta::new(Source::Manual, None);
        let plan = Plan {
            registered: vec!["i-1".into(), "i-2".into()],
            unhealthy: vec!["i-1".into(), "i-2".into()],
            act_on: vec![Act::on_instance("i-1", "terminate", "replace", None)],
            skipped: vec![Skip {
                instance_id: "i-2".into(),
                reason: SkipReason::GracePeriod,
            }],
            refused: None,
            refused_arguments: Vec::new(),
        };
        meta.note("plan", &plan);
        meta.note(
            "actions",
            json!([{"instance_id": "i-1", "action": "terminate", "kind": "replace", "new_state": "shutting-down"}]),
        );
        let mut answer = Summary::ignored("web is down".into(), String::new(), false, "R1".into());
        answer.ignored = None;
        answer.unhealthy_instance_ids = plan.unhealthy.clone();
        answer.skipped = plan.skipped.clone();
        meta.note("answer", &answer);
        let seen = InstanceView {
            instance_id: "i-1".into(),
            health: Health {
                state: HealthState::OutOfService,
                reported: "OutOfService".into(),
                reason_code: Some("Instance".into()),
                description: None,
            },
            ec2: Some(Ec2Facts {
                state: "stopped".into(),
                launch_time: None,
                tags: Vec::new(),
                zone: None,
                image_id: None,
            }),
            auto_scaling_group: Some("web-asg".into()),
        };
        let snapshot = Snapshot {
            target: "web".into(),
            instances: vec![seen],
        };
        meta.note("seen", &snapshot);
        let record = meta.into_record(Outcome::Completed, 200, None, 1);
        let detail = RunDetail::of(&record.detail);
        assert_eq!(detail.message.as_deref(), Some("web is down"));
        assert_eq!(
            detail.seen,
            [SeenInstance {
                instance_id: "i-1".into(),
                health: SeenHealth {
                    state: "OutOfService".into(),
                    reported: "OutOfService".into(),
                    reason_code: Some("Instance".into()),
                },
                ec2: Some(SeenEc2 {
                    state: "stopped".into()
                }),
                auto_scaling_group: Some("web-asg".into()),
            }]
        );
        assert_eq!(
            detail.answered,
            Answered {
                unhealthy: 2,
                skipped: 1
            }
        );
        let plan = detail.plan.unwrap();
        assert_eq!(
            (plan.act_on[0].instance_id.as_str(), plan.act_on[0].kind()),
            ("i-1", "replace")
        );
        assert_eq!(
            (
                plan.skipped[0].instance_id.as_str(),
                plan.skipped[0].reason.as_str()
            ),
            ("i-2", "grace-period")
        );
        let actions = detail.actions.unwrap();
        assert_eq!(actions[0].new_state.as_deref(), Some("shutting-down"));
        assert_eq!((detail.error, detail.check), (None, None));
    }

    #[test]
    fn a_part_of_another_shape_is_absent_and_hides_nothing_else() {
        let detail = RunDetail::of(&json!({
            "answer": {"message": "m"},
            "actions": "not a list",
            "error": {"code": 1},
            "recovery": {"run": "R1", "expected_in_service": 3},
            "in_service": 2,
        }));
        assert_eq!(detail.message.as_deref(), Some("m"));
        assert_eq!(detail.actions, None);
        let one_bad = RunDetail::of(&json!({"plan": {"act_on": [
            {"instance-id": "i-1", "action": "terminate", "kind": "replace"},
            {"instance-id": 7},
        ]}}));
        let act_on = one_bad.plan.unwrap().act_on;
        assert_eq!(
            act_on.len(),
            1,
            "the item of another shape is left out, not the list"
        );
        assert_eq!(detail.error.as_deref(), Some(r#"{"code":1}"#));
        assert_eq!(
            detail.check,
            Some(CheckPart {
                in_service: Some(2),
                expected_in_service: Some(3)
            })
        );
        assert_eq!(checked_run(&json!({"recovery": {"run": "R1"}})), Some("R1"));
        assert_eq!(
            checked_run(&json!({"ladder": {"run": "R2"}, "next": {"run": "R3"}})),
            Some("R2")
        );
    }

    #[test]
    fn an_act_recorded_before_kinds_were_named_reads_as_its_kind() {
        let act: PlannedAct =
            serde_json::from_value(json!({"instance-id": "i-1", "action": "start"})).unwrap();
        assert_eq!(act.kind(), "reboot");
    }
}
