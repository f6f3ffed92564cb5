//! The one path every audited request ends on: a receiver says what its request comes to (`Handled`), and
//! `finish` runs it through the engine's recorded run or records it here, then maps the outcome to HTTP.
//! An answer is only sent once its record is durable; when the audit trail cannot be written, the caller gets
//! a 503 and may retry.

use std::future::Future;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::request_id::Arrival;
use super::{ApiError, AppState};
use crate::audit::{Auth, Delivery, DeliveryKey, Outcome, Replay, RequestMeta, Source};
use crate::engine::{Reply, Summary, Trigger};

/// What an authenticated, parsed request comes to.
#[derive(Debug)]
pub enum Handled {
    /// An answer that needs no remediation (an ignored alert, a confirmed subscription).
    Reply {
        /// The answer (boxed: a summary is large beside the other variants).
        reply: Box<Reply>,
        /// Its audit outcome.
        outcome: Outcome,
        /// The claimed delivery, completed with the answer.
        delivery: Option<DeliveryKey>,
    },
    /// An answer that needed no delivery claim while it was made (an SNS alert that leads to nothing): recorded
    /// with its delivery claimed and completed in one commit; when another delivery of the message holds the
    /// key, handled as a redelivery instead.
    Unclaimed {
        /// The answer.
        reply: Box<Reply>,
        /// Its audit outcome.
        outcome: Outcome,
        /// The delivery key to claim and complete.
        key: String,
    },
    /// A redelivery: the first delivery's answer, replayed as it is; nothing else happens.
    Replay {
        /// The answer a redelivery gets.
        answer: Bytes,
    },
    /// One remediation, recorded in the request's own record (SNS, manual).
    Run {
        /// What to heal (boxed: a trigger is large beside the other variants).
        trigger: Box<Trigger>,
        /// The claimed delivery, settled with the run's record.
        delivery: Option<DeliveryKey>,
    },
    /// One remediation per load balancer an alert group named, each with its own record; the request's
    /// record lists them and settles the delivery (Alertmanager, Grafana).
    Runs {
        /// What to heal.
        triggers: Vec<Trigger>,
        /// Results for alerts that lead to nothing, answered before the runs' summaries.
        ignored: Vec<Summary>,
        /// The claimed delivery.
        delivery: DeliveryKey,
    },
}

/// A request refused after authentication started: the error answered, and the delivery it had claimed,
/// released with its record so that a retry is handled afresh.
#[derive(Debug)]
pub struct Rejection {
    /// The answer.
    pub error: ApiError,
    /// The claim to release.
    pub delivery: Option<DeliveryKey>,
}

impl<E: Into<ApiError>> From<E> for Rejection {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            delivery: None,
        }
    }
}

/// A receiver: says who sends its requests and what one comes to once authenticated and parsed.
pub trait Receive: Send + 'static {
    /// Where its requests come from, for their audit records.
    fn source(&self) -> Source;

    /// Authenticates the raw request, then parses it into what it comes to.
    fn handle<'a>(
        self,
        state: &'a AppState,
        meta: &'a mut RequestMeta,
        headers: &'a HeaderMap,
        body: Result<Bytes, ApiError>,
    ) -> impl Future<Output = Result<Handled, Rejection>> + Send + 'a;
}

/// Every audited receiver's path: the request's record starts at its arrival, its work runs detached from
/// the connection (a client that goes away cancels nothing), and it ends in `finish`.
pub async fn receive(
    receiver: impl Receive,
    state: AppState,
    arrival: Arrival,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Response {
    let mut meta = arrival.meta(receiver.source());
    let id = meta.id.clone();
    super::detached(&state.clone(), id, async move {
        let handled = receiver.handle(&state, &mut meta, &headers, body).await;
        finish(&state, meta, handled).await
    })
    .await
}

/// Claims the delivery `key` for the request `meta` (with a window, a claim older than it is taken over) and
/// says what the dedup primitive's answer means for a receiver: go on with a claimed key, or stop here.
pub async fn claim(
    state: &AppState,
    meta: &mut RequestMeta,
    key: String,
    window: Option<std::time::Duration>,
) -> Result<Result<DeliveryKey, Handled>, ApiError> {
    match state.audit.claim_delivery(key, &meta.id, window).await? {
        Delivery::Claimed(key) => Ok(Ok(key)),
        Delivery::Replay { first_id, answer } => {
            Ok(Err(replayed(meta, Replay { first_id, answer })))
        }
        Delivery::InProgress { first_id } => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "delivery-in-progress",
            format!(
                "an earlier delivery of this message ({first_id}) has not finished; retry later"
            ),
        )),
    }
}

/// A redelivery answered from memory or from the store: the first delivery's answer, noted as its duplicate.
pub fn replayed(meta: &mut RequestMeta, replay: Replay) -> Handled {
    meta.note("duplicate_of", &replay.first_id);
    Handled::Replay {
        answer: replay.answer,
    }
}

/// Runs or records what the request came to, and answers.
pub async fn finish(
    state: &AppState,
    mut meta: RequestMeta,
    handled: Result<Handled, Rejection>,
) -> Response {
    if handled.is_ok() && meta.auth == Auth::NotChecked {
        meta.auth = Auth::Passed;
    }
    match handled {
        Ok(Handled::Run { trigger, delivery }) => {
            match state.engine.run(meta, &trigger, delivery).await {
                Ok(run) => json(Reply::Summary(Box::new(run.summary)).to_bytes()),
                Err(err) => ApiError::from(err).into_response(),
            }
        }
        Ok(Handled::Runs {
            triggers,
            ignored,
            delivery,
        }) => runs(state, meta, triggers, ignored, delivery).await,
        Ok(Handled::Reply {
            reply,
            outcome,
            delivery,
        }) => {
            meta.note("answer", &reply);
            let record = meta.into_record(outcome, 200, None, 0);
            let settle = delivery.map(|key| key.complete(reply.redelivered()));
            answered(state, record, settle, reply.to_bytes()).await
        }
        Ok(Handled::Unclaimed {
            reply,
            outcome,
            key,
        }) => Box::pin(unclaimed(state, meta, reply, outcome, key)).await,
        Ok(Handled::Replay { answer }) => {
            let record = meta.into_record(Outcome::Duplicate, 200, None, 0);
            answered(state, record, None, answer).await
        }
        Err(Rejection { error, delivery }) => rejected(state, meta, error, delivery).await,
    }
}

/// Records an answer and claims its delivery in one commit; when another delivery holds the key, claims it as
/// any receiver does (a replay, a wait for the other, or a claim of a key that was released meanwhile).
async fn unclaimed(
    state: &AppState,
    meta: RequestMeta,
    reply: Box<Reply>,
    outcome: Outcome,
    key: String,
) -> Response {
    let mut again = meta.clone();
    let mut meta = meta;
    meta.note("answer", &reply);
    let record = meta.into_record(outcome, 200, None, 0);
    let body = reply.to_bytes();
    match state
        .audit
        .put_first(record, key.clone(), reply.redelivered())
        .await
    {
        Ok(true) => return json(body),
        Ok(false) => {}
        Err(err) => return ApiError::from(err).into_response(),
    }
    let handled = match claim(state, &mut again, key, None).await {
        Ok(Ok(key)) => Ok(Handled::Reply {
            reply,
            outcome,
            delivery: Some(key),
        }),
        Ok(Err(replay)) => Ok(replay),
        Err(err) => Err(err.into()),
    };
    finish(state, again, handled).await
}

/// The webhook case: a run per load balancer, then the request's record with every result.
async fn runs(
    state: &AppState,
    mut meta: RequestMeta,
    triggers: Vec<Trigger>,
    mut results: Vec<Summary>,
    delivery: DeliveryKey,
) -> Response {
    let mut acted = 0;
    let mut transient = None;
    let mut run_ids = Vec::with_capacity(triggers.len());
    for trigger in triggers {
        let child = meta.child();
        let child_id = child.id.clone();
        run_ids.push(child_id.clone());
        match state.engine.run(child, &trigger, None).await {
            Ok(run) => {
                acted += run.acted;
                results.push(run.summary);
            }
            Err(err) if err.is_transient() => transient = Some(err),
            Err(err) => results.push(Summary::ignored(
                trigger.message,
                err.code().to_owned(),
                trigger.dry_run || state.config.remediation.dry_run,
                child_id,
            )),
        }
    }
    meta.note("runs", &run_ids);
    if let Some(err) = transient {
        // The sender retries; groups already healed are protected by the cooldown and their state.
        return rejected(state, meta, ApiError::from(err), Some(delivery)).await;
    }
    let reply = Reply::Results { results };
    meta.note("answer", &reply);
    let record = meta.into_record(Outcome::Completed, 200, None, acted);
    let settle = delivery.complete(reply.redelivered());
    answered(state, record, Some(settle), reply.to_bytes()).await
}

async fn answered(
    state: &AppState,
    record: crate::audit::AuditRecord,
    settle: Option<crate::audit::DeliveryUpdate>,
    body: Bytes,
) -> Response {
    match state.audit.put_settling(record, settle).await {
        Ok(()) => json(body),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Records a refusal (and releases a claimed delivery with it), counts it, and answers the error.
async fn rejected(
    state: &AppState,
    mut meta: RequestMeta,
    err: ApiError,
    delivery: Option<DeliveryKey>,
) -> Response {
    if err.is_auth_failure() {
        meta.auth = Auth::Failed(err.code.into());
    }
    // An unauthenticated rejection past its source's rate is counted for a summary record instead of a full
    // one (it never holds a delivery claim: claims come after authentication).
    let authenticated = delivery.is_some() || meta.auth == Auth::Passed;
    if !state.rejection_recorded(meta.source, err.code, authenticated) {
        return err.into_response();
    }
    meta.note("error", &err.detail);
    let record = meta.into_record(Outcome::Rejected, err.status.as_u16(), Some(err.code), 0);
    match state
        .audit
        .put_settling(record, delivery.map(DeliveryKey::release))
        .await
    {
        Ok(()) => err.into_response(),
        Err(audit) => ApiError::from(audit).into_response(),
    }
}

/// A 200 with a JSON body already serialised.
fn json(body: Bytes) -> Response {
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}
