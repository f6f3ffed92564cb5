//! Approving and rejecting held decisions, whichever door the approver came through (the API, the audit
//! page, Slack, the command line), and their expiry. A vote is one change of the decision's row in the store
//! (counted once per approver, nothing after it is closed or past its expiry); the vote that approves it runs
//! the engine at once on the approved instances, deciding again under every rule as it stands. Every vote,
//! refused or not, is a record of the audit trail.

use serde_json::json;

use std::time::Duration;

use crate::audit::{
    Approval, ApprovalState, Approver, AuditError, AuditRecord, AuditStore, Delivery, Outcome,
    RequestMeta, Source, Tally, Vote,
};
use crate::config::Mode;
use crate::engine::{Engine, EngineError};
use crate::job::Ran;
use crate::target::TargetId;
use time::OffsetDateTime;

/// Why a vote changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No held decision has this id.
    #[error("no held decision {0}")]
    NotFound(String),
    /// It expired before this vote.
    #[error("held decision {0} expired at {1}: nothing was done; a new alert holds a new decision")]
    Expired(String, String),
    /// It was already approved or rejected.
    #[error("held decision {0} is already {1}: this vote changes nothing")]
    Closed(String, &'static str),
    /// This approver had already approved it.
    #[error(
        "{0} already approved held decision {1}; it needs {2} distinct approvers: another approver must approve"
    )]
    AlreadyCounted(String, String, u32),
    /// A rejection without a reason.
    #[error("a rejection needs a reason")]
    ReasonRequired,
    /// A rejection whose reason is longer than the trail keeps.
    #[error(
        "a rejection's reason is at most {MAX_REASON_CHARS} characters; this one has {0}: say it shorter"
    )]
    ReasonTooLong(usize),
    /// The held decision's target is no longer configured here.
    #[error("the target of held decision {0} is not configured in this process")]
    UnknownTarget(String),
    /// Approved, and a run elsewhere is acting on it now.
    #[error("approved; run {0} is acting on it now: its audit record will say what was done")]
    Acting(String),
    /// The store failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The approved run failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The longest reason a rejection may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

impl ApprovalError {
    /// The error code answered and audited.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "approval-not-found",
            Self::Expired(..) => "approval-expired",
            Self::Closed(..) => "approval-closed",
            Self::AlreadyCounted(..) => "already-approved",
            Self::ReasonRequired | Self::ReasonTooLong(_) => "invalid-request",
            Self::UnknownTarget(_) => "unknown-target",
            Self::Acting(_) => "approval-in-progress",
            Self::Audit(_) => "audit-unavailable",
            Self::Engine(err) => err.code(),
        }
    }

    /// The HTTP status answered.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Expired(..) | Self::Closed(..) | Self::AlreadyCounted(..) => 409,
            Self::ReasonRequired | Self::ReasonTooLong(_) => 400,
            Self::UnknownTarget(_) => 422,
            Self::Acting(_) => 503,
            Self::Audit(_) => 503,
            Self::Engine(err) => err.status(),
        }
    }
}

/// What a vote came to.
#[derive(Debug, serde::Serialize)]
pub struct Voted {
    /// The held decision as it stands now.
    pub approval: Approval,
    /// The summary of the run that acted on it, when this vote approved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::engine::Summary>,
}

/// What observe and approve modes have seen of one target: what an operator weighs before promoting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WayUp {
    /// The target's name.
    pub target: String,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
    /// Its mode now.
    pub mode: &'static str,
    /// Runs from alerts, people and the command line (refused ones included).
    pub runs: u64,
    /// Runs in observe mode that would have acted.
    pub would_act: u64,
    /// Decisions held for approvers.
    pub held: u64,
    /// Held decisions approved.
    pub approved: u64,
    /// Held decisions rejected.
    pub rejected: u64,
    /// Held decisions that expired.
    pub expired: u64,
    /// Held decisions still waiting.
    pub pending: u64,
    /// Runs that replaced instances.
    pub acted: u64,
    /// Recovery checks that found the target recovered.
    pub recovered: u64,
    /// Recovery checks that found it not recovered.
    pub not_recovered: u64,
}

/// How far back the way up counts: its reads are bounded by time, however long the trail is kept.
pub const WAY_UP_DAYS: i64 = 30;

/// The way up of every configured target over the last `WAY_UP_DAYS`, from two grouped reads of the store.
pub async fn way_up(audit: &AuditStore, engine: &Engine) -> Result<Vec<WayUp>, AuditError> {
    let since = OffsetDateTime::now_utc() - time::Duration::days(WAY_UP_DAYS);
    let tally = audit.tally(since).await?;
    let held = audit.approval_counts(since).await?;
    Ok(ways(&tally, &held, engine.target_modes()))
}

/// A target's held decisions in one state: (account, region, target, state, decisions).
pub type ApprovalCount = (String, String, String, String, i64);

/// The way up of each of `targets` (identity and mode) from its records' `tally` and its decisions' `held`
/// counts. Pure.
pub fn ways<'a>(
    tally: &[Tally],
    held: &[ApprovalCount],
    targets: impl Iterator<Item = (&'a TargetId, Mode)>,
) -> Vec<WayUp> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    targets
        .map(|(id, mode)| {
            let mut way = WayUp {
                target: id.name.clone(),
                account: id.account.clone(),
                region: id.region.clone(),
                mode: mode.as_str(),
                ..WayUp::default()
            };
            let mine = |account: &str, region: &str, target: &str| {
                account == id.account && region == id.region && target == id.name
            };
            for (account, region, target, source, outcome, records, acted) in tally {
                let (account, region) = (account.as_deref(), region.as_deref());
                if !mine(
                    account.unwrap_or_default(),
                    region.unwrap_or_default(),
                    target,
                ) {
                    continue;
                }
                let run_source = !matches!(
                    source.as_str(),
                    "admin" | "notify" | "audit-read" | "recovery-check"
                );
                match outcome.as_str() {
                    "recovered" => way.recovered += count(*records),
                    "not-recovered" => way.not_recovered += count(*records),
                    "would-act" => way.would_act += count(*records),
                    "completed" | "refused" | "held" | "acting" if run_source => {}
                    _ => continue,
                }
                if run_source {
                    // An approval's run acts on a run counted already: the one that held.
                    if !matches!(source.as_str(), "approval" | "slack") {
                        way.runs += count(*records);
                    }
                    way.acted += count(*acted);
                }
            }
            for (account, region, target, state, records) in held {
                if !mine(account, region, target) {
                    continue;
                }
                way.held += count(*records);
                match ApprovalState::parse(state) {
                    ApprovalState::Approved => way.approved += count(*records),
                    ApprovalState::Rejected => way.rejected += count(*records),
                    ApprovalState::Expired => way.expired += count(*records),
                    ApprovalState::Pending => way.pending += count(*records),
                    ApprovalState::Unknown => {}
                }
            }
            way
        })
        .collect()
}

impl Voted {
    /// What the vote did, in words, for the person who voted.
    pub fn in_words(&self) -> String {
        let approval = &self.approval;
        match (&self.summary, approval.state) {
            (Some(summary), _) if summary.dry_run => {
                "Approved; the run was a dry run (the target is in observe mode, or remediation.dry_run is \
                 set): nothing was replaced"
                    .to_owned()
            }
            (Some(summary), _) => {
                let acted = summary.acted_on();
                match &summary.refused {
                    Some(refused) => format!("Approved, and refused now: {refused}"),
                    None if acted.is_empty() => "Approved: nothing is broken any more".to_owned(),
                    None => format!("Approved: {} {}", summary.verb().0, acted.join(", ")),
                }
            }
            (None, ApprovalState::Rejected) => "Rejected: nothing was done".to_owned(),
            (None, _) => format!(
                "Approved: {} of {} approvals",
                approval.approvers.len(),
                approval.required
            ),
        }
    }
}

/// A vote as every door takes it: approve, or reject for a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ballot {
    /// Approve the held decision.
    Approve,
    /// Reject it, for this reason (required).
    Reject(String),
}

/// Votes on held decisions, over the store and the engine.
#[derive(Debug, Clone, Copy)]
pub struct Approvals<'a> {
    audit: &'a AuditStore,
    engine: &'a Engine,
}

/// Why an approved decision's act job did not act this time: kept for the record if it is given up.
#[derive(Debug)]
pub struct NotActed {
    /// What failed, or which run acts on it elsewhere.
    pub why: String,
    /// The decision.
    pub approval: Box<Approval>,
}

impl std::fmt::Display for NotActed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl<'a> Approvals<'a> {
    /// Votes over the decisions held in `audit`, acted on through `engine`.
    pub fn new(audit: &'a AuditStore, engine: &'a Engine) -> Self {
        Self { audit, engine }
    }

    /// Every held decision still waiting, with its evidence.
    pub async fn pending(&self) -> Result<Vec<Approval>, AuditError> {
        self.audit.pending_approvals().await
    }

    /// Casts `approver`'s `ballot` on `id` (recorded in `meta`): `approve` or `reject`.
    pub async fn cast(
        &self,
        meta: RequestMeta,
        id: &str,
        approver: Approver,
        ballot: Ballot,
    ) -> Result<Voted, ApprovalError> {
        match ballot {
            Ballot::Approve => self.approve(meta, id, approver).await,
            Ballot::Reject(reason) => self.reject(meta, id, approver, &reason).await,
        }
    }

    /// Counts `approver`'s approval of `id` (recorded in `meta`, whose source is the door's); the vote that
    /// makes enough distinct approvers runs the engine on the approved instances at once, and its record is
    /// that run's. Should that run fail or its process die, the act job the approval added runs it later,
    /// once, on any process.
    pub async fn approve(
        &self,
        mut meta: RequestMeta,
        id: &str,
        approver: Approver,
    ) -> Result<Voted, ApprovalError> {
        let vote = json!({ "id": id, "vote": "approve", "by": approver });
        meta.note("approval", vote);
        // A decision whose target is no longer configured here is refused before the vote closes it.
        match self.audit.approval(id).await? {
            None => {
                return Err(self
                    .refused(meta, ApprovalError::NotFound(id.to_owned()))
                    .await);
            }
            Some(held) if self.engine.approved_trigger(&held).is_none() => {
                let err = ApprovalError::UnknownTarget(id.to_owned());
                return Err(self.refused(meta, err).await);
            }
            Some(_) => {}
        }
        // The approver's own run has the request's time; after it, the act job finishes what it did not.
        let act_after = Duration::from_secs(self.engine.config().server.request_timeout_secs);
        let vote = self.audit.approve(id, approver.clone(), act_after).await;
        let approval = match self.closed(vote, id, &approver) {
            Ok((approval, false)) => {
                let have = approval.approvers.len();
                let counted = json!({"have": have, "required": approval.required});
                meta.note("approvals", counted);
                self.record(meta, &approval, Outcome::Approved).await?;
                return Ok(Voted {
                    approval: *approval,
                    summary: None,
                });
            }
            Ok((approval, true)) => approval,
            Err(err) => return Err(self.refused(meta, err).await),
        };
        meta.note("approvals", &approval.approvers);
        let mut approval = approval;
        match self.act(meta, &approval).await? {
            Acted::Ran(summary) => {
                // As the run's record wrote it in its commit.
                approval.resolution = Some(json!({ "run": summary.audit_id }));
                Ok(Voted {
                    approval: *approval,
                    summary: Some(*summary),
                })
            }
            Acted::Already(_) => Ok(Voted {
                approval: *approval,
                summary: None,
            }),
            Acted::Elsewhere(first) => Err(ApprovalError::Acting(first)),
        }
    }

    /// Runs the engine on the approved decision `approval` under its delivery key, so that it acts once
    /// whoever runs it (the approver's request, or the act job after a failure): a dead attempt's claim is
    /// taken over, and a finished one is not run again.
    async fn act(&self, meta: RequestMeta, approval: &Approval) -> Result<Acted, ApprovalError> {
        let Some(trigger) = self.engine.approved_trigger(approval) else {
            return Err(ApprovalError::UnknownTarget(approval.id.clone()));
        };
        let key = format!("approval:{}", approval.id);
        match self.audit.claim_delivery(key, &meta.id, None).await? {
            Delivery::Claimed(key) => {
                let run = self.engine.run(meta, &trigger, Some(key)).await?;
                Ok(Acted::Ran(Box::new(run.summary)))
            }
            Delivery::Replay { first_id, .. } => Ok(Acted::Already(first_id)),
            Delivery::InProgress { first_id } => Ok(Acted::Elsewhere(first_id)),
        }
    }

    /// Rejects `id` for `reason` (recorded in `meta`): nothing is done, and the decision is closed.
    pub async fn reject(
        &self,
        mut meta: RequestMeta,
        id: &str,
        approver: Approver,
        reason: &str,
    ) -> Result<Voted, ApprovalError> {
        let reason = reason.trim();
        let chars = reason.chars().count();
        // Only a bounded copy is noted: the reason is the caller's text.
        let noted = crate::untrusted::bounded(reason);
        let vote = json!({ "id": id, "vote": "reject", "by": approver, "reason": noted });
        meta.note("approval", vote);
        if reason.is_empty() {
            return Err(self.refused(meta, ApprovalError::ReasonRequired).await);
        }
        if chars > MAX_REASON_CHARS {
            return Err(self
                .refused(meta, ApprovalError::ReasonTooLong(chars))
                .await);
        }
        let vote = self.audit.reject(id, approver.clone(), reason).await;
        match self.closed(vote, id, &approver) {
            Ok((approval, _)) => {
                self.record(meta, &approval, Outcome::Declined).await?;
                Ok(Voted {
                    approval: *approval,
                    summary: None,
                })
            }
            Err(err) => Err(self.refused(meta, err).await),
        }
    }

    /// Runs the expiry job of the held decision `id`: closes it as expired if nobody approved it in time. The
    /// record of what the vote found, to be written in the commit that removes the job (a rerun after a crash
    /// finds it expired already, and records that once).
    pub async fn expire(&self, id: &str) -> Result<AuditRecord, AuditError> {
        let mut meta = job_meta();
        let (outcome, approval) = match self.audit.expire(id).await? {
            Vote::Closed(approval) => (Outcome::Expired, Some(approval)),
            Vote::TooLate(approval) if approval.state == ApprovalState::Expired => {
                (Outcome::Expired, Some(approval))
            }
            Vote::TooLate(approval) | Vote::Counted(approval) | Vote::Again(approval) => {
                (Outcome::Ignored, Some(approval))
            }
            Vote::Unknown => (Outcome::Ignored, None),
        };
        meta.note(
            "approval",
            json!({"id": id, "expired": outcome == Outcome::Expired}),
        );
        if let Some(approval) = &approval {
            meta.note("approvers", &approval.approvers);
            meta.target = Some(approval.target.clone());
            meta.place = Some((approval.account.clone(), approval.region.clone()));
        }
        Ok(meta.into_record(outcome, 0, None, 0))
    }

    /// Runs the act job of the approved decision `id` whose approver's run did not finish it: the run, once
    /// (its record removes the job). A run that fails or runs elsewhere is a failure, tried again by the job's
    /// kind and given up (`not_acted`) after its attempts.
    pub async fn act_later(&self, id: &str) -> Result<Ran<NotActed>, AuditError> {
        let mut meta = job_meta();
        meta.note("approval", act_note(id));
        let approval = match self.audit.approval(id).await? {
            Some(approval) if approval.state == ApprovalState::Approved => approval,
            _ => {
                return Ok(Ran::finished(meta.into_record(
                    Outcome::Ignored,
                    0,
                    None,
                    0,
                )));
            }
        };
        let why = match self.act(meta.clone(), &approval).await {
            // The run's record removed the job.
            Ok(Acted::Ran(_)) => return Ok(Ran::Recorded),
            Ok(Acted::Already(first)) => {
                meta.note("acted_in", first);
                return Ok(Ran::finished(meta.into_record(
                    Outcome::Ignored,
                    0,
                    None,
                    0,
                )));
            }
            Ok(Acted::Elsewhere(first)) => format!("run {first} is acting on it"),
            Err(err) => err.to_string(),
        };
        Ok(Ran::Failed(NotActed {
            why,
            approval: Box::new(approval),
        }))
    }

    /// The record of an approved decision's act job given up after `attempts`, the last failing with `failed`.
    pub fn not_acted(id: &str, failed: &NotActed, attempts: u32) -> AuditRecord {
        tracing::error!(
            approval = id,
            error = failed.why,
            "an approved decision could not be acted on"
        );
        let mut meta = job_meta();
        meta.note("approval", act_note(id));
        meta.note(
            "error",
            format!("given up after {attempts} attempts: {}", failed.why),
        );
        meta.target = Some(failed.approval.target.clone());
        meta.place = Some((
            failed.approval.account.clone(),
            failed.approval.region.clone(),
        ));
        meta.into_record(Outcome::Rejected, 0, Some("approval-not-acted"), 0)
    }

    /// The decision a vote counted on (`false`) or closed (`true`), or why it changed nothing.
    fn closed(
        &self,
        vote: Result<Vote, AuditError>,
        id: &str,
        approver: &Approver,
    ) -> Result<(Box<Approval>, bool), ApprovalError> {
        match vote? {
            Vote::Unknown => Err(ApprovalError::NotFound(id.to_owned())),
            Vote::Again(approval) => Err(ApprovalError::AlreadyCounted(
                approver.who.clone(),
                id.to_owned(),
                approval.required,
            )),
            Vote::TooLate(approval) => Err(match approval.state {
                ApprovalState::Pending | ApprovalState::Expired => {
                    let at = crate::audit::rfc3339(approval.expires_at);
                    ApprovalError::Expired(id.to_owned(), at)
                }
                state => ApprovalError::Closed(id.to_owned(), state.as_str()),
            }),
            Vote::Counted(approval) => Ok((approval, false)),
            Vote::Closed(approval) => Ok((approval, true)),
        }
    }

    /// Records a vote that counted (`Approved`) or closed the decision without acting (`Declined`).
    async fn record(
        &self,
        mut meta: RequestMeta,
        approval: &Approval,
        outcome: Outcome,
    ) -> Result<(), AuditError> {
        meta.target = Some(approval.target.clone());
        meta.place = Some((approval.account.clone(), approval.region.clone()));
        self.audit
            .put(meta.into_record(outcome, 200, None, 0))
            .await
    }

    /// Records a vote that changed nothing, and returns why.
    async fn refused(&self, mut meta: RequestMeta, err: ApprovalError) -> ApprovalError {
        if let ApprovalError::Audit(_) | ApprovalError::Engine(_) = err {
            return err;
        }
        meta.note("error", err.to_string());
        let record = meta.into_record(Outcome::Rejected, err.status(), Some(err.code()), 0);
        match self.audit.put(record).await {
            Ok(()) => err,
            Err(failed) => failed.into(),
        }
    }
}

/// What acting on an approved decision came to.
enum Acted {
    /// This call ran it: the run's summary.
    Ran(Box<crate::engine::Summary>),
    /// A run had finished it already: its audit id.
    Already(String),
    /// A run elsewhere holds it now: its audit id.
    Elsewhere(String),
}

/// What the record of an approved decision's act job says of it.
fn act_note(id: &str) -> serde_json::Value {
    json!({"id": id, "act": "the approval's own run did not finish"})
}

/// The data of a decision's jobs (its expiry, its act): the approval's id.
#[derive(Debug, serde::Deserialize)]
pub struct ApprovalJob {
    /// The approval's id.
    pub id: String,
}

/// The record of a decision's job: reflex itself, acting on what approvers decided.
pub fn job_meta() -> RequestMeta {
    let mut meta = RequestMeta::new(Source::Approval, None);
    meta.auth = crate::audit::Auth::LocalOperator;
    meta
}
