//! The JSON summary every remediation answers with; keeps the original tool's `message` and
//! `elb-instance-ids` keys.

use serde::Serialize;

use super::plan::{Plan, Skip};

/// The answer to an accepted alert or manual request.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// The SNS Message, alert text or manual reason.
    pub message: String,
    /// Every instance registered on the balancer.
    pub elb_instance_ids: Vec<String>,
    /// The balancer.
    pub load_balancer: String,
    /// Instances not InService.
    pub unhealthy_instance_ids: Vec<String>,
    /// Instances acted on (in dry-run: that would have been).
    pub terminated_instance_ids: Vec<String>,
    /// Unhealthy instances left alone, with reasons.
    pub skipped: Vec<Skip>,
    /// The sentence of the safety rule that stopped the whole run.
    pub refused: Option<String>,
    /// Per-instance failures.
    pub errors: Vec<ActionError>,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Whether this answers a redelivery of an earlier request.
    pub duplicate: bool,
    /// The audit record of the run.
    pub audit_id: String,
    /// Why a verified alert led to nothing (e.g. an `OK` alarm); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
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
    /// The summary of a plan before any action: what would be terminated.
    pub fn of_plan(
        message: String,
        load_balancer: &str,
        plan: &Plan,
        dry_run: bool,
        audit_id: String,
    ) -> Self {
        Self {
            message,
            elb_instance_ids: plan.registered.clone(),
            load_balancer: load_balancer.to_owned(),
            unhealthy_instance_ids: plan.unhealthy.clone(),
            terminated_instance_ids: plan.act_on.clone(),
            skipped: plan.skipped.clone(),
            refused: plan.refused.as_ref().map(|r| r.sentence()),
            errors: Vec::new(),
            dry_run,
            duplicate: false,
            audit_id,
            ignored: None,
        }
    }

    /// The answer to a verified alert that asks for nothing: no AWS call was made.
    pub fn ignored(message: String, reason: String, dry_run: bool, audit_id: String) -> Self {
        Self {
            message,
            elb_instance_ids: Vec::new(),
            load_balancer: String::new(),
            unhealthy_instance_ids: Vec::new(),
            terminated_instance_ids: Vec::new(),
            skipped: Vec::new(),
            refused: None,
            errors: Vec::new(),
            dry_run,
            duplicate: false,
            audit_id,
            ignored: Some(reason),
        }
    }
}
