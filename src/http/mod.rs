//! HTTP routes. Each route module ends in `router()`; they are merged here, with the shared state and limits.

mod admin;
mod approvals;
mod audit;
mod auth;
mod body;
mod error;
mod health;
mod metrics;
mod overload;
mod pipeline;
mod remediate;
mod request_id;
mod slack;
mod sns;
mod throttle;
mod ui;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio_util::task::TaskTracker;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

pub use error::ApiError;
pub use throttle::RejectionThrottle;

use crate::audit::{AuditStore, Source};
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::sns::SnsReceiver;

/// What every handler shares, behind one reference count: the router clones it for every request.
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    /// Counts a rejection of `source` with `code`, and says whether it gets a full audit record: always when the
    /// caller authenticated (or holds a delivery claim), else while the source is under the throttle's rate;
    /// past it, the rejection is counted for a summary record instead.
    pub fn rejection_recorded(
        &self,
        source: Source,
        code: &'static str,
        authenticated: bool,
    ) -> bool {
        self.metrics.count_rejection(source.as_str(), code);
        authenticated || self.rejections.admit(source, code)
    }

    /// Records a refused call of `meta`'s source (under the throttle when it did not authenticate) and
    /// returns its answer.
    pub async fn refused(&self, mut meta: crate::audit::RequestMeta, err: ApiError) -> ApiError {
        if err.is_auth_failure() {
            meta.auth = crate::audit::Auth::Failed(err.code.into());
        }
        let authenticated = meta.auth == crate::audit::Auth::Passed;
        if !self.rejection_recorded(meta.source, err.code, authenticated) {
            return err;
        }
        meta.note("error", &err.detail);
        let status = err.status.as_u16();
        let record = meta.into_record(crate::audit::Outcome::Rejected, status, Some(err.code), 0);
        match self.audit.put(record).await {
            Ok(()) => err,
            Err(failed) => failed.into(),
        }
    }

    /// Shares `shared` with every handler.
    pub fn new(shared: AppShared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// The parts of the shared state.
#[derive(Clone, Debug)]
pub struct AppShared {
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
    /// The audited requests' work, detached from their connections; shutdown waits for it.
    pub tasks: TaskTracker,
    /// Permits for requests handled at once (`server.max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Permits for reads of the trail handled at once (`server.max_reads_in_flight`).
    pub reads_in_flight: Arc<tokio::sync::Semaphore>,
    /// Bounds the full records of unauthenticated rejections.
    pub rejections: Arc<RejectionThrottle>,
    /// Limits the audit page's login attempts per address and per token prefix.
    pub logins: Arc<ui::LoginAttempts>,
}

impl AppState {
    /// Writes one summary record per source for the unauthenticated rejections that were only counted since
    /// the last call. Runs every few seconds while serving, and once more at shutdown.
    pub async fn record_suppressed(&self) -> Result<(), crate::audit::AuditError> {
        for (source, (codes, since)) in self.rejections.take() {
            let mut meta = crate::audit::RequestMeta::new(source, None);
            let total: u64 = codes.values().sum();
            meta.note(
                "suppressed",
                serde_json::json!({
                    "count": total,
                    "codes": codes,
                    "since": crate::audit::rfc3339(since),
                    "why": "unauthenticated rejections past the per-source rate are counted, not recorded one by one",
                }),
            );
            let record =
                meta.into_record(crate::audit::Outcome::Rejected, 0, Some("suppressed"), 0);
            self.audit.put(record).await?;
        }
        Ok(())
    }
}

/// All routes with the body limit and request tracing.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .merge(remediate::router())
        .merge(sns::router())
        .merge(webhooks::router())
        .merge(audit::router())
        .merge(admin::router())
        .merge(approvals::router())
        .merge(slack::router())
        .merge(ui::router())
        .merge(health::router())
        .merge(metrics::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            state.config.server.header_read_timeout_secs,
        )))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            overload::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// 404 with the JSON error body every other refusal has.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no route {}; see openapi.yaml", uri.path()),
    )
}

/// 405 with the JSON error body (axum adds the `Allow` header).
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// Runs an audited request's work (verification, remediation, audit record) on its own task, so neither a
/// client that goes away nor the request timeout cancels a remediation half-way or loses its record, and
/// shutdown can wait for it. The caller waits up to `server.request_timeout_secs`, then gets 503
/// `still-running` naming the audit record the work will write.
async fn detached(
    state: &AppState,
    audit_id: String,
    work: impl Future<Output = Response> + Send + 'static,
) -> Response {
    let task = state.tasks.spawn(work.instrument(tracing::Span::current()));
    let limit = Duration::from_secs(state.config.server.request_timeout_secs);
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(response)) => response,
        Ok(Err(failed)) => ApiError::unavailable("internal-error", &failed).into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "still-running",
            format!(
                "no answer within {} s; the request goes on and its result will be audit record {audit_id}",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests;
