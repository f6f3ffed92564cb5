//! `[approvals]` and `[slack]`: who may approve a held decision, how long it waits, and how Slack's
//! interactive buttons are trusted.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// How long a held decision waits for its approvals by default.
pub const DEFAULT_TTL_SECS: u64 = 900;

/// `[approvals]`: the approver tokens (separate from `[manual]` and `[admin]`), how long a held decision
/// waits, and how many distinct approvers it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Approver bearer tokens: `POST /admin/approvals/{id}/approve|reject`, `GET /admin/approvals`, and an
    /// audit page session with the buttons.
    pub tokens: Vec<Secret>,
    /// File holding one approver token per line, added to `tokens`.
    pub tokens_file: Option<PathBuf>,
    /// Seconds a held decision waits before it expires (and then acts on nothing).
    pub ttl_secs: u64,
    /// Distinct approvers a held decision needs (the two-person rule is 2); a target may ask for more.
    pub required: u32,
    /// The people who may approve (`[[approvals.approvers]]`), each counted once whatever door they use.
    pub approvers: Vec<NamedApprover>,
}

/// `[[approvals.approvers]]`: one person who may approve, known by the SHA-256 of their approver token and/or
/// their Slack user id. Votes are counted by name, so one person with a token and a Slack id is one approver;
/// the config holds the token's digest, never the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedApprover {
    /// The person's name, shown on the audit page and recorded in the trail.
    pub name: String,
    /// The SHA-256 of their approver token, in hex (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Their Slack user id (`U0123ABCD`), whose button presses are their votes.
    #[serde(default)]
    pub slack_user: Option<String>,
}

impl ApprovalsConfig {
    /// Whether any approver token is configured, named or not (an approver may log in to the audit page).
    pub fn any_token(&self) -> bool {
        !self.tokens.is_empty() || self.approvers.iter().any(|a| a.token_sha256.is_some())
    }
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            tokens_file: None,
            ttl_secs: DEFAULT_TTL_SECS,
            required: 1,
            approvers: Vec::new(),
        }
    }
}

/// `[slack]`: Slack's interactive buttons on approval requests (`POST /slack/interactions`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// The Slack app's signing secret, which signs every interaction Slack sends.
    pub signing_secret: Option<Secret>,
    /// File holding the signing secret.
    pub signing_secret_file: Option<PathBuf>,
    /// Slack user ids (`U0123ABCD`) whose button presses count as approvals or rejections.
    pub approvers: Vec<String>,
}

impl SlackConfig {
    /// Whether interactions are accepted at all.
    pub fn enabled(&self) -> bool {
        self.signing_secret.is_some()
    }
}
