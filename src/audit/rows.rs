//! Between records and rows: a record's columns as stored and hashed (`StoredRow`), the multi-row insert of
//! chain entries, and reading rows back into typed records. Enums stay enums until here.

use sqlx::Row as _;
use sqlx::any::{AnyArguments, AnyRow};
use time::OffsetDateTime;

use super::backend::{Backend, row_values};
use super::times::{from_millis, millis};

use super::{AuditError, AuditRecord, Auth, Outcome, Source};

/// The columns of a record (`audit_records`, the view of each record's newest entry), in the order they are
/// bound.
pub const COLUMNS: &str = "id, at_ms, source, caller, auth, target, outcome, status, error, dry_run, acted, duration_ms, detail, acted_ms, account, region";

/// The insert of `rows` chain entries in one statement: the record's columns, then `seq`, `prev_hash`, `hash`.
pub fn insert_sql(backend: Backend, rows: usize) -> String {
    let values = row_values(backend, rows, 19);
    format!("INSERT INTO audit_entries ({COLUMNS}, seq, prev_hash, hash) VALUES {values}")
}

/// One version of a record exactly as its columns hold it: what is stored, hashed into the chain, and read
/// back. Numbers and flags are 64-bit integers in both stores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredRow {
    /// The record id (a ULID; the intent and the outcome of a run share it).
    pub id: String,
    /// When the request arrived (ms since the Unix epoch).
    pub at_ms: i64,
    /// Who sent it (`sns`, `manual`, ...).
    pub source: String,
    /// The peer address or identity.
    pub caller: Option<String>,
    /// How it was authenticated.
    pub auth: String,
    /// The target acted on, when there is one.
    pub target: Option<String>,
    /// `acting`, `completed`, `rejected`, ...
    pub outcome: String,
    /// The HTTP status answered (0 while acting).
    pub status: i64,
    /// The error code, when it failed.
    pub error: Option<String>,
    /// 1 for a dry run.
    pub dry_run: i64,
    /// How many instances it acted on.
    pub acted: i64,
    /// How long the request took.
    pub duration_ms: i64,
    /// The rest of the record, as JSON text.
    pub detail: String,
    /// When the run acted (ms), for the cooldown.
    pub acted_ms: Option<i64>,
    /// The target's AWS account (entries from before accounts were recorded have none; the store's home
    /// account is theirs).
    pub account: Option<String>,
    /// The target's AWS region (likewise).
    pub region: Option<String>,
}

impl StoredRow {
    /// The columns of `record`.
    pub fn of(record: &AuditRecord) -> Self {
        Self {
            id: record.id.clone(),
            at_ms: millis(record.at),
            source: record.source.as_str().to_owned(),
            caller: record.caller.clone(),
            auth: record.auth.as_str().to_owned(),
            target: record.target.clone(),
            outcome: record.outcome.as_str().to_owned(),
            status: i64::from(record.status),
            error: record.error.clone(),
            dry_run: i64::from(record.dry_run),
            acted: i64::from(record.acted),
            duration_ms: i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
            detail: record.detail.to_string(),
            acted_ms: record.acted_at.map(millis),
            account: record.account.clone(),
            region: record.region.clone(),
        }
    }

    /// The columns as a query returned them.
    pub fn read(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            at_ms: row.try_get("at_ms")?,
            source: row.try_get("source")?,
            caller: row.try_get("caller")?,
            auth: row.try_get("auth")?,
            target: row.try_get("target")?,
            outcome: row.try_get("outcome")?,
            status: row.try_get("status")?,
            error: row.try_get("error")?,
            dry_run: row.try_get("dry_run")?,
            acted: row.try_get("acted")?,
            duration_ms: row.try_get("duration_ms")?,
            detail: row.try_get("detail")?,
            acted_ms: row.try_get("acted_ms")?,
            account: row.try_get("account")?,
            region: row.try_get("region")?,
        })
    }

    /// Binds the columns, in `COLUMNS` order.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>> {
        query
            .bind(self.id.as_str())
            .bind(self.at_ms)
            .bind(self.source.as_str())
            .bind(self.caller.as_deref())
            .bind(self.auth.as_str())
            .bind(self.target.as_deref())
            .bind(self.outcome.as_str())
            .bind(self.status)
            .bind(self.error.as_deref())
            .bind(self.dry_run)
            .bind(self.acted)
            .bind(self.duration_ms)
            .bind(self.detail.as_str())
            .bind(self.acted_ms)
            .bind(self.account.as_deref())
            .bind(self.region.as_deref())
    }

    /// The content the chain hashes: every column, as one JSON array in `COLUMNS` order. An entry without an
    /// account and region (every entry from before they were recorded) hashes as it always did.
    pub fn canonical(&self) -> String {
        let columns = (
            &self.id,
            self.at_ms,
            &self.source,
            &self.caller,
            &self.auth,
            &self.target,
            &self.outcome,
            self.status,
            &self.error,
            self.dry_run,
            self.acted,
            self.duration_ms,
            &self.detail,
            self.acted_ms,
        );
        let Ok(mut text) = serde_json::to_string(&columns) else {
            return String::new();
        };
        if self.account.is_some() || self.region.is_some() {
            // The same array with the place as two more elements.
            let place = serde_json::to_string(&(&self.account, &self.region)).unwrap_or_default();
            text.pop();
            text.push(',');
            text.push_str(place.trim_start_matches('['));
        }
        text
    }

    /// The typed record again.
    pub fn into_record(self) -> Result<AuditRecord, AuditError> {
        Ok(AuditRecord {
            at: from_millis(self.at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            source: Source::parse(&self.source).ok_or_else(|| unknown("source", &self.source))?,
            auth: Auth::parse(&self.auth),
            outcome: Outcome::parse(&self.outcome)
                .ok_or_else(|| unknown("outcome", &self.outcome))?,
            status: narrow(self.status, "status")?,
            dry_run: self.dry_run != 0,
            acted: narrow(self.acted, "acted")?,
            duration_ms: self.duration_ms.max(0).unsigned_abs(),
            detail: serde_json::from_str(&self.detail)
                .unwrap_or(serde_json::Value::String(self.detail)),
            acted_at: self.acted_ms.and_then(from_millis),
            id: self.id,
            caller: self.caller,
            target: self.target,
            account: self.account,
            region: self.region,
            error: self.error,
        })
    }
}

/// A record version ready to be appended: its columns and the content the chain hashes, both made by the
/// request that writes it rather than by the single writer that appends it.
#[derive(Debug)]
pub struct PreparedRow {
    /// The columns.
    pub row: StoredRow,
    /// `row.canonical()`.
    pub canonical: String,
}

impl PreparedRow {
    /// The columns of `record` and their canonical content.
    pub fn of(record: &AuditRecord) -> Self {
        let row = StoredRow::of(record);
        let canonical = row.canonical();
        Self { row, canonical }
    }
}

/// A stored record, typed again.
pub fn record_from_row(row: &AnyRow) -> Result<AuditRecord, AuditError> {
    StoredRow::read(row)?.into_record()
}

fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T, AuditError> {
    T::try_from(value).map_err(|_| unknown(column, &value.to_string()))
}

fn unknown(column: &str, value: &str) -> AuditError {
    AuditError::Database(sqlx::Error::Decode(
        format!("audit_records.{column} holds an unknown value {value:?}").into(),
    ))
}
