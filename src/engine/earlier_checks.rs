//! The checks the previous release scheduled, as it stored them: a replacement's `recovery-check` and a
//! reboot's `ladder-check`. Read into this release's one `Check` (see `check.rs`), so that a store written by
//! the previous release finishes its pending checks.

use serde::{Deserialize, Serialize};

/// The job kind of a replacement's check, as the previous release scheduled it.
pub const RECOVERY_JOB: &str = "recovery-check";

/// The job kind of a reboot's check, as the previous release scheduled it.
pub const LADDER_JOB: &str = "ladder-check";

/// A recovery check's data: the run that acted, its target, and how many instances should be InService once
/// the target recovered (those InService before the run plus those it replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecoveryCheck {
    /// The audit id of the run that acted.
    pub run_id: String,
    /// Its target's name.
    pub target: String,
    /// Its target's AWS account (checks scheduled before targets had one are the home's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Its target's AWS region (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// InService instances expected once the target recovered.
    pub expected_in_service: u32,
    /// The run's episode (checks scheduled before episodes: the run itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
    /// The instances registered when the run read the target: any other found now joined since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
    /// The instances the run replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// Set once the target escalated: the check watches for its capacity coming back (Unix seconds since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching_since: Option<i64>,
}

/// A reboot's check: the run, its episode and step, and what it rebooted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StepCheck {
    /// The run that rebooted.
    pub run_id: String,
    /// Its episode.
    pub episode: String,
    /// Its step in the target's ladder.
    pub index: usize,
    /// Its target's name, account and region.
    pub target: String,
    /// The target's account.
    pub account: String,
    /// The target's region.
    pub region: String,
    /// The instances it rebooted (or started).
    pub rebooted: Vec<String>,
    /// InService instances expected once the target recovered (an escalation watches for these).
    pub expected_in_service: u32,
}
