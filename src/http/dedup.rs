//! Redeliveries: the answer a duplicate gets is the first delivery's, waited for (bounded) while the first is
//! still being handled.

use std::time::Duration;

use axum::http::StatusCode;

use super::ApiError;
use crate::audit::{AuditStore, Claim};

/// How long a redelivery waits for the first delivery's answer (SNS waits about 15 s for an answer).
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The first delivery's answer for `key`. When the first delivery failed and released its claim, or is still
/// running after the wait, answers 503 so the sender retries later.
pub async fn first_answer(
    audit: &AuditStore,
    key: &str,
    first_id: &str,
    mut answer: Option<serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while answer.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        answer = match audit.delivery(key).await? {
            Some(Claim::Existing { summary, .. }) => summary,
            Some(Claim::New) | None => return Err(retry_later(first_id)),
        };
    }
    answer.ok_or_else(|| retry_later(first_id))
}

fn retry_later(first_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "delivery-in-progress",
        format!("an earlier delivery of this message ({first_id}) has not finished; retry later"),
    )
}
