//! The one error type of the HTTP layer. 4xx answers carry a code and a sentence for the caller;
//! 5xx answers are opaque to the caller and logged once with their context.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::audit::AuditError;
use crate::engine::EngineError;

/// An error answer: `{"error": code, "detail": sentence}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// A sentence for the caller (opaque for 5xx).
    pub detail: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// An error with this status, code and sentence. The sentence may quote what the caller sent, so it is
    /// bounded and escaped here, once for the answer, the audit record and the logs.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: crate::untrusted::bounded(&detail.into()),
        }
    }

    /// 400: the body is not what the route takes.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: credentials missing or wrong.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 5xx for a transient fault: logged with its cause, answered without it.
    pub fn unavailable(code: &'static str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(code, error = %cause, "request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "a dependency failed; retry later",
        )
    }

    /// Whether this error is an authentication failure (recorded as such in the audit trail).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            detail: &self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body exceeds server.max_body_bytes",
            )
        } else if stalled(&rejection) {
            Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "the request body stalled for longer than server.header_read_timeout_secs",
            )
        } else {
            Self::bad_request("unreadable-body", rejection.body_text())
        }
    }
}

/// Whether the body was cut off by the stall timeout rather than being malformed.
fn stalled(rejection: &BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = cause {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        if err.is_transient() {
            tracing::error!(code = err.code(), error = %err, "request failed");
        } else if status.is_server_error() {
            tracing::error!(code = err.code(), error = %err, "AWS refused a call: check the IAM policy");
        }
        Self::new(status, err.code(), err.public_detail())
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        Self::unavailable("audit-unavailable", &err)
    }
}

/// Parses a JSON object body: 400 `malformed-json` when it is not JSON, 400 `invalid-request` when it is not an
/// object (serde would read a struct from an array too) or its fields are wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let object = body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_none_or(|first| *first == b'{');
    if !object && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(ApiError::bad_request(
            "invalid-request",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            ApiError::bad_request("invalid-request", err.to_string())
        }
        _ => ApiError::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {err}"),
        ),
    })
}

/// A body field that, when given, is of its type (a string, a map): `null` is refused like any other wrong type
/// rather than read as absent, so that a request names its target (and its place) in exactly one way.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}
