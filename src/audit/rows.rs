//! Between records and rows: the multi-row upsert, and reading rows back into typed records. Enums stay enums
//! until here.

use sqlx::Row as _;
use sqlx::any::{AnyArguments, AnyRow};
use time::OffsetDateTime;

use super::backend::values;

use super::{AuditError, AuditRecord, Auth, Outcome, Source};

/// The columns of `audit_records`, in the order the upsert binds them.
pub const COLUMNS: &str = "id, at_ms, source, caller, auth, target, outcome, status, error, dry_run, acted, duration_ms, detail, acted_ms";

/// Rows per multi-row upsert statement, largest first: a batch is written with as few statements as possible
/// (each statement is one round trip to the database), from a fixed set of cached statements.
pub const UPSERT_CHUNKS: [usize; 3] = [64, 8, 1];

/// The upsert of `rows` audit records in one statement.
pub fn upsert_sql(rows: usize) -> String {
    let values = values(rows, 14, 1);
    format!(
        "INSERT INTO audit_records ({COLUMNS}) VALUES {values} \
         ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, status = excluded.status, \
         error = excluded.error, acted = excluded.acted, duration_ms = excluded.duration_ms, \
         detail = excluded.detail, target = excluded.target, auth = excluded.auth, \
         acted_ms = excluded.acted_ms"
    )
}

/// Binds one record's columns, in `COLUMNS` order. Numbers and flags are 64-bit integers in both stores.
pub fn bind_record<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>,
    record: &'q AuditRecord,
) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>> {
    query
        .bind(record.id.as_str())
        .bind(millis(record.at))
        .bind(record.source.as_str())
        .bind(record.caller.as_deref())
        .bind(record.auth.as_str())
        .bind(record.target.as_deref())
        .bind(record.outcome.as_str())
        .bind(i64::from(record.status))
        .bind(record.error.as_deref())
        .bind(i64::from(record.dry_run))
        .bind(i64::from(record.acted))
        .bind(i64::try_from(record.duration_ms).unwrap_or(i64::MAX))
        .bind(record.detail.to_string())
        .bind(record.acted_at.map(millis))
}

/// A stored record, typed again.
pub fn record_from_row(row: &AnyRow) -> Result<AuditRecord, AuditError> {
    let detail: String = row.try_get("detail")?;
    let source: String = row.try_get("source")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: from_millis(row.try_get("at_ms")?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        source: Source::parse(&source).ok_or_else(|| unknown("source", &source))?,
        caller: row.try_get("caller")?,
        auth: Auth::parse(row.try_get("auth")?),
        target: row.try_get("target")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| unknown("outcome", &outcome))?,
        status: narrow(row.try_get("status")?, "status")?,
        error: row.try_get("error")?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
        acted: narrow(row.try_get("acted")?, "acted")?,
        duration_ms: row.try_get::<i64, _>("duration_ms")?.max(0).unsigned_abs(),
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        acted_at: row
            .try_get::<Option<i64>, _>("acted_ms")?
            .and_then(from_millis),
    })
}

fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T, AuditError> {
    T::try_from(value).map_err(|_| unknown(column, &value.to_string()))
}

fn unknown(column: &str, value: &str) -> AuditError {
    AuditError::Database(sqlx::Error::Decode(
        format!("audit_records.{column} holds an unknown value {value:?}").into(),
    ))
}

/// Milliseconds since the Unix epoch, as stored.
pub fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A stored time back.
pub fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
