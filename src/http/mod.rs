//! HTTP routes. Each route module ends in `router()`; they are merged here, with the shared state and limits.

mod audit;
mod auth;
mod error;
mod health;
mod remediate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::audit::{AuditStore, Outcome, RequestMeta};
use crate::config::Config;
use crate::engine::{Engine, Run};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The remediation engine.
    pub engine: Arc<Engine>,
    /// The audit trail.
    pub audit: AuditStore,
}

/// All routes with the body limit and request tracing.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .merge(remediate::router())
        .merge(audit::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The caller's address as recorded in the audit trail.
fn caller(addr: SocketAddr) -> Option<String> {
    Some(addr.to_string())
}

/// Writes the request's final audit record, then answers. An answer is only sent once its record is durable;
/// when the audit trail cannot be written, the caller gets a 503 and may retry.
async fn audited(
    state: &AppState,
    mut meta: RequestMeta,
    result: Result<Run, ApiError>,
) -> Response {
    let (record, response) = match result {
        Ok(run) => {
            if meta.auth == "not-checked" {
                meta.auth = "passed".to_owned();
            }
            meta.note("summary", &run.summary);
            let record = meta.record(run.outcome(), StatusCode::OK.as_u16(), None, run.acted);
            (
                record,
                (StatusCode::OK, axum::Json(run.summary)).into_response(),
            )
        }
        Err(err) => {
            meta.auth = if err.is_auth_failure() {
                err.code.to_owned()
            } else if meta.auth == "not-checked" {
                "passed".to_owned()
            } else {
                meta.auth
            };
            meta.note("error", &err.detail);
            let record = meta.record(Outcome::Rejected, err.status.as_u16(), Some(err.code), 0);
            (record, err.into_response())
        }
    };
    match state.audit.put(record).await {
        Ok(()) => response,
        Err(err) => ApiError::from(err).into_response(),
    }
}
