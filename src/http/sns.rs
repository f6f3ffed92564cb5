//! `POST /sns`: SNS HTTP/S deliveries. Verify first (signature, certificate, topic, age), then confirm
//! subscriptions, acknowledge unsubscriptions, or — for notifications — claim the MessageId and remediate.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::json;
use time::OffsetDateTime;

use super::request_id::Arrival;
use super::{Answer, ApiError, AppState, audited, dedup, detached};
use crate::audit::{Claim, Outcome, RequestMeta, Source};
use crate::engine::{Summary, Trigger};
use crate::sns::{ConfirmError, Decision, MessageType, SnsError, Verified, decide};

/// The header SNS sends with the message type.
const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/sns", post(sns))
}

async fn sns(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut meta = arrival.meta(Source::Sns);
    let id = meta.id.clone();
    detached(&state.clone(), id, async move {
        let mut delivery = None;
        let result = handle(&state, &mut meta, &headers, body, &mut delivery).await;
        audited(&state, meta, result, delivery).await
    })
    .await
}

async fn handle(
    state: &AppState,
    meta: &mut RequestMeta,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    delivery: &mut Option<String>,
) -> Result<Answer, ApiError> {
    let body = body?;
    let type_header = headers
        .get(MESSAGE_TYPE_HEADER)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    let verified = state
        .sns
        .verifier
        .verify(&body, type_header, OffsetDateTime::now_utc())
        .await
        .map_err(|err| {
            meta.auth = err.code().to_owned();
            ApiError::from(err)
        })?;
    meta.auth = "passed".to_owned();
    meta.note("verified", verified.record());
    let message = verified.message();
    match message.kind {
        MessageType::SubscriptionConfirmation => confirm(state, meta, &verified).await,
        MessageType::UnsubscribeConfirmation => Ok(Answer {
            body: json!({
                "message": message.message,
                "topic-arn": message.topic_arn,
                "ignored": "unsubscribe confirmation verified and recorded; nothing done",
                "audit-id": meta.id,
            }),
            outcome: Outcome::Ignored,
            acted: 0,
        }),
        MessageType::Notification => {
            let key = format!("sns:{}", message.message_id);
            match state.audit.claim(&key, &meta.id, None).await? {
                Claim::New => {
                    *delivery = Some(key);
                    notify(state, meta, &verified).await
                }
                Claim::Existing { audit_id, summary } => {
                    duplicate(state, meta, &key, audit_id, summary).await
                }
            }
        }
    }
}

async fn confirm(
    state: &AppState,
    meta: &mut RequestMeta,
    verified: &Verified,
) -> Result<Answer, ApiError> {
    let message = verified.message();
    let how = state
        .sns
        .confirmer
        .confirm(verified)
        .await
        .map_err(|err| match err {
            ConfirmError::Untrusted(err) => ApiError::from(err),
            ConfirmError::Failed(_) => ApiError::unavailable("confirmation-failed", &err),
        })?;
    meta.note(
        "confirmed",
        json!({"topic_arn": message.topic_arn, "method": how}),
    );
    tracing::info!(topic_arn = %message.topic_arn, method = how, "SNS subscription confirmed");
    Ok(Answer {
        body: json!({
            "message": message.message,
            "topic-arn": message.topic_arn,
            "subscription": "confirmed",
            "audit-id": meta.id,
        }),
        outcome: Outcome::Confirmed,
        acted: 0,
    })
}

async fn notify(
    state: &AppState,
    meta: &mut RequestMeta,
    verified: &Verified,
) -> Result<Answer, ApiError> {
    let message = verified.message();
    let decision =
        decide(&state.config, &message.topic_arn, &message.message).map_err(|reason| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unusable-alert", reason)
        })?;
    meta.note("decision", format!("{decision:?}"));
    match decision {
        Decision::Ignore(reason) => {
            let summary = Summary::ignored(
                message.message.clone(),
                reason,
                state.config.remediation.dry_run,
                meta.id.clone(),
            );
            Ok(Answer {
                body: serde_json::to_value(summary).unwrap_or_default(),
                outcome: Outcome::Ignored,
                acted: 0,
            })
        }
        Decision::Remediate { load_balancer } => {
            let trigger = Trigger::new(
                verified.proof(),
                load_balancer,
                message.message.clone(),
                false,
            );
            Ok(state.engine.remediate(meta, &trigger).await?.into())
        }
    }
}

/// A redelivery: answer with the first delivery's summary marked `duplicate`. Nothing is done on AWS.
async fn duplicate(
    state: &AppState,
    meta: &mut RequestMeta,
    key: &str,
    first_id: String,
    summary: Option<serde_json::Value>,
) -> Result<Answer, ApiError> {
    meta.note("duplicate_of", &first_id);
    let mut body = dedup::first_answer(&state.audit, key, &first_id, summary).await?;
    body["duplicate"] = json!(true);
    Ok(Answer {
        body,
        outcome: Outcome::Duplicate,
        acted: 0,
    })
}

impl From<SnsError> for ApiError {
    fn from(err: SnsError) -> Self {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::FORBIDDEN);
        if status.is_server_error() {
            return ApiError::unavailable(err.code(), &err);
        }
        ApiError::new(status, err.code(), err.to_string())
    }
}
