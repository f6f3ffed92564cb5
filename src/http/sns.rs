//! `POST /sns`: SNS HTTP/S deliveries. Verify first (signature, certificate, topic, age), then confirm
//! subscriptions, acknowledge unsubscriptions, or — for notifications — decide, then record what leads to nothing
//! with its delivery claim in one commit, or claim the delivery and remediate.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use serde_json::json;
use time::OffsetDateTime;

use super::body::WholeBody;
use super::pipeline::{Handled, Receive, Rejection, claim, receive, replayed};
use super::request_id::Arrival;
use super::{ApiError, AppState};
use crate::audit::{Auth, Outcome, RequestMeta, Source};
use crate::engine::{Matched, Reply, SubscriptionReply, Summary, Trigger};
use crate::rules::{AlertFacts, ROUTED_NOTE, Routed};
use crate::sns::{ConfirmError, Decision, MessageType, SnsError, Verified, decide};

/// The header SNS sends with the message type.
const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/sns", post(sns))
}

async fn sns(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    receive(Sns, state, arrival, headers, body).await
}

/// The SNS receiver.
struct Sns;

impl Receive for Sns {
    fn source(&self) -> Source {
        Source::Sns
    }

    fn handle<'a>(
        self,
        state: &'a AppState,
        meta: &'a mut RequestMeta,
        headers: &'a HeaderMap,
        body: Result<Bytes, ApiError>,
    ) -> impl std::future::Future<Output = Result<Handled, Rejection>> + Send + 'a {
        handle(state, meta, headers, body)
    }
}

async fn handle(
    state: &AppState,
    meta: &mut RequestMeta,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Handled, Rejection> {
    let body = body?;
    let type_header = headers
        .get(MESSAGE_TYPE_HEADER)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    let verified = state
        .sns
        .verifier
        .verify(&body, type_header, OffsetDateTime::now_utc())
        .await
        .map_err(|err| {
            meta.auth = Auth::Failed(err.code().into());
            ApiError::from(err)
        })?;
    meta.auth = Auth::Passed;
    meta.note("verified", verified.record());
    let message = verified.message();
    match message.kind {
        MessageType::SubscriptionConfirmation => confirm(state, meta, &verified).await,
        MessageType::UnsubscribeConfirmation => {
            unsubscribed(state, &message.topic_arn);
            Ok(Handled::Reply {
                reply: Box::new(Reply::Subscription(SubscriptionReply {
                    message: message.message.clone(),
                    topic_arn: message.topic_arn.clone(),
                    subscription: None,
                    ignored: Some("unsubscribe confirmation verified and recorded; nothing done"),
                    audit_id: meta.id.clone(),
                })),
                outcome: Outcome::Ignored,
                delivery: None,
            })
        }
        MessageType::Notification => notification(state, meta, &verified).await,
    }
}

/// A verified notification. What it comes to depends only on its message and the configuration, so it is
/// decided first: one that leads to nothing is recorded and its delivery claimed in a single commit; one that
/// leads to a run claims its delivery before the run (a redelivery of either is answered as the first was).
async fn notification(
    state: &AppState,
    meta: &mut RequestMeta,
    verified: &Verified,
) -> Result<Handled, Rejection> {
    let message = verified.message();
    let key = verified.delivery_key();
    if let Some(replay) = state.audit.replay_of(key) {
        return Ok(replayed(meta, replay));
    }
    let decision = match rule_of(state, meta, &message.topic_arn, &message.message) {
        Ok(Some(matched)) => {
            meta.note("rule", &matched.rule);
            return match claim(state, meta, key.to_owned(), None).await? {
                Ok(key) => Ok(Handled::Run {
                    trigger: Box::new(Trigger::for_rule(
                        verified.proof(),
                        matched,
                        message.message.clone(),
                        false,
                    )),
                    delivery: Some(key),
                }),
                Err(replay) => Ok(replay),
            };
        }
        Ok(None) => decide(&state.config, &message.topic_arn, &message.message),
        Err(reason) => Err(reason),
    };
    let decision = match decision {
        Ok(decision) => decision,
        Err(reason) => {
            // Refused, unless this is a redelivery of a message handled before (under another configuration).
            let key = match claim(state, meta, key.to_owned(), None).await? {
                Ok(key) => key,
                Err(replay) => return Ok(replay),
            };
            return Err(Rejection {
                error: ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unusable-alert", reason),
                delivery: Some(key),
            });
        }
    };
    meta.note("decision", format!("{decision:?}"));
    match decision {
        Decision::NoRuleMatched(reason) => {
            let key = match claim(state, meta, key.to_owned(), None).await? {
                Ok(key) => key,
                Err(replay) => return Ok(replay),
            };
            Err(Rejection {
                error: ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no-rule-matched", reason),
                delivery: Some(key),
            })
        }
        Decision::Ignore(reason) => Ok(Handled::Unclaimed {
            reply: Box::new(Reply::Summary(Box::new(Summary::ignored(
                message.message.clone(),
                reason,
                state.config.remediation.dry_run,
                meta.id.clone(),
            )))),
            outcome: Outcome::Ignored,
            key: key.to_owned(),
        }),
        Decision::Remediate { target, place, .. } => {
            match claim(state, meta, key.to_owned(), None).await? {
                Ok(key) => Ok(Handled::Run {
                    trigger: Box::new(
                        Trigger::new(verified.proof(), target, message.message.clone(), false)
                            .in_place(place),
                    ),
                    delivery: Some(key),
                }),
                Err(replay) => Ok(replay),
            }
        }
    }
}

/// The rule a CloudWatch alarm's message matches, when rules are configured and one does: a rule acts in its
/// own account and region, so only an alarm of that place (when it names one) matches it, and the alarm may
/// name that account only over a topic bound to it (`sns::account_allowed`, as for targets): `Err` says why
/// not, and the message is refused. The alarm and the rule it came to are noted (`Routed`).
fn rule_of(
    state: &AppState,
    meta: &mut RequestMeta,
    topic_arn: &str,
    message: &str,
) -> Result<Option<Matched>, String> {
    if !state.engine.has_rules() {
        return Ok(None);
    }
    let Some(alert) = AlertFacts::from_cloudwatch(message) else {
        return Ok(None);
    };
    let matched = state.engine.route(&alert);
    let allowed = match &matched {
        Some(_) => {
            let account = Some(alert.account.as_str()).filter(|account| !account.is_empty());
            crate::sns::account_allowed(&state.config, topic_arn, &alert.name, account)
        }
        None => Ok(()),
    };
    let rule = matched.as_ref().map(|matched| matched.rule.clone());
    meta.note(ROUTED_NOTE, [Routed { alert, rule }]);
    allowed.map(|()| matched)
}

/// reflex was unsubscribed from an allowed topic: its alarms will no longer arrive. Loud on purpose: logged as
/// an error, counted, and shown by `/readyz`.
fn unsubscribed(state: &AppState, topic_arn: &str) {
    tracing::error!(
        topic_arn,
        "SNS unsubscribed reflex from an allowed topic: its alarms no longer arrive; subscribe again"
    );
    state
        .metrics
        .sns_unsubscribed
        .get_or_create(&crate::metrics::TopicLabels {
            topic_arn: topic_arn.to_owned(),
        })
        .inc();
    state
        .sns
        .unsubscribed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(topic_arn.to_owned(), OffsetDateTime::now_utc());
}

async fn confirm(
    state: &AppState,
    meta: &mut RequestMeta,
    verified: &Verified,
) -> Result<Handled, Rejection> {
    let message = verified.message();
    let how = state
        .sns
        .confirmer
        .confirm(verified)
        .await
        .map_err(|err| match err {
            ConfirmError::Untrusted(err) => ApiError::from(err),
            ConfirmError::Failed(_) => ApiError::unavailable("confirmation-failed", &err),
        })?;
    meta.note(
        "confirmed",
        json!({"topic_arn": message.topic_arn, "method": how}),
    );
    tracing::info!(topic_arn = %message.topic_arn, method = how, "SNS subscription confirmed");
    Ok(Handled::Reply {
        reply: Box::new(Reply::Subscription(SubscriptionReply {
            message: message.message.clone(),
            topic_arn: message.topic_arn.clone(),
            subscription: Some("confirmed"),
            ignored: None,
            audit_id: meta.id.clone(),
        })),
        outcome: Outcome::Confirmed,
        delivery: None,
    })
}

impl From<SnsError> for ApiError {
    fn from(err: SnsError) -> Self {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::FORBIDDEN);
        if status.is_server_error() {
            return ApiError::unavailable(err.code(), &err);
        }
        ApiError::new(status, err.code(), err.to_string())
    }
}
