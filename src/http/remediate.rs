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
use super::pipeline::{Handled, Receive, Rejection, receive};
use super::request_id::Arrival;
use super::{ApiError, AppState, auth};
use crate::audit::{Auth, RequestMeta, Source};
use crate::engine::Trigger;
use crate::target::{PairError, Place, TargetRef};

/// The manual request body: exactly one of `load_balancer` and `target_group`, and where it is when several
/// targets share its name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediateRequest {
    #[serde(default, deserialize_with = "super::error::present")]
    load_balancer: Option<String>,
    #[serde(default, deserialize_with = "super::error::present")]
    target_group: Option<String>,
    /// The target's account (`[[accounts]]` name, `local`, or account id), when several share its name.
    #[serde(default, deserialize_with = "super::error::present")]
    account: Option<String>,
    /// The target's region, when several share its name.
    #[serde(default, deserialize_with = "super::error::present")]
    region: Option<String>,
    #[serde(default)]
    dry_run: bool,
    reason: Option<String>,
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
    receive(Manual, state, arrival, headers, body).await
}

/// The manual receiver.
struct Manual;

impl Receive for Manual {
    fn source(&self) -> Source {
        Source::Manual
    }

    fn handle<'a>(
        self,
        state: &'a AppState,
        meta: &'a mut RequestMeta,
        headers: &'a HeaderMap,
        body: Result<Bytes, ApiError>,
    ) -> impl Future<Output = Result<Handled, Rejection>> + Send + 'a {
        handle(state, meta, headers, body)
    }
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
            "account": request.account,
            "region": request.region,
            "dry_run": request.dry_run,
            "reason": request.reason,
        }),
    );
    let target =
        TargetRef::from_pair(request.load_balancer, request.target_group).map_err(|err| {
            let problem = match err {
                PairError::Both => err.to_string(),
                PairError::Neither => format!("missing field: {err}"),
            };
            ApiError::bad_request("invalid-request", problem)
        })?;
    let trigger = Trigger::new(
        proof,
        target,
        request.reason.unwrap_or_else(|| DEFAULT_REASON.to_owned()),
        request.dry_run,
    )
    .in_place(Place::new(request.account, request.region));
    Ok(Handled::Run {
        trigger: Box::new(trigger),
        delivery: None,
    })
}
