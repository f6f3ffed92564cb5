//! The request body of an audited route, read whole within a total deadline (`server.body_timeout_secs`), on
//! top of the per-chunk stall timeout: a client trickling a byte every few seconds cannot hold a connection and
//! its buffer forever. The outcome, body or error, goes to the handler so that the refusal is audited.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::{ApiError, AppState};

/// The whole body, or why it could not be read (too large, stalled, too slow overall).
#[derive(Debug)]
pub struct WholeBody(pub Result<Bytes, ApiError>);

impl FromRequest<AppState> for WholeBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = Duration::from_secs(state.config.server.body_timeout_secs);
        let read = tokio::time::timeout(limit, Bytes::from_request(request, state)).await;
        Ok(Self(match read {
            Ok(bytes) => bytes.map_err(ApiError::from),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "the request body was not complete within server.body_timeout_secs",
            )),
        }))
    }
}
