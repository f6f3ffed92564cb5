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
use super::times::from_millis;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// The job kind that expires a held decision.
pub const EXPIRE_JOB: &str = "approval-expire";
/// The job kind that acts on an approved decision when the vote's own run did not finish it (it failed, or its
/// process died): added in the commit that approves, due once the approver's own run has had its time; removed
/// by the run that acts.
pub const ACT_JOB: &str = "approval-act";

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
    /// Stored by a newer release with a state this one does not know: closed to this release.
    Unknown,
}

impl ApprovalState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }

    /// Reads a stored name back; a name this release does not know is `Unknown`, never `Pending`.
    pub fn parse(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            _ => Self::Unknown,
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
    /// Who the same approver was recorded as by an earlier release: a vote already counted under one of
    /// them counts as theirs. Not stored.
    #[serde(skip)]
    pub aliases: Vec<String>,
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
    pub body: serde_json::Value,
}

impl NewApproval {
    /// A decision held for `target` by the run `id`, expiring at `expires_at`.
    pub fn new(
        id: String,
        target: &crate::target::TargetId,
        required: u32,
        expires_at: OffsetDateTime,
        body: serde_json::Value,
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
        // Unreadable values close the decision rather than open it.
        state: match serde_json::from_str::<Vec<Approver>>(&approvers) {
            Ok(_) if required >= 1 => ApprovalState::parse(&state),
            _ => ApprovalState::Unknown,
        },
        required: u32::try_from(required).unwrap_or(u32::MAX),
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

/// The key of the job that acts on the approved decision `id`.
fn act_key(id: &str) -> String {
    format!("{ACT_JOB}:{id}")
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
    .bind(held.body.to_string())
    .execute(&mut **tx)
    .await?;
    let expire = NewJob {
        kind: EXPIRE_JOB,
        dedup_key: Some(expire_key(&held.id)),
        delay_ms: held.expires_ms.saturating_sub(now).max(0),
        payload: json_id(&held.id),
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
    /// A run acted on the approved decision with this id: its resolution names the run, and the decision's
    /// act job is removed.
    ActedOn(String),
}

/// Applies `write` for the record `run_id` at `now` (ms).
pub(super) async fn apply(
    tx: &mut Tx<'_>,
    write: &ApprovalWrite,
    run_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    match write {
        ApprovalWrite::Hold(held) => hold(tx, held, now).await,
        ApprovalWrite::ActedOn(id) => {
            acted_by(tx, id, run_id).await?;
            jobs::cancel(tx, &act_key(id)).await
        }
    }
}

/// How a vote changes a held decision.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// An approval by this approver; the one that approves adds the act job, due this long (ms) after.
    Approve(Approver, i64),
    /// A rejection by this approver, with the reason.
    Reject(Approver, String),
    /// The expiry job: closes it if it is still pending at its expiry.
    Expire,
}

/// Applies `change` to the held decision `id` at `now` (ms), locked for the transaction: a pending decision
/// before its expiry counts an approval (closing it once enough distinct approvers approved, with the job that
/// acts on it should the approver's own run not finish), or is closed by a rejection; one past its expiry is
/// closed by the expiry job only.
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
    let expired = now >= row.8;
    let mut approval = from_row(row);
    let at = from_millis(now).map(super::rfc3339).unwrap_or_default();
    let Some(resolution) = voted(&mut approval, change, expired, at) else {
        let again = approval.state == ApprovalState::Pending && !expired;
        return Ok(if again && matches!(change, Change::Approve(..)) {
            Vote::Again(Box::new(approval))
        } else {
            Vote::TooLate(Box::new(approval))
        });
    };
    let closed = approval.state != ApprovalState::Pending;
    sqlx::query(
        "UPDATE approvals SET state = $2, approvers = $3, resolution = $4, resolved_ms = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(approval.state.as_str())
    .bind(serde_json::to_string(&approval.approvers).unwrap_or_else(|_| "[]".into()))
    .bind(resolution.map(|value| value.to_string()))
    .bind(closed.then_some(now))
    .execute(&mut **tx)
    .await?;
    if !closed {
        return Ok(Vote::Counted(Box::new(approval)));
    }
    jobs::cancel(tx, &expire_key(id)).await?;
    if approval.state == ApprovalState::Approved {
        let act = NewJob {
            kind: ACT_JOB,
            dedup_key: Some(act_key(id)),
            delay_ms: match change {
                Change::Approve(_, act_after_ms) => *act_after_ms,
                _ => 0,
            },
            payload: json_id(id),
            bounded: false,
        };
        jobs::enqueue(tx, &[&act], now).await?;
    }
    Ok(Vote::Closed(Box::new(approval)))
}

/// `{"id": id}`: the payload of a decision's jobs.
fn json_id(id: &str) -> String {
    serde_json::json!({ "id": id }).to_string()
}

/// What `change` does to `approval` (`expired`: its expiry has passed; `at`: now, RFC 3339): `None` when it
/// changes nothing (closed already, past its expiry, not yet expired for the expiry job, or an approver
/// approving again), else the resolution to store (`Some(None)` when there is none). Pure.
fn voted(
    approval: &mut Approval,
    change: &Change,
    expired: bool,
    at: String,
) -> Option<Option<serde_json::Value>> {
    if approval.state != ApprovalState::Pending || expired != matches!(change, Change::Expire) {
        return None;
    }
    let stamped = |approver: &Approver| Approver {
        at: at.clone(),
        aliases: Vec::new(),
        ..approver.clone()
    };
    match change {
        Change::Expire => {
            approval.state = ApprovalState::Expired;
            Some(None)
        }
        Change::Approve(approver, _) => {
            let same = |a: &Approver| a.who == approver.who || approver.aliases.contains(&a.who);
            if approval.approvers.iter().any(same) {
                return None;
            }
            approval.approvers.push(stamped(approver));
            if approval.approvers.len() >= approval.required as usize {
                approval.state = ApprovalState::Approved;
            }
            Some(None)
        }
        Change::Reject(approver, reason) => {
            approval.state = ApprovalState::Rejected;
            let resolution =
                serde_json::json!({ "rejected-by": stamped(approver), "reason": reason });
            approval.resolution = Some(resolution.clone());
            Some(Some(resolution))
        }
    }
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

/// The decisions still waiting for `key`'s target (on the database's clock), the newest first: a new hold of
/// the same decision joins one of them rather than asking the approvers again.
pub(super) async fn pending_of(
    readers: &AnyPool,
    backend: Backend,
    key: &Key,
) -> Result<Vec<Approval>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' AND expires_ms > {} \
         AND account = $1 AND region = $2 AND target = $3 ORDER BY expires_ms DESC, id",
        backend.now_sql()
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
        .fetch_all(readers)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// How many decisions each target held, by state (a pending one past its expiry, whose job has not run yet,
/// counts as expired): (account, region, target, state, count).
pub(super) async fn counts(
    readers: &AnyPool,
    backend: Backend,
    since_ms: i64,
) -> Result<Vec<(String, String, String, String, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT account, region, target, \
         CASE WHEN state = 'pending' AND expires_ms <= {now} THEN 'expired' ELSE state END AS shown, \
         COUNT(*) FROM approvals WHERE created_ms >= $1 GROUP BY account, region, target, shown",
        now = backend.now_sql()
    );
    sqlx::query_as(&sql).bind(since_ms).fetch_all(readers).await
}

/// Removes the closed decisions held before `before_ms`.
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM approvals WHERE created_ms < $1 AND state <> 'pending'")
        .bind(before_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
