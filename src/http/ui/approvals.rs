//! The audit page's approval routes: the list and one held decision for every session, the Approve and
//! Reject forms for an approver's session (its form token bound to the session, on top of the SameSite=Strict
//! cookie). A vote runs detached from the connection, as through the API, and is audited with the door
//! `page`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;

use super::super::body::WholeBody;
use super::super::request_id::Arrival;
use super::super::{ApiError, AppState};
use super::session::Sessions;
use super::{approval_pages, see_other, session_of, sessions};
use crate::approvals::{Approvals, Ballot};
use crate::approvers::Verified;
use crate::audit::{Auth, Source};

/// The held decisions waiting and the way up.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if session_of(&state, &headers).await?.is_none() {
        return Ok(see_other("/ui/login"));
    }
    let pending = state.audit.pending_approvals().await?;
    let ways = crate::approvals::way_up(&state.audit, &state.engine).await?;
    Ok(Html(approval_pages::list(&pending, &ways).into_string()).into_response())
}

/// One held decision, with the forms for an approver's session while it waits.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(session) = session_of(&state, &headers).await? else {
        return Ok(see_other("/ui/login"));
    };
    page(&state, &session, &id, StatusCode::OK, None).await
}

/// The approver whose session `session` is, while their token is still an approver's.
fn session_approver(state: &AppState, keys: Option<&Sessions>, session: &str) -> Option<Verified> {
    let credential = Sessions::approver_of(session)?;
    keys?.approvers(&state.config).by_credential(&credential)
}

/// The page of the held decision `id` in `session`, answered with `status` and `notice`.
async fn page(
    state: &AppState,
    session: &str,
    id: &str,
    status: StatusCode,
    notice: Option<Result<&str, &str>>,
) -> Result<Response, ApiError> {
    let Some(approval) = state.audit.approval(id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "approval-not-found",
            format!("no held decision {id}"),
        ));
    };
    let keys = sessions(state).await?;
    let waiting = approval.state == crate::audit::ApprovalState::Pending;
    let approver = session_approver(state, keys.as_ref(), session);
    let token = match (keys, approver) {
        (Some(keys), Some(_)) if waiting => Some(keys.form_token(session)),
        _ => None,
    };
    let markup = approval_pages::show(&approval, token.as_deref(), notice);
    Ok((status, Html(markup.into_string())).into_response())
}

pub(super) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    vote(state, id, arrival, headers, body, false).await
}

pub(super) async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    vote(state, id, arrival, headers, body, true).await
}

/// Checks the session (an approver's) and the form token, then votes, detached from the connection, and
/// shows the decision with what the vote did.
async fn vote(
    state: AppState,
    id: String,
    arrival: Arrival,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
    rejecting: bool,
) -> Response {
    let mut meta = arrival.meta(Source::Approval);
    meta.note("ui", if rejecting { "reject" } else { "approve" });
    let session = match session_of(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return see_other("/ui/login"),
        Err(err) => return err.into_response(),
    };
    let form: Vec<(String, String)> = match body {
        Ok(body) => url::form_urlencoded::parse(&body).into_owned().collect(),
        Err(err) => return state.refused(meta, err).await.into_response(),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let keys = match sessions(&state).await {
        Ok(keys) => keys,
        Err(err) => return err.into_response(),
    };
    let Some(verified) = session_approver(&state, keys.as_ref(), &session) else {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "not-an-approver",
            "this session's token is no approver token (now): log in with an approver token to approve",
        );
        return state.refused(meta, err).await.into_response();
    };
    if !keys.is_some_and(|keys| keys.form_token_valid(&session, &field("csrf"))) {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid-csrf",
            "the form is not this session's: reload the page and try again",
        );
        return state.refused(meta, err).await.into_response();
    }
    meta.auth = Auth::Passed;
    let ballot = if rejecting {
        Ballot::Reject(field("reason"))
    } else {
        Ballot::Approve
    };
    let approver = verified.voting_through("page");
    let audit_id = meta.id.clone();
    let work_state = state.clone();
    let work = async move {
        let approvals = Approvals::new(&work_state.audit, &work_state.engine);
        let voted = approvals.cast(meta, &id, approver, ballot).await;
        let (status, notice) = match &voted {
            Ok(voted) => (StatusCode::OK, Ok(voted.in_words())),
            Err(err) => {
                let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::CONFLICT);
                (status, Err(err.to_string()))
            }
        };
        let notice = notice.as_ref().map(String::as_str).map_err(String::as_str);
        page(&work_state, &session, &id, status, Some(notice))
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    super::super::detached(&state, audit_id, work).await
}
