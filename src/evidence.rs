//! What a held decision would do, as its evidence says: the verb of its action kind and the instances, read
//! the same way by the approval page and the Slack message. Evidence written by this release names its acts
//! (`plan.acts`, `plan.verb`); evidence of a decision held by an earlier release has one list per way of
//! replacing (`plan.terminate`, `plan.asg-unhealthy`) or rebooting (`plan.reboot`), and reads the same.
//! Imports nothing of reflex: the engine writes the evidence, the UI and the notifiers read it.

use serde_json::Value;

/// What a held decision would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WouldDo {
    /// The verb of its kind (`replace`, `reboot`, `isolate`, ...; `act on` for several).
    pub verb: String,
    /// The instances it would act on, in order.
    pub instances: Vec<String>,
}

/// The lists of evidence written before acts were named, with the verb of each.
const EARLIER_LISTS: [(&str, &str); 3] = [
    ("terminate", "replace"),
    ("asg-unhealthy", "replace"),
    ("reboot", "reboot"),
];

impl WouldDo {
    /// What `evidence` (a held decision's) says it would do.
    pub fn of(evidence: &Value) -> Self {
        let plan = &evidence["plan"];
        if let Some(acts) = plan["acts"].as_array() {
            let instances = acts
                .iter()
                .filter_map(|act| act["instance-id"].as_str().or(act["resource"].as_str()))
                .map(str::to_owned)
                .collect();
            let verb = plan["verb"].as_str().unwrap_or("act on").to_owned();
            return Self { verb, instances };
        }
        let mut verbs = Vec::new();
        let mut instances = Vec::new();
        for (list, verb) in EARLIER_LISTS {
            let ids: Vec<String> = plan[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() && !verbs.contains(&verb) {
                verbs.push(verb);
            }
            instances.extend(ids);
        }
        let verb = match verbs.as_slice() {
            [] => "replace",
            [one] => one,
            _ => "act on",
        };
        Self {
            verb: verb.to_owned(),
            instances,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn evidence_of_this_release_and_of_earlier_ones_reads_alike() {
        let now = json!({"plan": {"acts": [
            {"instance-id": "i-1", "action": "isolate", "state": "planned"},
            {"instance-id": "i-2", "action": "isolate", "state": "planned"}
        ], "verb": "isolate", "terminate": []}});
        assert_eq!(
            WouldDo::of(&now),
            WouldDo {
                verb: "isolate".into(),
                instances: vec!["i-1".into(), "i-2".into()]
            }
        );
        let rebooted = json!({"plan": {"terminate": [], "asg-unhealthy": [], "reboot": ["i-3"]}});
        assert_eq!(WouldDo::of(&rebooted).verb, "reboot");
        assert_eq!(WouldDo::of(&rebooted).instances, ["i-3"]);
        let replaced = json!({"plan": {"terminate": ["i-4"], "asg-unhealthy": ["i-5"]}});
        assert_eq!(WouldDo::of(&replaced).verb, "replace");
        assert_eq!(WouldDo::of(&replaced).instances, ["i-4", "i-5"]);
        let mixed = json!({"plan": {"terminate": ["i-4"], "reboot": ["i-3"]}});
        assert_eq!(WouldDo::of(&mixed).verb, "act on");
        assert_eq!(WouldDo::of(&json!({})).instances, Vec::<String>::new());
    }
}
