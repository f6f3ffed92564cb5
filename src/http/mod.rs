//! HTTP routes. Each route module ends in `router()`; they are merged here, with the shared state and limits.

mod audit;
mod auth;
mod dedup;
mod error;
mod health;
mod metrics;
mod remediate;
mod request_id;
mod sns;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::audit::{AuditStore, DeliveryUpdate, Outcome, RequestMeta};
use crate::config::Config;
use crate::engine::{Engine, Run};
use crate::metrics::Metrics;
use crate::sns::SnsReceiver;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The remediation engine.
    pub engine: Arc<Engine>,
    /// The audit trail.
    pub audit: AuditStore,
    /// The SNS verifier and subscription confirmer.
    pub sns: Arc<SnsReceiver>,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

/// All routes with the body limit and request tracing.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .merge(remediate::router())
        .merge(sns::router())
        .merge(webhooks::router())
        .merge(audit::router())
        .merge(health::router())
        .merge(metrics::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// A successful answer with what its audit record needs.
#[derive(Debug)]
pub struct Answer {
    /// The JSON answered with 200.
    pub body: serde_json::Value,
    /// The audit outcome.
    pub outcome: Outcome,
    /// Instances terminated.
    pub acted: u32,
}

impl From<Run> for Answer {
    fn from(run: Run) -> Self {
        Self {
            outcome: run.outcome(),
            acted: run.acted,
            body: serde_json::to_value(&run.summary).unwrap_or_default(),
        }
    }
}

/// Writes the request's final audit record, then answers. An answer is only sent once its record is durable;
/// when the audit trail cannot be written, the caller gets a 503 and may retry. `delivery` is the request's
/// claimed delivery key, completed with the answer on success and released on failure, in the same commit.
async fn audited(
    state: &AppState,
    mut meta: RequestMeta,
    result: Result<Answer, ApiError>,
    delivery: Option<String>,
) -> Response {
    let (record, response, update) = match result {
        Ok(answer) => {
            if meta.auth == "not-checked" {
                meta.auth = "passed".to_owned();
            }
            meta.note("answer", &answer.body);
            let record = meta.record(answer.outcome, StatusCode::OK.as_u16(), None, answer.acted);
            let update = delivery.map(|key| DeliveryUpdate::Complete {
                key,
                summary: answer.body.clone(),
            });
            (
                record,
                (StatusCode::OK, axum::Json(answer.body)).into_response(),
                update,
            )
        }
        Err(err) => {
            if err.is_auth_failure() {
                meta.auth = err.code.to_owned();
            }
            state.metrics.inc(
                "reflex_rejections_total",
                &[("source", meta.source.as_str()), ("code", err.code)],
            );
            meta.note("error", &err.detail);
            let record = meta.record(Outcome::Rejected, err.status.as_u16(), Some(err.code), 0);
            let update = delivery.map(|key| DeliveryUpdate::Release { key });
            (record, err.into_response(), update)
        }
    };
    let written = match update {
        Some(update) => state.audit.put_settling(record, update).await,
        None => state.audit.put(record).await,
    };
    match written {
        Ok(()) => response,
        Err(err) => ApiError::from(err).into_response(),
    }
}
