//! What an operator hears about: an event (a run acted, was refused, held for approval, escalated, a breaker
//! tripped, a target did not recover), the steps of an episode an escalation lists, and a request for approval.
//! Made by the engine, delivered by the notifier through each sink's format (Slack, PagerDuty, JSON): kept
//! apart from all three, so that they depend on it and not on each other.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::NotifyEvent;
use crate::contract::ApprovalRef;

/// Something an operator wants to hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Which kind.
    pub event: NotifyEvent,
    /// The target it concerns.
    pub target: String,
    /// The target's AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The target's AWS region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// One sentence saying what happened.
    pub text: String,
    /// The audit record it comes from.
    pub audit_id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// For a held decision: what approvers need to see and where to approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Ask>,
    /// The episode it belongs to (an escalation and its resolution: one PagerDuty incident per target and
    /// episode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
    /// For an escalation: what was tried, in order, each step with its record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<Tried>,
}

/// One step of an episode, as an escalation lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Tried {
    /// `reboot`, `check`, `replace`, `escalated`, ...
    pub step: String,
    /// Its audit record.
    pub audit_id: String,
}

/// A request for approval: the held decision's id, expiry and page, and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Ask {
    /// The approval's id.
    pub id: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The audit page that shows it.
    pub url: String,
    /// The evidence (see `engine::hold::evidence`).
    pub evidence: serde_json::Value,
}

impl Ask {
    /// The request for approval of the held decision `hold`, answered as `approval`.
    pub fn of(approval: &ApprovalRef, hold: &crate::audit::NewApproval) -> Self {
        Self {
            id: approval.id.clone(),
            expires_at: approval.expires_at.clone(),
            url: approval.url.clone(),
            evidence: hold.body["evidence"].clone(),
        }
    }
}

impl Event {
    /// An event of `kind` about `target` now.
    pub fn new(event: NotifyEvent, target: &str, text: String, audit_id: &str) -> Self {
        Self {
            event,
            target: target.to_owned(),
            account: None,
            region: None,
            text,
            audit_id: audit_id.to_owned(),
            at: OffsetDateTime::now_utc(),
            approval: None,
            episode: None,
            tried: Vec::new(),
        }
    }

    /// The event, as a step of `episode`.
    pub fn of_episode(mut self, episode: &str) -> Self {
        self.episode = Some(episode.to_owned());
        self
    }

    /// The key PagerDuty groups an episode's events by: one incident per target and episode.
    pub fn dedup_key(&self) -> String {
        format!(
            "reflex/{}/{}/{}/{}",
            self.account.as_deref().unwrap_or_default(),
            self.region.as_deref().unwrap_or_default(),
            self.target,
            self.episode.as_deref().unwrap_or(&self.audit_id)
        )
    }
}

impl Event {
    /// The event, saying where its target is: `place` is the target's account and region.
    pub fn at(mut self, place: Option<&(String, String)>) -> Self {
        if let Some((account, region)) = place {
            self.account = Some(account.clone());
            self.region = Some(region.clone());
        }
        self
    }

    /// The target's account and region, when the event says them.
    pub fn place(&self) -> Option<(String, String)> {
        self.account.clone().zip(self.region.clone())
    }
}
