//! The `/admin` routes, for holders of an admin token (`[admin] tokens`, separate from the manual ones): the
//! kill switch (`POST /admin/pause`, `POST /admin/resume`), silences (`POST /admin/silences`,
//! `DELETE /admin/silences/{id}`), the breaker reset (`POST /admin/breaker/reset`) and `GET /admin/state`.
//! Every call that changes something, and every refused call, is audited.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::body::WholeBody;
use super::error::parse_json;
use super::request_id::Arrival;
use super::{ApiError, AppState, auth};
use crate::audit::{Auth, RequestMeta, Source};
use crate::controls::{ControlError, Controls, Named, Names, State as Brakes};
use crate::target::Place;

/// The body of every `/admin` change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    /// The configured target; absent for everything (pause and resume only).
    target: Option<String>,
    /// A `[[rules]]` entry, by name, instead of a target (pause, resume, silence).
    rule: Option<String>,
    /// One instance, by id, instead of a target (pause, resume): every run in its place leaves it alone (a
    /// string when given, never null).
    #[serde(default, deserialize_with = "super::error::present")]
    instance: Option<String>,
    /// The target's account, when several targets share its name, or the rule's (a string when given, never
    /// null).
    #[serde(default, deserialize_with = "super::error::present")]
    account: Option<String>,
    /// The target's region, when several targets share its name, or the rule's (a string when given, never
    /// null).
    #[serde(default, deserialize_with = "super::error::present")]
    region: Option<String>,
    /// Why (required to pause and to reset a breaker).
    reason: Option<String>,
}

/// The body of `POST /admin/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    /// The configured target; absent for everything.
    target: Option<String>,
    /// A `[[rules]]` entry, by name, instead of a target.
    rule: Option<String>,
    /// One instance, by id, instead of a target: every run in its place leaves it alone (a string when
    /// given, never null).
    #[serde(default, deserialize_with = "super::error::present")]
    instance: Option<String>,
    /// The target's account, when several targets share its name, or the rule's.
    #[serde(default, deserialize_with = "super::error::present")]
    account: Option<String>,
    /// The target's region, when several targets share its name, or the rule's.
    #[serde(default, deserialize_with = "super::error::present")]
    region: Option<String>,
    /// How long (`90s`, `15m`, `2h`, `1d`): required, a silence always ends.
    #[serde(rename = "for")]
    length: Option<String>,
    /// Why (required).
    reason: Option<String>,
    /// Who sets it (recorded and shown; defaults to the admin token's caller).
    #[serde(default, deserialize_with = "super::error::present")]
    by: Option<String>,
}

/// The body of `DELETE /admin/silences/{id}` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    /// Why it is lifted early.
    reason: Option<String>,
}

/// A change that names a target.
trait Targeted {
    /// The target's name, if any (none: everything).
    fn target(&self) -> Option<&str>;
    /// The rule's name, if it names a rule instead.
    fn rule(&self) -> Option<&str>;
    /// The instance's id, if it names one instance instead.
    fn instance(&self) -> Option<&str>;
    /// Where the request says its target is.
    fn place(&self) -> Place;
    /// How many of a target, a rule and an instance it names (more than one is refused).
    fn subjects(&self) -> usize {
        [self.target(), self.rule(), self.instance()]
            .iter()
            .flatten()
            .count()
    }
    /// The target, rule or instance it names, in `place`.
    fn named<'a>(&'a self, place: &'a Place) -> Option<Named<'a>> {
        let (name, names) = match (self.target(), self.rule(), self.instance()) {
            (_, Some(name), _) => (name, Names::Rule),
            (_, None, Some(id)) => (id, Names::Instance),
            (Some(name), None, None) => (name, Names::Target),
            (None, None, None) => return None,
        };
        Some(Named { name, place, names })
    }
}

impl Targeted for ControlRequest {
    fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
    fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
    fn place(&self) -> Place {
        Place::new(self.account.clone(), self.region.clone())
    }
}

impl Targeted for SilenceRequest {
    fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
    fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
    fn place(&self) -> Place {
        Place::new(self.account.clone(), self.region.clone())
    }
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/state", get(state))
        .route("/admin/pause", post(pause))
        .route("/admin/resume", post(resume))
        .route("/admin/breaker/reset", post(reset))
        .route("/admin/silences", post(silence))
        .route("/admin/silences/{id}", axum::routing::delete(lift))
}

async fn state(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
) -> Result<Json<Brakes>, ApiError> {
    let meta = arrival.meta(Source::Admin);
    if let Err(err) = auth::bearer(&headers, &state.config.admin.tokens, "admin") {
        return Err(state.refused(meta, err).await);
    }
    Ok(Json(controls(&state).state().await?))
}

async fn pause(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (meta, request) = accepted::<ControlRequest>(&state, arrival, &headers, body).await?;
    let place = request.place();
    let meta = placed(&state, meta, &request, &place).await?;
    let reason = request.reason.as_deref().unwrap_or_default();
    controls(&state)
        .pause(meta, request.named(&place), reason)
        .await
        .map_err(refused)?;
    Ok(Json(
        serde_json::json!({"paused": request.target, "rule": request.rule, "instance": request.instance, "reason": reason}),
    ))
}

async fn resume(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (meta, request) = accepted::<ControlRequest>(&state, arrival, &headers, body).await?;
    let place = request.place();
    let meta = placed(&state, meta, &request, &place).await?;
    controls(&state)
        .resume(meta, request.named(&place), request.reason.as_deref())
        .await
        .map_err(refused)?;
    Ok(Json(
        serde_json::json!({"resumed": request.target, "rule": request.rule, "instance": request.instance}),
    ))
}

async fn silence(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (meta, request) = accepted::<SilenceRequest>(&state, arrival, &headers, body).await?;
    let place = request.place();
    let meta = placed(&state, meta, &request, &place).await?;
    let Some(length) = request.length.as_deref() else {
        let err = ApiError::bad_request(
            "invalid-request",
            "missing field: give for (how long the silence lasts: 90s, 15m, 2h, 1d)",
        );
        return Err(state.refused(meta, err).await);
    };
    let by = request.by.clone().unwrap_or_else(|| {
        format!(
            "admin token from {}",
            meta.caller.as_deref().unwrap_or("an unknown address")
        )
    });
    let silence = controls(&state)
        .silence(
            meta,
            request.named(&place),
            length,
            request.reason.as_deref().unwrap_or_default(),
            &crate::untrusted::bounded(&by),
        )
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"silence": silence})),
    ))
}

async fn lift(
    State(state): State<AppState>,
    Path(id): Path<String>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The body is optional: none reads as an empty request.
    let body = body.map(|bytes| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            bytes
        }
    });
    let (meta, request) = accepted::<LiftRequest>(&state, arrival, &headers, body).await?;
    let lifted = controls(&state)
        .unsilence(meta, &id, request.reason.as_deref())
        .await
        .map_err(refused)?;
    Ok(Json(serde_json::json!({"lifted": lifted})))
}

async fn reset(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (meta, request) = accepted::<ControlRequest>(&state, arrival, &headers, body).await?;
    let place = request.place();
    let meta = placed(&state, meta, &request, &place).await?;
    let Some(target) = request
        .named(&place)
        .filter(|named| named.names != Names::Instance)
    else {
        let err = ApiError::bad_request(
            "invalid-request",
            "give target (the configured target whose breaker to reset) or rule: an instance has no breaker",
        );
        return Err(state.refused(meta, err).await);
    };
    let reason = request.reason.as_deref().unwrap_or_default();
    controls(&state)
        .reset_breaker(meta, target, reason)
        .await
        .map_err(refused)?;
    Ok(Json(
        serde_json::json!({"reset": request.target.as_ref().or(request.rule.as_ref()), "reason": reason}),
    ))
}

/// A place names where a target, a rule or an instance is: given without any it is refused (and audited),
/// never read as "everything"; so is a request naming more than one.
async fn placed(
    state: &AppState,
    meta: RequestMeta,
    request: &impl Targeted,
    place: &Place,
) -> Result<RequestMeta, ApiError> {
    if request.subjects() > 1 {
        let err = ApiError::bad_request(
            "invalid-request",
            "give one of target, rule and instance: a rule is not a target, and an instance is neither",
        );
        return Err(state.refused(meta, err).await);
    }
    if request.subjects() == 1 || !place.is_given() {
        return Ok(meta);
    }
    let err = ApiError::bad_request(
        "invalid-request",
        "account and region say where a target, a rule or an instance is: give one of them too (without any \
         of them, everything)",
    );
    Err(state.refused(meta, err).await)
}

fn controls(state: &AppState) -> Controls<'_> {
    Controls {
        audit: &state.audit,
        config: &state.config,
        home: state.engine.home(),
        metrics: Some(&state.metrics),
    }
}

/// Authenticates and parses a change; a refused one is audited before its answer.
async fn accepted<T: DeserializeOwned>(
    state: &AppState,
    arrival: Arrival,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<(RequestMeta, T), ApiError> {
    let mut meta = arrival.meta(Source::Admin);
    let parsed = auth::bearer(headers, &state.config.admin.tokens, "admin").and_then(|_| {
        meta.auth = Auth::Passed;
        parse_json::<T>(&body?)
    });
    match parsed {
        Ok(request) => Ok((meta, request)),
        Err(err) => Err(state.refused(meta, err).await),
    }
}

/// The answer to a control the controls refused (and recorded).
fn refused(err: ControlError) -> ApiError {
    match err {
        ControlError::Audit(err) => err.into(),
        err => ApiError::new(
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST),
            err.code(),
            err.to_string(),
        ),
    }
}
