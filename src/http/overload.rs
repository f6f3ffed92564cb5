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
    // A read of the trail by a caller with credentials also waits for one of the store's page readers: the
    // engine's reads keep the rest. One without (refused, recorded by the writer) and the login page read
    // nothing of the trail.
    let _page = match request.method() {
        &Method::POST => None,
        _ if reads_with_credentials(&request) => Some(state.audit.page_read().await),
        _ => None,
    };
    next.run(request).await
}

/// Whether `request` (a read of the trail) carries credentials (a bearer token or a session cookie) and asks for
/// more than the login page or the style sheet.
fn reads_with_credentials(request: &Request) -> bool {
    let path = request.uri().path();
    let headers = request.headers();
    !matches!(path, "/ui/login" | "/ui/style.css" | "/ui/logout")
        && (headers.contains_key(axum::http::header::AUTHORIZATION)
            || headers.contains_key(axum::http::header::COOKIE))
}

/// Whether a GET of `path` reads the audit trail (the list, a record, the audit page).
fn reads_the_trail(path: &str) -> bool {
    path == "/audit" || path.starts_with("/audit/") || path == "/ui" || path.starts_with("/ui/")
}
