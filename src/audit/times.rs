//! How the store writes a time (milliseconds since the Unix epoch) and reads it back, and how reflex shows
//! one. A leaf: the backend and the rows both use it.

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, as stored.
pub fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A time as reflex shows it (answers, records, pages, the command line): RFC 3339, or nothing when it cannot
/// be written so.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A stored time back.
pub fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
