//! A cap on requests handled at once (`server.max_in_flight`): past it, a POST is answered 503 `overloaded`
//! straight away, before its body is read, so a flood cannot queue up work and memory; SNS and Alertmanager
//! retry 5xx. GETs (probes, metrics, the audit list) are not capped, so that an overloaded reflex is still seen
//! alive. Such refusals are counted, not audited: nothing of the request was read.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Runs the request while a permit is free; answers 503 at once otherwise.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.try_acquire() else {
        state.metrics.count_rejection("server", "overloaded");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight (server.max_in_flight); retry later",
        )
        .into_response();
    };
    next.run(request).await
}
