//! `POST /alertmanager` and `POST /grafana`: authenticate the raw request (bearer, basic, or Grafana's HMAC),
//! then parse the alert group, heal each load balancer its firing alerts name, and answer `{"results": [...]}`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use serde_json::json;

use super::body::WholeBody;
use super::pipeline::{Handled, Receive, Rejection, claim, receive};
use super::{ApiError, AppState, auth};
use crate::audit::{Auth, Outcome, RequestMeta, Source};
use crate::config::{ScopedToken, WebhookConfig};
use crate::engine::{Authenticated, Matched, Reply, Summary, Trigger};
use crate::rules::{AlertFacts, ROUTED_NOTE, Routed};
use crate::target::{Place, TargetRef};
use crate::webhook::{Grouping, Payload, TargetLabels, group, signature};

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
            post(
                |State(state): State<AppState>, arrival, headers, WholeBody(body)| {
                    receive(Sender::Alertmanager, state, arrival, headers, body)
                },
            ),
        )
        .route(
            "/grafana",
            post(
                |State(state): State<AppState>, arrival, headers, WholeBody(body)| {
                    receive(Sender::Grafana, state, arrival, headers, body)
                },
            ),
        )
}

impl Receive for Sender {
    fn source(&self) -> Source {
        (*self).source()
    }

    fn handle<'a>(
        self,
        state: &'a AppState,
        meta: &'a mut RequestMeta,
        headers: &'a HeaderMap,
        body: Result<Bytes, ApiError>,
    ) -> impl std::future::Future<Output = Result<Handled, Rejection>> + Send + 'a {
        handle(self, state, meta, headers, body)
    }
}

async fn handle(
    sender: Sender,
    state: &AppState,
    meta: &mut RequestMeta,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Handled, Rejection> {
    let hook = sender.config(state);
    let body = body?;
    let scope = scope_of(hook, headers);
    let proof = match scope {
        Some(scoped) => {
            meta.note("scoped_accounts", &scoped.accounts);
            Authenticated::issued()
        }
        None => authenticate(sender, hook, headers, &body)?,
    };
    meta.auth = Auth::Passed;
    let mut payload: Payload = super::error::parse_json(&body)?;
    supported(sender, &payload)?;
    if scope.is_none() {
        confirm_resolved(state, sender, meta, &payload).await?;
    }
    // The delivery's key covers every alert of it, those a rule takes among them.
    let mut key = payload.delivery_key(sender.source().as_str());
    let ruled = ruled_alerts(state, sender, scope.is_some(), meta, &mut payload);
    let grouping = unruled_grouping(state, hook, &payload, scope.is_none());
    meta.note("alerts", alerts_note(&payload, &grouping));
    let dry_run = state.config.remediation.dry_run;
    let mut ignored: Vec<Summary> = grouping
        .unusable
        .iter()
        .map(|(text, reason)| {
            Summary::ignored(text.clone(), reason.clone(), dry_run, meta.id.clone())
        })
        .collect();
    if grouping.groups.is_empty() && ruled.is_empty() {
        if !grouping.resolved.is_empty() {
            ignored.push(Summary::ignored(
                grouping.resolved.join("; "),
                "resolved alerts are recorded, never acted on".to_owned(),
                dry_run,
                meta.id.clone(),
            ));
        }
        return Ok(Handled::Reply {
            reply: Box::new(Reply::Results { results: ignored }),
            outcome: Outcome::Ignored,
            delivery: None,
        });
    }

    if let Some(scoped) = scope {
        within_scope(state, meta, &scoped.accounts, grouping.groups.keys())?;
        // A scoped sender's deliveries are deduplicated apart from everyone else's: it can neither replay
        // another sender's answer nor claim its key first.
        key.push_str(&format!("/scoped:{}", &scoped.token_sha256[..16]));
    }
    let window = Some(Duration::from_secs(hook.dedup_window_secs));
    let delivery = match claim(state, meta, key, window).await? {
        Ok(delivery) => delivery,
        Err(replay) => return Ok(replay),
    };
    let mut triggers: Vec<Trigger> = ruled
        .into_iter()
        .map(|(matched, text)| Trigger::for_rule(proof, matched, text, false))
        .collect();
    triggers.extend(one_per_target(state, grouping.groups).into_iter().map(
        |((target, place), texts)| {
            Trigger::new(proof, target, texts.join("; "), false).in_place(place)
        },
    ));
    Ok(Handled::Runs {
        triggers,
        ignored,
        delivery,
    })
}

/// The alerts of `payload` a rule takes, noted (see `take_ruled`). A sender scoped to some accounts names
/// targets in them only: its alerts go to targets, never to a rule.
fn ruled_alerts(
    state: &AppState,
    sender: Sender,
    scoped: bool,
    meta: &mut RequestMeta,
    payload: &mut Payload,
) -> Vec<(Matched, String)> {
    if scoped {
        return Vec::new();
    }
    let ruled = take_ruled(state, sender, meta, payload);
    if !ruled.is_empty() {
        let rules: Vec<&str> = ruled
            .iter()
            .map(|(matched, _)| matched.rule.as_str())
            .collect();
        meta.note("rules", rules);
    }
    ruled
}

/// The grouping of the alerts no rule took; with rules configured (and `ruled`: rules were tried), an alert
/// that names no target either says that no rule matched it.
fn unruled_grouping(
    state: &AppState,
    hook: &WebhookConfig,
    payload: &Payload,
    ruled: bool,
) -> Grouping {
    let mut grouping = grouping_of(state, hook, payload);
    if ruled && state.engine.has_rules() {
        for (_, reason) in &mut grouping.unusable {
            *reason = format!("no-rule-matched: it matches no rule, and {reason}");
        }
    }
    grouping
}

/// Takes the alerts a rule matches out of `payload`: one run per rule, on every instance its alerts name (or
/// its tag), with their texts; for a rule on no instance, one run per thing its alerts name. The alerts no rule matches stay, for their targets.
fn take_ruled(
    state: &AppState,
    sender: Sender,
    meta: &mut RequestMeta,
    payload: &mut Payload,
) -> Vec<(Matched, String)> {
    if !state.engine.has_rules() {
        return Vec::new();
    }
    let source = sender.source();
    let mut ruled: Vec<(Matched, Vec<String>)> = Vec::new();
    let alerts = std::mem::take(&mut payload.alerts);
    let mut routed = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let facts = AlertFacts::from_webhook(source.as_str(), &alert, &payload.status);
        let matched = state.engine.route(&facts);
        routed.push(Routed {
            alert: facts,
            rule: matched.as_ref().map(|matched| matched.rule.clone()),
        });
        let Some(mut matched) = matched else {
            payload.alerts.push(alert);
            continue;
        };
        matched.alerts.push(alert.identity());
        match ruled.iter_mut().find(|(known, _)| known.joins(&matched)) {
            Some((known, texts)) => {
                known.merge(matched);
                texts.push(alert.text());
            }
            None => ruled.push((matched, vec![alert.text()])),
        }
    }
    meta.note(ROUTED_NOTE, routed);
    ruled
        .into_iter()
        .map(|(matched, texts)| (matched, texts.join("; ")))
        .collect()
}

/// Records, for each rule verified by its alert, the alerts of `payload` that resolved and that it ran while
/// they fired: what its check waits for. Every resolved alert is recorded, whether or not a run waits for it.
async fn confirm_resolved(
    state: &AppState,
    sender: Sender,
    meta: &mut RequestMeta,
    payload: &Payload,
) -> Result<(), Rejection> {
    if !state.engine.has_rules() {
        return Ok(());
    }
    let source = sender.source();
    let mut by_rule: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let resolved = payload
        .alerts
        .iter()
        .filter(|alert| !alert.is_firing(&payload.status));
    for alert in resolved {
        let facts = AlertFacts::from_webhook(source.as_str(), alert, &payload.status);
        let Some(rule) = state.engine.confirms(&facts) else {
            continue;
        };
        match by_rule.iter_mut().find(|(known, ..)| *known == rule) {
            Some((_, ids, texts)) => {
                ids.push(alert.identity());
                texts.push(alert.text());
            }
            None => by_rule.push((rule, vec![alert.identity()], vec![alert.text()])),
        }
    }
    for (rule, ids, texts) in &by_rule {
        state
            .engine
            .record_resolved(source, meta.caller.clone(), rule, ids, texts)
            .await?;
    }
    if !by_rule.is_empty() {
        let rules: Vec<&str> = by_rule.iter().map(|(rule, ..)| rule.as_str()).collect();
        meta.note("resolved_for_rules", rules);
    }
    Ok(())
}

/// Refuses a payload of another version than the sender's (its fields might mean something else).
fn supported(sender: Sender, payload: &Payload) -> Result<(), Rejection> {
    if payload.version != sender.version() {
        return Err(ApiError::bad_request(
            "unsupported-version",
            format!(
                "payload version {:?} is not supported (expected {:?})",
                payload.version,
                sender.version()
            ),
        )
        .into());
    }
    Ok(())
}

/// The payload's alerts grouped by the target their labels name, after the webhook's labels and with its
/// default target.
fn grouping_of(state: &AppState, hook: &WebhookConfig, payload: &Payload) -> Grouping {
    let labels = TargetLabels {
        load_balancer: &hook.target_label,
        target_group: &hook.target_group_label,
        account: &hook.account_label,
        region: &hook.region_label,
    };
    let default_target = hook
        .default_target
        .as_deref()
        .and_then(|name| state.config.target(name))
        .map(|target| (target.reference(), state.config.place_named(target)));
    group(payload, labels, default_target.as_ref())
}

/// What the audit record notes of the alert group: its key, receiver and status, and how its alerts were
/// grouped (by target, unusable, resolved).
fn alerts_note(payload: &Payload, grouping: &Grouping) -> serde_json::Value {
    json!({
        "group_key": payload.group_key,
        "receiver": payload.receiver,
        "status": payload.status,
        "groups": grouping
            .groups
            .iter()
            .map(|((target, place), texts)| {
                let named = match (&place.account, &place.region) {
                    (None, None) => target.value().to_owned(),
                    _ => format!("{} {place}", target.value()),
                };
                (named, texts)
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
        "unusable": grouping.unusable,
        "resolved": grouping.resolved,
    })
}

/// The group's alerts by configured target, however many ways they name it (a name, an ARN, a metric
/// dimension): one run per target, not one per spelling. A reference to no configured target stays as it is
/// (its run refuses it).
fn one_per_target(
    state: &AppState,
    groups: std::collections::BTreeMap<Placed, Vec<String>>,
) -> Vec<(Placed, Vec<String>)> {
    let mut merged: Vec<(Option<&crate::target::TargetId>, Placed, Vec<String>)> = Vec::new();
    for (reference, texts) in groups {
        let id = state.engine.target_id_of(&reference.0, &reference.1);
        match merged
            .iter_mut()
            .find(|(known, _, _)| id.is_some() && *known == id)
        {
            Some((_, _, all)) => all.extend(texts),
            None => merged.push((id, reference, texts)),
        }
    }
    merged
        .into_iter()
        .map(|(_, reference, texts)| (reference, texts))
        .collect()
}

/// The scoped bearer token (`[[alertmanager.scoped]]`, `[[grafana.scoped]]`) of this delivery, limiting it
/// to some accounts; `None` for any other credential.
fn scope_of<'a>(hook: &'a WebhookConfig, headers: &HeaderMap) -> Option<&'a ScopedToken> {
    hook.scoped_by(auth::presented(headers).ok()?)
}

/// Refuses (403 `account-not-allowed`, before anything is claimed, read or done) a delivery whose alerts name
/// a configured target outside `accounts`. A reference to no configured target is left to its run, which
/// refuses it.
fn within_scope<'a>(
    state: &AppState,
    meta: &mut RequestMeta,
    accounts: &[String],
    named: impl Iterator<Item = &'a Placed>,
) -> Result<(), ApiError> {
    let allowed: Vec<&str> = accounts
        .iter()
        .map(|name| match state.config.account(name) {
            Some(account) => account.account_id(),
            None => state.engine.home().account.as_str(),
        })
        .collect();
    for (reference, place) in named {
        let Some(id) = state.engine.target_id_of(reference, place) else {
            continue;
        };
        if !allowed.contains(&id.account.as_str()) {
            // The record says which target and account; the answer tells the sender no more than it may know.
            meta.note(
                "outside_scope",
                json!({"target": id.name, "account": id.account, "region": id.region}),
            );
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account-not-allowed",
                format!(
                    "this token may name targets in {} only, and an alert names a target elsewhere: nothing \
                     was done",
                    accounts.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A target as an alert names it, with where the alert says it is.
type Placed = (TargetRef, Place);

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
    // The configuration guarantees a timestamp header, so the signature always covers the time.
    let name = hook.timestamp_header.as_str();
    let timestamp = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| signature::SignatureError::MissingTimestamp(name.to_owned()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let window = i64::try_from(hook.replay_window_secs).unwrap_or(i64::MAX);
    signature::verify(
        secret.expose().as_bytes(),
        body,
        signature_value,
        Some(timestamp),
        now,
        window,
    )?;
    Ok(Authenticated::issued())
}

impl From<signature::SignatureError> for ApiError {
    fn from(err: signature::SignatureError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string())
    }
}
