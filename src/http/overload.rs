//! A cap on requests handled at once (`server.max_in_flight`): past it, a POST is answered 503 `overloaded`
//! straight away, before its body is read, so a flood cannot queue up work and memory; SNS and Alertmanager
//! retry 5xx. Reads of the trail (`GET /audit`, the audit page) have a cap of their own
//! (`server.max_reads_in_flight`), so that a flood of reads neither starves alerts nor the store; probes and
//! metrics are never capped, so that an overloaded reflex is still seen alive. A read of the trail also holds one
//! of the store's few page readers while it runs, so that slow page queries never take every connection from
//! the engine's safety reads. Such refusals are counted, not
//! audited: nothing of the request was read.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Runs the request while a permit is free; answers 503 at once otherwise.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let permits = if request.method() == Method::POST {
        &state.in_flight
    } else if reads_the_trail(request.uri().path()) {
        &state.reads_in_flight
    } else {
        return next.run(request).await;
    };
    let Ok(_permit) = permits.try_acquire() else {
        state.metrics.count_rejection("server", "overloaded");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight (server.max_in_flight); retry later",
        )
        .into_response();
    };
    // A read of the trail also waits for one of the store's page readers: the engine's reads keep the rest.
    let _page = match request.method() {
        &Method::POST => None,
        _ => Some(state.audit.page_read().await),
    };
    next.run(request).await
}

/// Whether a GET of `path` reads the audit trail (the list, a record, the audit page).
fn reads_the_trail(path: &str) -> bool {
    path == "/audit" || path.starts_with("/audit/") || path == "/ui" || path.starts_with("/ui/")
}
