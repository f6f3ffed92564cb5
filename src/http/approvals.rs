//! The approvals API, for holders of an approver's token (`[[approvals.approvers]]` or `[approvals] tokens`,
//! separate from every other door's): `GET /admin/approvals` (the held decisions waiting, with their evidence),
//! `POST /admin/approvals/{id}/approve` and `POST /admin/approvals/{id}/reject` (a reason required). An approval
//! that completes a decision acts at once, deciding again under every rule; the request's work is detached
//! from its connection like any remediation. Every vote and every refused call is audited.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use super::body::WholeBody;
use super::error::parse_json;
use super::request_id::Arrival;
use super::{ApiError, AppState, auth};
use crate::approvals::{ApprovalError, Approvals, Ballot, Voted};
use crate::approvers::{Approvers, Verified};
use crate::audit::{Auth, Source};

/// The body of a vote (optional for an approval).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteRequest {
    /// Why (required to reject).
    #[serde(default)]
    reason: Option<String>,
    /// Accepted for earlier clients and ignored: the page and the trail show the verified name only.
    #[serde(default, rename = "by", deserialize_with = "super::error::present")]
    _by: Option<String>,
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/approvals", get(list))
        .route("/admin/approvals/{id}/approve", post(approve))
        .route("/admin/approvals/{id}/reject", post(reject))
}

/// The approvals of `state`.
pub(super) fn approvals(state: &AppState) -> Approvals<'_> {
    Approvals::new(&state.audit, &state.engine)
}

/// Who the bearer token of `headers` is, as an approver: checked first, then (for who it is) the store's key
/// read, so that a refused caller costs no store read.
async fn approver_of(state: &AppState, headers: &HeaderMap) -> Result<Verified, ApiError> {
    auth::is_approver(headers, &state.config)?;
    let key = state.audit.ui_key().await?;
    let approvers = Approvers::new(&state.config, &key).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "the audit store's page key is not hex: run `reflex ui rotate-key`",
        )
    })?;
    auth::approver(headers, &approvers)
}

async fn list(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let meta = arrival.meta(Source::Approval);
    if let Err(err) = auth::is_approver(&headers, &state.config) {
        return Err(state.refused(meta, err).await);
    }
    let pending = approvals(&state).pending().await?;
    Ok(Json(serde_json::json!({ "approvals": pending })))
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    vote(state, id, arrival, headers, body, false).await
}

async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    vote(state, id, arrival, headers, body, true).await
}

/// Authenticates and reads a vote, then runs it detached from the connection.
async fn vote(
    state: AppState,
    id: String,
    arrival: Arrival,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
    rejecting: bool,
) -> Response {
    let mut meta = arrival.meta(Source::Approval);
    let verified = match approver_of(&state, &headers).await {
        Ok(verified) => verified,
        Err(err) => return state.refused(meta, err).await.into_response(),
    };
    meta.auth = Auth::Passed;
    // The body is optional: none reads as an empty request.
    let request = match body.and_then(|bytes| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(VoteRequest::default())
        } else {
            parse_json::<VoteRequest>(&bytes)
        }
    }) {
        Ok(request) => request,
        Err(err) => return state.refused(meta, err).await.into_response(),
    };
    let approver = verified.voting_through("api");
    let ballot = if rejecting {
        Ballot::Reject(request.reason.unwrap_or_default())
    } else {
        Ballot::Approve
    };
    let audit_id = meta.id.clone();
    let work_state = state.clone();
    let work = async move {
        let voted = approvals(&work_state)
            .cast(meta, &id, approver, ballot)
            .await;
        answer(voted)
    };
    super::detached(&state, audit_id, work).await
}

/// The answer to a vote: 200 with the decision (and the run's summary when it acted), 202 while more
/// approvers are needed, or the refusal.
pub(super) fn answer(voted: Result<Voted, ApprovalError>) -> Response {
    match voted {
        Ok(voted) => {
            let status = if voted.approval.state == crate::audit::ApprovalState::Pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            (status, Json(voted)).into_response()
        }
        Err(err) => refusal(err).into_response(),
    }
}

/// The API error of a vote that changed nothing.
pub(super) fn refusal(err: ApprovalError) -> ApiError {
    match err {
        ApprovalError::Audit(err) => err.into(),
        ApprovalError::Engine(err) => err.into(),
        err => ApiError::new(
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::CONFLICT),
            err.code(),
            err.to_string(),
        ),
    }
}
