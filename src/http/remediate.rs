//! `POST /remediate`: a manual trigger from an operator with a bearer token. It names a target (a balancer or a
//! target group), a rule (`rule`, run on the instance the request names or the rule's tag selects), or, with
//! rules configured, neither: then the first rule that lists `manual` and matches the request runs (its text
//! fields are the labels a rule's `match` and `when` read).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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
/// targets share its name; or, with rules configured, a rule and what it acts on.
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
    /// The rule to run (one that lists `manual` in its `sources`), instead of a target.
    #[serde(default, deserialize_with = "super::error::present")]
    rule: Option<String>,
    /// The instance a rule's run acts on (a rule whose `instances` is `"alert"`).
    #[serde(default, deserialize_with = "super::error::present")]
    instance_id: Option<String>,
    /// More labels for a rule's `match` and `when` to read.
    #[serde(default, deserialize_with = "super::error::present")]
    labels: Option<std::collections::BTreeMap<String, String>>,
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
            "rule": request.rule,
            "instance_id": request.instance_id,
            "labels": request.labels,
            "dry_run": request.dry_run,
            "reason": request.reason,
        }),
    );
    let reason = request
        .reason
        .clone()
        .unwrap_or_else(|| DEFAULT_REASON.to_owned());
    if request.load_balancer.is_none()
        && request.target_group.is_none()
        && let Some(trigger) = ruled(state, meta, proof, &request, &body, &reason)?
    {
        return Ok(Handled::Run {
            trigger: Box::new(trigger),
            delivery: None,
        });
    }
    let target =
        TargetRef::from_pair(request.load_balancer, request.target_group).map_err(|err| {
            let problem = match err {
                PairError::Both => err.to_string(),
                PairError::Neither => format!("missing field: {err}"),
            };
            ApiError::bad_request("invalid-request", problem)
        })?;
    if request.rule.is_some() || request.instance_id.is_some() || request.labels.is_some() {
        return Err(ApiError::bad_request(
            "invalid-request",
            "rule, instance_id and labels are for a rule's run: give them without load_balancer or \
             target_group",
        )
        .into());
    }
    let trigger = Trigger::new(proof, target, reason, request.dry_run)
        .in_place(Place::new(request.account, request.region));
    Ok(Handled::Run {
        trigger: Box::new(trigger),
        delivery: None,
    })
}

/// The trigger of a rule's run for a request that names no target: the rule it names (404 `unknown-rule`
/// when no rule of that name takes manual requests), else the first rule it matches (422 `no-rule-matched`
/// when none does). `None` when it names no rule and no rules are configured: it must name a target.
fn ruled(
    state: &AppState,
    meta: &mut RequestMeta,
    proof: crate::engine::Authenticated,
    request: &RemediateRequest,
    body: &[u8],
    reason: &str,
) -> Result<Option<Trigger>, Rejection> {
    if !state.engine.has_rules() && request.rule.is_none() {
        return Ok(None);
    }
    let matched = state
        .engine
        .manual(
            request.rule.as_deref(),
            request.instance_id.as_deref(),
            &parse_json(body)?,
        )
        .map_err(|refusal| {
            let (status, code) = refusal.status_and_code();
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(status, code, refusal.to_string())
        })?;
    meta.note("rule", &matched.rule);
    let trigger = Trigger::for_rule(proof, matched, reason.to_owned(), request.dry_run);
    Ok(Some(trigger))
}
