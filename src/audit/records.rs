//! Reads of `audit_records`, the view of each record's newest chain entry: the timeline and its filters, one
//! record, a target's last run, when it was last acted on (with the database's clock) and what the budgets
//! count. Chain entries are written by `entries`; this module only reads.

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::backend::Backend;
use super::keys;
use super::rows::{COLUMNS, record_from_row};
use super::times::{from_millis, millis};
use super::{AuditError, AuditRecord};
use crate::target::TargetId;

/// Which records `AuditStore::search` returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this target.
    pub target: Option<String>,
    /// Only targets of this AWS account id.
    pub account: Option<String>,
    /// Only targets of this region.
    pub region: Option<String>,
    /// Only this source (`sns`, `manual`, ...).
    pub source: Option<String>,
    /// Only this outcome (`completed`, `refused`, ...).
    pub outcome: Option<String>,
    /// Arrived at or after.
    pub since: Option<OffsetDateTime>,
    /// Arrived at or before.
    pub until: Option<OffsetDateTime>,
    /// Older than this record (the next page).
    pub before: Option<String>,
    /// Leave out the access records (page views and logins, source `audit-read`) and the summaries of
    /// suppressed unauthenticated rejections, so that the runs are not pages down.
    pub runs_only: bool,
}

/// The database's clock, read once and carried forward by this process's monotonic clock: the one clock
/// that times replicas share are taken from (cooldowns, budget windows, when a run acted).
#[derive(Debug, Clone, Copy)]
pub struct SharedClock {
    at: OffsetDateTime,
    read: std::time::Instant,
}

impl SharedClock {
    /// The clock as read (`None`: the database gave no time; this process's own clock stands in).
    pub(super) fn at(ms: Option<i64>) -> Self {
        Self {
            at: ms
                .and_then(from_millis)
                .unwrap_or_else(OffsetDateTime::now_utc),
            read: std::time::Instant::now(),
        }
    }

    /// The database's time now.
    pub fn now(&self) -> OffsetDateTime {
        self.at + self.read.elapsed()
    }
}

/// When a target was last acted on, with the database's clock read at the same moment.
#[derive(Debug, Clone, Copy)]
pub struct LastAction {
    /// When instances of the target were last replaced (or were being replaced), if ever.
    pub at: Option<OffsetDateTime>,
    /// The database's clock.
    pub clock: SharedClock,
}

/// How much earlier than `Filter::since` a record's id may be dated: replicas' clocks differ.
const ID_CLOCK_SLACK_MS: i64 = 600_000;

/// The newest records that pass `filter`, at most `limit`, older than the record `filter.before` when set
/// (the next page): the audit page's timeline.
pub(super) async fn search(
    readers: &AnyPool,
    filter: &Filter,
    limit: u32,
) -> Result<Vec<AuditRecord>, AuditError> {
    let mut conditions = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    for (column, value) in [
        ("target", &filter.target),
        ("account", &filter.account),
        ("region", &filter.region),
        ("source", &filter.source),
        ("outcome", &filter.outcome),
    ] {
        if let Some(value) = value {
            texts.push(value);
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    if let Some(before) = &filter.before {
        texts.push(before);
        conditions.push(format!("id < ${}", texts.len()));
    }
    if filter.runs_only {
        conditions
            .push("source <> 'audit-read' AND (error IS NULL OR error <> 'suppressed')".to_owned());
    }
    // Ids are ULIDs, which begin with their time: a lower bound on the id (ten minutes early, for a replica's
    // clock) lets the newest-first walk stop at `since` instead of reading on through older records.
    let floor = filter.since.map(|since| {
        let ms = u64::try_from(millis(since) - ID_CLOCK_SLACK_MS).unwrap_or(0);
        ulid::Ulid::from_parts(ms, 0).to_string()
    });
    if let Some(floor) = &floor {
        texts.push(floor);
        conditions.push(format!("id >= ${}", texts.len()));
    }
    for (op, at) in [(">=", filter.since), ("<=", filter.until)] {
        if let Some(at) = at {
            times.push(millis(at));
            conditions.push(format!("at_ms {op} ${}", texts.len() + times.len()));
        }
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_records {filter_sql} ORDER BY id DESC LIMIT ${}",
        texts.len() + times.len() + 1
    );
    let mut query = sqlx::query(&sql);
    for text in texts {
        query = query.bind(text);
    }
    for at in times {
        query = query.bind(at);
    }
    let rows = query.bind(i64::from(limit)).fetch_all(readers).await?;
    rows.iter().map(record_from_row).collect()
}

/// The newest check recorded for the run `run_id` (after an escalation, the watch that saw it resolved),
/// read through the index of which run each check checked (`run_checks`), not the records' JSON.
pub(super) async fn recovery_of(
    readers: &AnyPool,
    run_id: &str,
) -> Result<Option<AuditRecord>, AuditError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_records WHERE id = \
         (SELECT record_id FROM run_checks WHERE run_id = $1 ORDER BY record_id DESC LIMIT 1)"
    ))
    .bind(run_id)
    .fetch_optional(readers)
    .await?;
    row.as_ref().map(record_from_row).transpose()
}

/// The newest run of `target` (acting, completed, refused, held or would-act; from an alert, a person or the
/// CLI).
pub(super) async fn last_run(
    readers: &AnyPool,
    target: &TargetId,
) -> Result<Option<AuditRecord>, AuditError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_records WHERE {} AND outcome IN ('completed', 'refused', 'acting', 'held', 'would-act') \
         AND source NOT IN ('admin', 'notify', 'recovery-check', 'audit-read') ORDER BY at_ms DESC, id DESC LIMIT 1",
        keys::matches("audit_records", 1)
    ))
    .bind(target.account.as_str())
    .bind(target.region.as_str())
    .bind(target.name.as_str())
    .fetch_optional(readers)
    .await?;
    row.as_ref().map(record_from_row).transpose()
}

/// The newest `limit` runs of `target` and their recovery checks, newest first: what an approver sees of its
/// history.
pub(super) async fn recent_runs(
    readers: &AnyPool,
    target: &TargetId,
    limit: u32,
) -> Result<Vec<AuditRecord>, AuditError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_records WHERE {} \
         AND outcome NOT IN ('rejected', 'duplicate', 'ignored', 'confirmed') \
         AND source NOT IN ('admin', 'notify', 'audit-read') ORDER BY at_ms DESC, id DESC LIMIT $4",
        keys::matches("audit_records", 1)
    ))
    .bind(target.account.as_str())
    .bind(target.region.as_str())
    .bind(target.name.as_str())
    .bind(i64::from(limit))
    .fetch_all(readers)
    .await?;
    rows.iter().map(record_from_row).collect()
}

/// A target's health as one run or recovery check saw it: what the audit page's charts draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPoint {
    /// The record.
    pub id: String,
    /// When.
    pub at: OffsetDateTime,
    /// Instances InService then.
    pub in_service: u32,
    /// Instances registered but not InService then.
    pub not_in_service: u32,
    /// Instances the run acted on (0 for a check).
    pub acted: u32,
}

impl HealthPoint {
    /// The point a record gives, when it read the target (its snapshot is in its detail).
    pub fn of(record: &AuditRecord) -> Option<Self> {
        let instances = record.detail["seen"]["instances"].as_array()?;
        let in_service = instances
            .iter()
            .filter(|instance| instance["health"]["state"] == "InService")
            .count();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Some(Self {
            id: record.id.clone(),
            at: record.at,
            in_service: count(in_service),
            not_in_service: count(instances.len() - in_service),
            acted: record.acted,
        })
    }
}

/// What `target`'s runs and recovery checks since `since` saw of it, oldest first, at most `limit` of the
/// newest that read it (a refusal before the read has no snapshot): one query on the (target, time) index.
pub(super) async fn health_points(
    readers: &AnyPool,
    target: &TargetId,
    since: OffsetDateTime,
    limit: u32,
) -> Result<Vec<HealthPoint>, AuditError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_records WHERE {} AND at_ms >= $4 \
         AND source NOT IN ('admin', 'notify', 'audit-read') AND detail LIKE '%\"seen\":%' \
         ORDER BY at_ms DESC, id DESC LIMIT $5",
        keys::matches("audit_records", 1)
    ))
    .bind(target.account.as_str())
    .bind(target.region.as_str())
    .bind(target.name.as_str())
    .bind(millis(since))
    .bind(i64::from(limit))
    .fetch_all(readers)
    .await?;
    let mut points = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(point) = HealthPoint::of(&record_from_row(row)?) {
            points.push(point);
        }
    }
    points.reverse();
    Ok(points)
}

/// One group of `activity`: (period start in ms, source, outcome, records, of them real runs that acted).
pub type Activity = (i64, String, String, i64, i64);

/// The records of runs and checks about `target` (or, `None`, about every target) since `since`, grouped by
/// period of `period_ms`, source and outcome, with how many of each group acted: what the audit page's charts
/// of runs and a target's way up are drawn from, in one pass over the range's rows, oldest first.
pub(super) async fn activity(
    readers: &AnyPool,
    target: Option<&TargetId>,
    since: OffsetDateTime,
    period_ms: i64,
) -> Result<Vec<Activity>, AuditError> {
    let of_target = if target.is_some() {
        format!(" AND {}", keys::matches("audit_records", 3))
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT (at_ms / $1) * $1 AS period, source, outcome, COUNT(*), \
         SUM(CASE WHEN acted > 0 AND dry_run = 0 THEN 1 ELSE 0 END) FROM audit_records \
         WHERE at_ms >= $2 AND target IS NOT NULL AND source NOT IN ('admin', 'notify', 'audit-read'){of_target} \
         GROUP BY period, source, outcome ORDER BY period"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(period_ms.max(1))
        .bind(millis(since));
    if let Some(target) = target {
        query = query
            .bind(target.account.as_str())
            .bind(target.region.as_str())
            .bind(target.name.as_str());
    }
    Ok(query.fetch_all(readers).await?)
}

/// How many records each target has, by source and outcome, and how many of them acted: (account, region,
/// target, source, outcome, records, acted).
pub(super) async fn tally(readers: &AnyPool, since_ms: i64) -> Result<Vec<Tally>, AuditError> {
    Ok(sqlx::query_as(
        "SELECT account, region, target, source, outcome, COUNT(*), \
         SUM(CASE WHEN acted > 0 AND dry_run = 0 THEN 1 ELSE 0 END) FROM audit_records \
         WHERE at_ms >= $1 AND target IS NOT NULL GROUP BY account, region, target, source, outcome",
    )
    .bind(since_ms)
    .fetch_all(readers)
    .await?)
}

/// One row of `tally`.
pub type Tally = (
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
);

/// When instances of this target were last replaced (or were being replaced), for the cooldown: the time
/// the run acted (its arrival for records from before that was kept). `except` leaves out one run: the
/// dead attempt a takeover finishes is not a cooldown for it. The database's clock is read in the same
/// query, so the cooldown is judged on it.
pub(super) async fn last_action(
    readers: &AnyPool,
    backend: Backend,
    target: &TargetId,
    except: &[&str],
) -> Result<LastAction, AuditError> {
    let sql = format!(
        "SELECT MAX(COALESCE(acted_ms, at_ms)), {} FROM audit_records \
         WHERE {} AND acted > 0 AND dry_run = 0 AND id != $4 AND id != $5",
        backend.now_sql(),
        keys::matches("audit_records", 1)
    );
    let (at_ms, now_ms): (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
        .bind(target.account.as_str())
        .bind(target.region.as_str())
        .bind(target.name.as_str())
        .bind(except.first().copied().unwrap_or_default())
        .bind(except.get(1).copied().unwrap_or_default())
        .fetch_one(readers)
        .await?;
    Ok(LastAction {
        at: at_ms.and_then(from_millis),
        clock: SharedClock::at(now_ms),
    })
}

/// One record by id.
pub(super) async fn get(readers: &AnyPool, id: &str) -> Result<Option<AuditRecord>, AuditError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_records WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(readers)
    .await?;
    row.as_ref().map(record_from_row).transpose()
}

/// A run acts within its request's time after it arrives (a takeover, an approval's run, a ladder's next step
/// are records of their own), and its arrival is stamped by its process's clock, which may be off the
/// database's by some seconds: a bound on arrival either side of a window that lets the budgets' reads seek it
/// in the index instead of reading every run that ever acted.
const ACTED_WITHIN_MS: i64 = 3_600_000;

/// Instances acted on (or being acted on) from `since` to `until`, on `target` or (`None`) on every
/// target, by real runs of any process sharing the store: what the budgets count.
pub(super) async fn acted_between(
    readers: &AnyPool,
    target: Option<&TargetId>,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<u64, AuditError> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(acted), 0) AS BIGINT) FROM audit_records \
         WHERE acted > 0 AND dry_run = 0 AND COALESCE(acted_ms, at_ms) BETWEEN $1 AND $2 \
         AND at_ms BETWEEN $1 - {ACTED_WITHIN_MS} AND $2 + {ACTED_WITHIN_MS}{}",
        if target.is_some() {
            format!(" AND {}", keys::matches("audit_records", 3))
        } else {
            String::new()
        }
    );
    let mut query = sqlx::query_scalar::<_, i64>(&sql)
        .bind(millis(since))
        .bind(millis(until));
    if let Some(target) = target {
        query = query
            .bind(target.account.as_str())
            .bind(target.region.as_str())
            .bind(target.name.as_str());
    }
    let acted = query.fetch_one(readers).await?;
    Ok(u64::try_from(acted).unwrap_or(0))
}
