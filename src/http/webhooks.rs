//! `POST /alertmanager` and `POST /grafana`: authenticate the raw request (bearer, basic, or Grafana's HMAC),
//! then parse the alert group, heal each load balancer its firing alerts name, and answer `{"results": [...]}`.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::request_id::Arrival;
use super::{Answer, ApiError, AppState, audited, auth, dedup, detached};
use crate::audit::{Claim, Outcome, RequestMeta, Source};
use crate::config::WebhookConfig;
use crate::engine::{Authenticated, Summary, Trigger};
use crate::webhook::{Payload, group, signature};

/// The two webhook senders.
#[derive(Debug, Clone, Copy)]
enum Sender {
    Alertmanager,
    Grafana,
}

impl Sender {
    fn source(self) -> Source {
        match self {
            Self::Alertmanager => Source::Alertmanager,
            Self::Grafana => Source::Grafana,
        }
    }

    fn version(self) -> &'static str {
        match self {
            Self::Alertmanager => "4",
            Self::Grafana => "1",
        }
    }

    fn config(self, state: &AppState) -> &WebhookConfig {
        match self {
            Self::Alertmanager => &state.config.alertmanager,
            Self::Grafana => &state.config.grafana,
        }
    }
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/alertmanager",
            post(|state, arrival, headers, body| {
                receive(Sender::Alertmanager, state, arrival, headers, body)
            }),
        )
        .route(
            "/grafana",
            post(|state, arrival, headers, body| {
                receive(Sender::Grafana, state, arrival, headers, body)
            }),
        )
}

async fn receive(
    sender: Sender,
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut meta = arrival.meta(sender.source());
    let id = meta.id.clone();
    detached(&state.clone(), id, async move {
        let mut delivery = None;
        let result = handle(sender, &state, &mut meta, &headers, body, &mut delivery).await;
        audited(&state, meta, result, delivery).await
    })
    .await
}

async fn handle(
    sender: Sender,
    state: &AppState,
    meta: &mut RequestMeta,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    delivery: &mut Option<String>,
) -> Result<Answer, ApiError> {
    let hook = sender.config(state);
    let body = body?;
    let proof = authenticate(sender, hook, headers, &body)?;
    meta.auth = "passed".to_owned();
    let payload: Payload = super::error::parse_json(&body)?;
    if payload.version != sender.version() {
        return Err(ApiError::bad_request(
            "unsupported-version",
            format!(
                "payload version {:?} is not supported (expected {:?})",
                payload.version,
                sender.version()
            ),
        ));
    }
    let grouping = group(&payload, &hook.target_label, hook.default_target.as_deref());
    meta.note(
        "alerts",
        json!({
            "group_key": payload.group_key,
            "receiver": payload.receiver,
            "status": payload.status,
            "groups": grouping.groups,
            "unusable": grouping.unusable,
            "resolved": grouping.resolved,
        }),
    );
    let mut results: Vec<Value> = grouping
        .unusable
        .iter()
        .map(|(text, reason)| ignored(state, meta, text.clone(), reason.clone()))
        .collect();
    if grouping.groups.is_empty() {
        if !grouping.resolved.is_empty() {
            results.push(ignored(
                state,
                meta,
                grouping.resolved.join("; "),
                "resolved alerts are recorded, never acted on".to_owned(),
            ));
        }
        return Ok(answer(results, Outcome::Ignored, 0));
    }

    let key = payload.delivery_key(sender.source().as_str());
    let window = Some(Duration::from_secs(hook.dedup_window_secs));
    if let Claim::Existing { audit_id, summary } = state.audit.claim(&key, &meta.id, window).await?
    {
        meta.note("duplicate_of", &audit_id);
        let mut first = dedup::first_answer(&state.audit, &key, &audit_id, summary).await?;
        for result in first["results"].as_array_mut().into_iter().flatten() {
            result["duplicate"] = json!(true);
        }
        return Ok(Answer {
            body: first,
            outcome: Outcome::Duplicate,
            acted: 0,
        });
    }
    *delivery = Some(key);

    let mut acted = 0;
    let mut transient = None;
    for (load_balancer, texts) in grouping.groups {
        match remediate(state, meta, proof, load_balancer, texts.join("; ")).await {
            Ok((summary, count)) => {
                acted += count;
                results.push(summary);
            }
            Err(err) if err.status.is_server_error() => transient = Some(err),
            Err(err) => results.push(ignored(
                state,
                meta,
                err.detail.clone(),
                err.code.to_owned(),
            )),
        }
    }
    meta.note(
        "runs",
        results
            .iter()
            .map(|r| r["audit-id"].clone())
            .collect::<Vec<_>>(),
    );
    if let Some(err) = transient {
        // The sender retries 5xx; groups already healed are protected by the cooldown and their state.
        return Err(err);
    }
    Ok(answer(results, Outcome::Completed, acted))
}

/// Bearer or basic auth; for Grafana, the HMAC signature when a secret is configured and the request carries
/// the signature header or no Authorization header at all.
fn authenticate(
    sender: Sender,
    hook: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Authenticated, ApiError> {
    let credentials = || {
        auth::bearer_or_basic(
            headers,
            &hook.tokens,
            hook.username.as_deref(),
            &hook.passwords,
            sender.source().as_str(),
        )
    };
    let Some(secret) = hook
        .hmac_secret
        .as_ref()
        .filter(|_| matches!(sender, Sender::Grafana))
    else {
        return credentials();
    };
    let signature_header = headers.get(hook.signature_header.as_str());
    if signature_header.is_none() && headers.contains_key(axum::http::header::AUTHORIZATION) {
        return credentials();
    }
    let signature_value = signature_header
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            signature::SignatureError::MissingSignature(hook.signature_header.clone())
        })?;
    let timestamp = match hook.timestamp_header.as_str() {
        "" => None,
        name => Some(
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| signature::SignatureError::MissingTimestamp(name.to_owned()))?,
        ),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let window = i64::try_from(hook.replay_window_secs).unwrap_or(i64::MAX);
    signature::verify(
        secret.expose().as_bytes(),
        body,
        signature_value,
        timestamp,
        now,
        window,
    )?;
    Ok(Authenticated::issued())
}

/// One load balancer's remediation, recorded in an audit record of its own that names the request.
async fn remediate(
    state: &AppState,
    parent: &RequestMeta,
    proof: Authenticated,
    load_balancer: String,
    message: String,
) -> Result<(Value, u32), ApiError> {
    let mut run_meta = parent.child();
    let trigger = Trigger::new(proof, load_balancer, message, false);
    let result = state.engine.remediate(&mut run_meta, &trigger).await;
    let (record, outcome) = match result {
        Ok(run) => {
            let summary = serde_json::to_value(&run.summary).unwrap_or_default();
            run_meta.note("answer", &summary);
            (
                run_meta.record(run.outcome(), 200, None, run.acted),
                Ok((summary, run.acted)),
            )
        }
        Err(err) => {
            run_meta.note("error", err.to_string());
            let api = ApiError::from(err);
            (
                run_meta.record(Outcome::Rejected, api.status.as_u16(), Some(api.code), 0),
                Err(api),
            )
        }
    };
    state.audit.put(record).await?;
    outcome
}

/// A result entry for an alert that leads to nothing, with the reason.
fn ignored(state: &AppState, meta: &RequestMeta, message: String, reason: String) -> Value {
    serde_json::to_value(Summary::ignored(
        message,
        reason,
        state.config.remediation.dry_run,
        meta.id.clone(),
    ))
    .unwrap_or_default()
}

fn answer(results: Vec<Value>, outcome: Outcome, acted: u32) -> Answer {
    Answer {
        body: json!({ "results": results }),
        outcome,
        acted,
    }
}

impl From<signature::SignatureError> for ApiError {
    fn from(err: signature::SignatureError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string())
    }
}
