//! `POST /remediate`: a manual trigger from an operator with a bearer token.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use serde::Deserialize;

use super::body::WholeBody;
use super::error::parse_json;
use super::pipeline::{Handled, Rejection, finish};
use super::request_id::Arrival;
use super::{ApiError, AppState, auth, detached};
use crate::audit::{Auth, RequestMeta, Source};
use crate::engine::Trigger;
use crate::target::TargetRef;

/// The manual request body: exactly one of `load_balancer` and `target_group`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediateRequest {
    #[serde(default, deserialize_with = "present")]
    load_balancer: Option<String>,
    #[serde(default, deserialize_with = "present")]
    target_group: Option<String>,
    #[serde(default)]
    dry_run: bool,
    reason: Option<String>,
}

/// A target field, when given, is a string: `null` is refused like any other wrong type rather than read as
/// absent, so that a request names its target in exactly one way.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// The message echoed when the operator gives no reason.
const DEFAULT_REASON: &str = "manual remediation";

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/remediate", post(remediate))
}

async fn remediate(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut meta = arrival.meta(Source::Manual);
    let id = meta.id.clone();
    detached(&state.clone(), id, async move {
        let handled = handle(&state, &mut meta, &headers, body).await;
        finish(&state, meta, handled).await
    })
    .await
}

async fn handle(
    state: &AppState,
    meta: &mut RequestMeta,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Handled, Rejection> {
    let proof = auth::bearer(headers, &state.config.manual.tokens, "manual")?;
    meta.auth = Auth::Passed;
    let body = body?;
    let request: RemediateRequest = parse_json(&body)?;
    meta.note(
        "request",
        serde_json::json!({
            "load_balancer": request.load_balancer,
            "target_group": request.target_group,
            "dry_run": request.dry_run,
            "reason": request.reason,
        }),
    );
    let target = match (request.load_balancer, request.target_group) {
        (Some(name), None) => TargetRef::LoadBalancer(name),
        (None, Some(group)) => TargetRef::TargetGroup(group),
        (load_balancer, _) => {
            let problem = if load_balancer.is_some() {
                "give either load_balancer or target_group, not both"
            } else {
                "missing field: give load_balancer (classic ELB name) or target_group (name or ARN)"
            };
            return Err(ApiError::bad_request("invalid-request", problem).into());
        }
    };
    let trigger = Trigger::new(
        proof,
        target,
        request.reason.unwrap_or_else(|| DEFAULT_REASON.to_owned()),
        request.dry_run,
    );
    Ok(Handled::Run {
        trigger,
        delivery: None,
    })
}
