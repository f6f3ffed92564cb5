//! `POST /slack/interactions`: the Approve and Reject buttons of an approval message in Slack. The request
//! must carry Slack's signature of its body under the app's signing secret (`[slack] signing_secret_file`),
//! made within five minutes; the button's user must be an approver's (`[[approvals.approvers]] slack_user`
//! or `[slack] approvers`). Slack wants an answer within three seconds, so a verified press is answered at
//! once and its vote runs detached (shutdown waits for it); the message is then updated through the press's
//! `response_url` with the outcome. Every press, refused or not, is audited.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;

use super::body::WholeBody;
use super::request_id::Arrival;
use super::{ApiError, AppState};
use crate::approvals::{ApprovalError, Ballot};
use crate::approvers::{Approvers, Verified};
use crate::audit::{Auth, RequestMeta, Source};
use crate::slack::{Action, Press, escape};

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/slack/interactions", post(interaction))
}

async fn interaction(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut meta = arrival.meta(Source::Slack);
    let body = match verified(&state, &headers, body) {
        Ok(body) => body,
        Err(err) => return state.refused(meta, err).await.into_response(),
    };
    meta.auth = Auth::Passed;
    let press = match crate::slack::press(&body) {
        Ok(press) => press,
        Err(why) => {
            let err = ApiError::bad_request("invalid-payload", why);
            return state.refused(meta, err).await.into_response();
        }
    };
    meta.note(
        "slack",
        serde_json::json!({"user": press.user, "approval": press.approval}),
    );
    let Some(approver) = Approvers::by_slack(&state.config, &press.user) else {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "not-an-approver",
            format!(
                "Slack user {} is no approver's ([[approvals.approvers]] slack_user or [slack] approvers)",
                press.user
            ),
        );
        return state.refused(meta, err).await.into_response();
    };
    let accepted = axum::Json(serde_json::json!({ "accepted": press.approval }));
    let work_state = state.clone();
    state
        .tasks
        .spawn(async move { vote(&work_state, meta, press, approver).await });
    accepted.into_response()
}

/// The body of a request whose Slack signature and timestamp check out.
fn verified(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Bytes, ApiError> {
    let Some(secret) = &state.config.slack.signing_secret else {
        return Err(ApiError::unauthorized(
            "auth-not-configured",
            "Slack interactions are disabled: no [slack] signing_secret_file is configured",
        ));
    };
    let body = body?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    crate::slack::verify(
        secret.expose().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now,
    )
    .map_err(|err| ApiError::unauthorized(err.code(), err.to_string()))?;
    Ok(body)
}

/// Runs the vote of a verified press and updates its message with the outcome.
async fn vote(state: &AppState, meta: RequestMeta, press: Press, verified: Verified) {
    let approvals = super::approvals::approvals(state);
    let approver = verified.voting_through("slack");
    let ballot = match press.action {
        Action::Approve => Ballot::Approve,
        // A button carries no text: the reason says where and who.
        Action::Reject => Ballot::Reject(format!("rejected in Slack by <@{}>", press.user)),
    };
    let voted = approvals
        .cast(meta, &press.approval, approver, ballot)
        .await;
    let text = match &voted {
        Ok(voted) => format!("<@{}>: {}", press.user, escape(&voted.in_words())),
        // A failure inside reflex (the store, AWS) is not told to the channel: its code, and the trail.
        Err(err @ (ApprovalError::Audit(_) | ApprovalError::Engine(_))) => format!(
            "reflex could not finish this ({}); an approved decision is tried again, and the audit trail says \
             what was done",
            err.code()
        ),
        Err(err) => format!("Nothing changed: {}", escape(&err.to_string())),
    };
    if let Some(url) = &press.response_url {
        let message = crate::slack::outcome_message(&text);
        state
            .engine
            .notifier()
            .respond_to_slack(url, &message)
            .await;
    }
}
