//! The `approvals` table: decisions held by targets in approve mode until enough distinct approvers approve
//! them, one rejects them, or they expire. The hold is written in the commit of the run's record, with the
//! durable job that expires it; every vote is one conditional change of one row, so an approval counts once
//! across replicas and nothing changes after the decision is closed. The store keeps the body (the engine's
//! decision, summary and evidence) as JSON; its meaning belongs to the engine.

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use time::OffsetDateTime;

use super::backend::Backend;
use super::jobs::{self, NewJob};
use super::keys::Key;
use super::rows::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// The job kind that expires a held decision.
pub const EXPIRE_JOB: &str = "approval-expire";

/// Where a held decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    /// Waiting for approvers.
    Pending,
    /// Approved by enough approvers: the run that acted on it followed.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// Nobody approved it in time.
    Expired,
}

impl ApprovalState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Self {
        match name {
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            _ => Self::Pending,
        }
    }
}

/// One approver's vote: who (an approver token's fingerprint, a Slack user, an operator at the host) and
/// through which door (`api`, `page`, `slack`, `cli`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// Who: two votes with the same `who` are one approval.
    pub who: String,
    /// The door it came through.
    pub door: String,
    /// A name the approver gave, shown beside `who`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When (RFC 3339), filled in by the store.
    #[serde(default)]
    pub at: String,
}

/// A held decision, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Approval {
    /// Its id: the id of the run that held it.
    pub id: String,
    /// The target's name.
    pub target: String,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// Distinct approvers it needs.
    pub required: u32,
    /// Who approved it so far.
    pub approvers: Vec<Approver>,
    /// When it was held.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// How it was closed (who rejected it and why, the run that acted on it), once closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<serde_json::Value>,
    /// The engine's decision, summary and evidence.
    pub body: serde_json::Value,
}

/// A decision to hold.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// The run that held it.
    pub id: String,
    pub(super) key: Key,
    /// Distinct approvers it needs.
    pub required: u32,
    /// When it expires (ms on the database's clock).
    pub expires_ms: i64,
    /// The engine's JSON.
    pub body: String,
}

impl NewApproval {
    /// A decision held for `target` by the run `id`, expiring at `expires_at`.
    pub fn new(
        id: String,
        target: &crate::target::TargetId,
        required: u32,
        expires_at: OffsetDateTime,
        body: String,
    ) -> Self {
        Self {
            id,
            key: Key::from(target),
            required,
            expires_ms: super::millis(expires_at),
            body,
        }
    }
}

/// What a vote (or a rejection, or an expiry) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Vote {
    /// No held decision has this id.
    Unknown,
    /// Counted; more approvers are needed.
    Counted(Box<Approval>),
    /// This approver had already approved: counted once.
    Again(Box<Approval>),
    /// This vote closed it: approved (act now), rejected or expired.
    Closed(Box<Approval>),
    /// It was already closed, or has expired: nothing changed.
    TooLate(Box<Approval>),
}

/// An approvals row: id, account, region, target, state, required, approvers, created_ms, expires_ms,
/// resolution, body.
type Row = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<String>,
    String,
);

const COLUMNS: &str = "id, account, region, target, state, required, approvers, created_ms, expires_ms, \
                       resolution, body";

fn from_row(
    (id, account, region, target, state, required, approvers, created, expires, resolution, body): Row,
) -> Approval {
    let at = |ms| from_millis(ms).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Approval {
        id,
        target,
        account,
        region,
        state: ApprovalState::parse(&state),
        required: u32::try_from(required).unwrap_or(1),
        approvers: serde_json::from_str(&approvers).unwrap_or_default(),
        created_at: at(created),
        expires_at: at(expires),
        resolution: resolution.and_then(|text| serde_json::from_str(&text).ok()),
        body: serde_json::from_str(&body).unwrap_or_default(),
    }
}

/// The key of the job that expires the held decision `id`.
fn expire_key(id: &str) -> String {
    format!("{EXPIRE_JOB}:{id}")
}

/// Holds `held` at `now` (ms), with the job that expires it.
async fn hold(tx: &mut Tx<'_>, held: &NewApproval, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO approvals (id, account, region, target, state, required, approvers, created_ms, \
         expires_ms, body) VALUES ($1, $2, $3, $4, 'pending', $5, '[]', $6, $7, $8) \
         ON CONFLICT(id) DO NOTHING",
    )
    .bind(held.id.as_str())
    .bind(held.key.account.as_str())
    .bind(held.key.region.as_str())
    .bind(held.key.target.as_str())
    .bind(i64::from(held.required))
    .bind(now)
    .bind(held.expires_ms)
    .bind(held.body.as_str())
    .execute(&mut **tx)
    .await?;
    let expire = NewJob {
        kind: EXPIRE_JOB,
        dedup_key: Some(expire_key(&held.id)),
        delay_ms: held.expires_ms.saturating_sub(now).max(0),
        payload: serde_json::json!({ "id": held.id }).to_string(),
        bounded: false,
    };
    jobs::enqueue(tx, &[&expire], now).await?;
    Ok(())
}

/// What a run's record writes to the approvals table in its commit.
#[derive(Debug, Clone)]
pub enum ApprovalWrite {
    /// A run holds its decision (and the job that expires it is added).
    Hold(NewApproval),
    /// A run acted on the approved decision with this id: its resolution names the run.
    ActedOn(String),
    /// The expiry job of the decision with this id ran: it is closed as expired if still pending.
    Expire(String),
}

/// Applies `write` for the record `run_id` at `now` (ms).
pub(super) async fn apply(
    tx: &mut Tx<'_>,
    backend: Backend,
    write: &ApprovalWrite,
    run_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    match write {
        ApprovalWrite::Hold(held) => hold(tx, held, now).await,
        ApprovalWrite::ActedOn(id) => acted_by(tx, id, run_id).await,
        ApprovalWrite::Expire(id) => vote(tx, backend, id, &Change::Expire, now)
            .await
            .map(|_| ()),
    }
}

/// How a vote changes a held decision.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// An approval by this approver.
    Approve(Approver),
    /// A rejection by this approver, with the reason.
    Reject(Approver, String),
    /// The expiry job: closes it if it is still pending at its expiry.
    Expire,
}

/// Applies `change` to the held decision `id` at `now` (ms), locked for the transaction: a pending decision
/// before its expiry counts an approval (closing it once enough distinct approvers approved), or is closed by
/// a rejection; one past its expiry is closed by the expiry job only.
pub(super) async fn vote(
    tx: &mut Tx<'_>,
    backend: Backend,
    id: &str,
    change: &Change,
    now: i64,
) -> Result<Vote, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1{lock}");
    let Some(row) = sqlx::query_as::<_, Row>(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(Vote::Unknown);
    };
    let expires_ms = row.8;
    let mut approval = from_row(row);
    let expired = now >= expires_ms;
    let stamped = |approver: &Approver| Approver {
        at: from_millis(now)
            .and_then(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        ..approver.clone()
    };
    let (state, resolution) = match change {
        _ if approval.state != ApprovalState::Pending => {
            return Ok(Vote::TooLate(Box::new(approval)));
        }
        Change::Expire if !expired => return Ok(Vote::TooLate(Box::new(approval))),
        Change::Expire => (ApprovalState::Expired, None),
        _ if expired => return Ok(Vote::TooLate(Box::new(approval))),
        Change::Approve(approver) => {
            if approval.approvers.iter().any(|a| a.who == approver.who) {
                return Ok(Vote::Again(Box::new(approval)));
            }
            approval.approvers.push(stamped(approver));
            let enough = approval.approvers.len() >= approval.required as usize;
            let state = if enough {
                ApprovalState::Approved
            } else {
                ApprovalState::Pending
            };
            (state, None)
        }
        Change::Reject(approver, reason) => (
            ApprovalState::Rejected,
            Some(serde_json::json!({ "rejected-by": stamped(approver), "reason": reason })),
        ),
    };
    approval.state = state;
    let closed = state != ApprovalState::Pending;
    if let Some(resolution) = &resolution {
        approval.resolution = Some(resolution.clone());
    }
    sqlx::query(
        "UPDATE approvals SET state = $2, approvers = $3, resolution = $4, resolved_ms = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(serde_json::to_string(&approval.approvers).unwrap_or_else(|_| "[]".into()))
    .bind(resolution.map(|value| value.to_string()))
    .bind(closed.then_some(now))
    .execute(&mut **tx)
    .await?;
    if !closed {
        return Ok(Vote::Counted(Box::new(approval)));
    }
    if !matches!(change, Change::Expire) {
        jobs::cancel(tx, &expire_key(id)).await?;
    }
    Ok(Vote::Closed(Box::new(approval)))
}

/// Records which run acted on the approved decision `id` (its resolution).
async fn acted_by(tx: &mut Tx<'_>, id: &str, run_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE approvals SET resolution = $2 WHERE id = $1")
        .bind(id)
        .bind(serde_json::json!({ "run": run_id }).to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// The held decision `id`, in whatever state.
pub(super) async fn get(readers: &AnyPool, id: &str) -> Result<Option<Approval>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1");
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(readers)
        .await?;
    Ok(row.map(from_row))
}

/// Every decision still waiting (on the database's clock), the soonest to expire first.
pub(super) async fn pending(
    readers: &AnyPool,
    backend: Backend,
) -> Result<Vec<Approval>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' AND expires_ms > {} \
         ORDER BY expires_ms, id",
        backend.now_sql()
    );
    let rows: Vec<Row> = sqlx::query_as(&sql).fetch_all(readers).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// How many decisions each target held, by state: (account, region, target, state, count).
pub(super) async fn counts(
    readers: &AnyPool,
) -> Result<Vec<(String, String, String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account, region, target, state, COUNT(*) FROM approvals \
         GROUP BY account, region, target, state",
    )
    .fetch_all(readers)
    .await
}

/// Removes the closed decisions held before `before_ms`.
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM approvals WHERE created_ms < $1 AND state <> 'pending'")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
