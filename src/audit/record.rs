//! One audit record: who called, what was verified, seen, decided and answered.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `POST /remediate`.
    Manual,
    /// `reflex remediate` on the command line.
    Cli,
    /// `GET /audit` (only refused reads are recorded).
    AuditRead,
    /// `POST /sns`.
    Sns,
    /// `POST /alertmanager`.
    Alertmanager,
    /// `POST /grafana`.
    Grafana,
    /// The `/admin` routes: the kill switch and the breaker reset.
    Admin,
    /// A recovery check after a run that acted.
    RecoveryCheck,
    /// A notification delivered (or not) to a `[[notify]]` webhook.
    Notify,
    /// An approver's approval or rejection of a held decision (the API, the audit page, the command
    /// line), and a held decision's expiry.
    Approval,
    /// `POST /slack/interactions`: an Approve or Reject button pressed in Slack.
    Slack,
    /// A ladder's next step, taken after the check of the step before it found instances still down.
    Ladder,
}

impl Source {
    /// The name stored in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Cli => "cli",
            Self::AuditRead => "audit-read",
            Self::Sns => "sns",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Admin => "admin",
            Self::RecoveryCheck => "recovery-check",
            Self::Notify => "notify",
            Self::Approval => "approval",
            Self::Slack => "slack",
            Self::Ladder => "ladder",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Cli,
            Self::AuditRead,
            Self::Sns,
            Self::Alertmanager,
            Self::Grafana,
            Self::Admin,
            Self::RecoveryCheck,
            Self::Notify,
            Self::Approval,
            Self::Slack,
            Self::Ladder,
        ]
        .into_iter()
        .find(|source| source.as_str() == name)
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The plan is written and AWS writes are under way (the intent record); replaced by the final outcome.
    Acting,
    /// The remediation ran (in dry-run or for real) and answered a summary.
    Completed,
    /// A target in observe mode: the run decided to act on instances, and touched nothing.
    WouldAct,
    /// A target in approve mode: the run decided to act and holds its decision for approvers.
    Held,
    /// An approval of a held decision was counted; more approvers are needed.
    Approved,
    /// An approver rejected a held decision: nothing was done.
    Declined,
    /// A held decision expired before enough approvers approved it: nothing was done.
    Expired,
    /// A safety rule refused the run.
    Refused,
    /// The request was rejected (4xx) or failed (5xx) before any AWS write.
    Rejected,
    /// A redelivery, answered with the first delivery's summary; nothing was done.
    Duplicate,
    /// Verified, but there is nothing to do (an OK alarm, an unsubscribe confirmation).
    Ignored,
    /// A subscription was confirmed.
    Confirmed,
    /// A recovery check found the target back to at least as many InService instances as before the run.
    Recovered,
    /// A recovery check found fewer InService instances than before the run: the breaker opens.
    NotRecovered,
}

impl Outcome {
    /// The name stored in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acting => "acting",
            Self::Completed => "completed",
            Self::WouldAct => "would-act",
            Self::Held => "held",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Refused => "refused",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Confirmed => "confirmed",
            Self::Recovered => "recovered",
            Self::NotRecovered => "not-recovered",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Acting,
            Self::Completed,
            Self::WouldAct,
            Self::Held,
            Self::Approved,
            Self::Declined,
            Self::Expired,
            Self::Refused,
            Self::Rejected,
            Self::Duplicate,
            Self::Ignored,
            Self::Confirmed,
            Self::Recovered,
            Self::NotRecovered,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == name)
    }
}

/// What authentication said about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Not (yet) checked: the request failed before its credentials were looked at.
    NotChecked,
    /// Credentials, signature or token verified.
    Passed,
    /// A command run by an operator on the host (`reflex remediate`); no network credentials involved.
    LocalOperator,
    /// Authentication failed with this error code (e.g. `invalid-token`, `bad-signature`).
    Failed(Cow<'static, str>),
}

impl Auth {
    /// The value stored in the audit trail.
    pub fn as_str(&self) -> &str {
        match self {
            Self::NotChecked => "not-checked",
            Self::Passed => "passed",
            Self::LocalOperator => "local-operator",
            Self::Failed(code) => code,
        }
    }

    /// Reads a stored value back.
    pub fn parse(value: &str) -> Self {
        match value {
            "not-checked" => Self::NotChecked,
            "passed" => Self::Passed,
            "local-operator" => Self::LocalOperator,
            code => Self::Failed(Cow::Owned(code.to_owned())),
        }
    }
}

impl Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// ULID, also the request id.
    pub id: String,
    /// When the request arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Where it came from (manual, cli, sns, ...).
    pub source: Source,
    /// The caller's address.
    pub caller: Option<String>,
    /// `passed` or what failed (e.g. `invalid-token`).
    pub auth: Auth,
    /// The target concerned (its name), when known.
    pub target: Option<String>,
    /// The AWS account of the target, when known.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region of the target, when known.
    #[serde(default)]
    pub region: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status answered (0 while acting).
    pub status: u16,
    /// The error code answered, if any.
    pub error: Option<String>,
    /// Whether the run was a dry run.
    pub dry_run: bool,
    /// Instances replaced (or being replaced while acting): drives the cooldown.
    pub acted: u32,
    /// When the run acted (its intent was written, then when its actions ended): the cooldown counts from here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub acted_at: Option<OffsetDateTime>,
    /// Time from arrival to answer.
    pub duration_ms: u64,
    /// Everything else: what was verified, seen, planned, what AWS answered, the summary.
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// Whether this version ends a run on a target (not its intent): the version that gives the run's leases
    /// back.
    pub(super) fn ends_a_run(&self) -> bool {
        self.target.is_some() && self.outcome != Outcome::Acting
    }
}

/// A new ULID, strictly greater than every earlier one of this process, so that records sort in arrival order
/// even within one millisecond. It is the request id and the audit id.
pub fn next_id() -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    generator
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// What is known about a request while it is handled; it becomes the audit record.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// ULID: request id and audit id.
    pub id: String,
    /// Arrival time.
    pub at: OffsetDateTime,
    started: Instant,
    /// Where it came from.
    pub source: Source,
    /// The caller's address.
    pub caller: Option<String>,
    /// `NotChecked` until authentication runs, then `Passed` or the failure code.
    pub auth: Auth,
    /// The target concerned (its name), once known.
    pub target: Option<String>,
    /// The target's AWS account and region, once known.
    pub place: Option<(String, String)>,
    /// Whether the run is a dry run.
    pub dry_run: bool,
    /// When the run acted, once it does.
    pub acted_at: Option<OffsetDateTime>,
    /// What was verified, seen, planned and answered, by step name.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl RequestMeta {
    /// Starts the record of a request arriving now.
    pub fn new(source: Source, caller: Option<String>) -> Self {
        Self::with_id(next_id(), source, caller)
    }

    /// Starts the record of a request that already has its id (the HTTP layer assigns one to every request).
    pub fn with_id(id: String, source: Source, caller: Option<String>) -> Self {
        Self {
            id,
            at: OffsetDateTime::now_utc(),
            started: Instant::now(),
            source,
            caller,
            auth: Auth::NotChecked,
            target: None,
            place: None,
            dry_run: false,
            acted_at: None,
            detail: serde_json::Map::new(),
        }
    }

    /// A record of its own for one remediation run of this request (a webhook may name several balancers);
    /// it names the request in `detail.request_id`.
    pub fn child(&self) -> Self {
        let mut child = Self::new(self.source, self.caller.clone());
        child.auth.clone_from(&self.auth);
        child.note("request_id", &self.id);
        child
    }

    /// Names the target the request concerns: its name, account and region.
    pub fn concerns(&mut self, target: &crate::target::TargetId) {
        // An instance is named as its pauses and silences are (`instance/ID`), beside targets of that name.
        self.target = Some(super::keys::Key::from(target).target);
        self.place = Some((target.account.clone(), target.region.clone()));
    }

    /// Records one step (`seen`, `plan`, `actions`, ...) under its name.
    pub fn note(&mut self, step: &str, value: impl Serialize) {
        let value = serde_json::to_value(value)
            .unwrap_or_else(|err| serde_json::Value::String(err.to_string()));
        self.detail.insert(step.to_owned(), value);
    }

    /// The audit record of the request as it stands, keeping the request open (the intent record of a run).
    pub fn record(
        &self,
        outcome: Outcome,
        status: u16,
        error: Option<&str>,
        acted: u32,
    ) -> AuditRecord {
        Self {
            id: self.id.clone(),
            at: self.at,
            started: self.started,
            source: self.source,
            caller: self.caller.clone(),
            auth: self.auth.clone(),
            target: self.target.clone(),
            place: self.place.clone(),
            dry_run: self.dry_run,
            acted_at: self.acted_at,
            detail: self.detail.clone(),
        }
        .into_record(outcome, status, error, acted)
    }

    /// The request's final audit record.
    pub fn into_record(
        self,
        outcome: Outcome,
        status: u16,
        error: Option<&str>,
        acted: u32,
    ) -> AuditRecord {
        AuditRecord {
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            id: self.id,
            at: self.at,
            source: self.source,
            caller: self.caller,
            auth: self.auth,
            target: self.target,
            account: self.place.as_ref().map(|(account, _)| account.clone()),
            region: self.place.map(|(_, region)| region),
            outcome,
            status,
            error: error.map(str::to_owned),
            dry_run: self.dry_run,
            acted,
            acted_at: self.acted_at,
            detail: serde_json::Value::Object(self.detail),
        }
    }
}

/// Stored names compare with the enums, for readers of the trail (`record.outcome == "completed"`).
macro_rules! compares_with_str {
    ($($type:ty),*) => {$(
        impl PartialEq<&str> for $type {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    )*};
}
compares_with_str!(Source, Outcome, Auth);
