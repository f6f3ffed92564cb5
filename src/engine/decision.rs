//! The decide stage's typed hand-off: what a run will do and why it may, stored as its own row with the run's
//! intent, so that it can be acted on later (an approval, a takeover) and read by the stages that share it
//! (observe reads a dead attempt's, the checks read what was acted on).

use serde::{Deserialize, Serialize};

use super::action::Act;

/// What a run will do and why it may: the steps, in order, and what the recovery check will expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Decision {
    /// The run that decided.
    pub run_id: String,
    /// Its target.
    pub target: String,
    /// The instances to replace, and how, in order.
    pub steps: Vec<Act>,
    /// Instances InService when the target was read: the recovery check expects these plus those replaced.
    pub in_service: u32,
    /// The dead attempt this run finishes, when it is a takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover_of: Option<String>,
    /// Every dead attempt this run finishes, the latest first: the one it takes over, and those that one took
    /// over in turn. An act whose effect AWS's state does not show (a command sent) is looked for under each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<String>,
    /// For a rule's run: the rule's fingerprint when it decided; a takeover under another is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_fingerprint: Option<String>,
}

impl Decision {
    /// The attempts a takeover of the run `previous`, which decided `decided`, finishes: `previous`, then
    /// those it finished itself.
    pub fn attempts_after(previous: Option<&str>, decided: Option<&Decision>) -> Vec<String> {
        previous
            .into_iter()
            .map(str::to_owned)
            .chain(decided.into_iter().flat_map(|d| d.attempts.iter().cloned()))
            .collect()
    }
}
