//! `GET /metrics` in the Prometheus text format, and the middleware counting every request by route template
//! (never the raw path, so label values stay bounded) and status.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> Response {
    let certs = state.sns.verifier.certs();
    let text = state.metrics.render(&[
        (
            "reflex_sns_certificate_cache_total",
            vec![("result", "hit".into())],
            certs.hits(),
        ),
        (
            "reflex_sns_certificate_cache_total",
            vec![("result", "load".into())],
            certs.loads(),
        ),
    ]);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Counts the request under its route template once it has been answered.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let response = next.run(request).await;
    state.metrics.inc(
        "reflex_http_requests_total",
        &[
            ("route", route.as_str()),
            ("status", response.status().as_str()),
        ],
    );
    response
}
