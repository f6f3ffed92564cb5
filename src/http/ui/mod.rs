//! `/ui/`: the audit page for people — a timeline of what reflex did, one page per run, and the state of its
//! brakes — rendered on the server, read-only, for holders of an audit token. A login form (with a CSRF token,
//! its attempts limited per address and per token prefix) sets an HttpOnly, SameSite=Strict session cookie
//! (Secure when reflex serves TLS or `server.public_url` is https) naming a session the store records, which a
//! logout ends and which expires; without one, a page redirects to the form. Every answer carries a strict Content-Security-Policy: no script, nothing
//! from another origin.

mod activity;
mod approval_pages;
mod approvals;
mod attempts;
mod chart;
mod layout;
mod pages;
mod session;
mod targets;

pub use attempts::LoginAttempts;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;

use super::body::WholeBody;
use super::request_id::Arrival;
use super::{ApiError, AppState};
use crate::audit::{Auth, Filter, Outcome, Source};
use crate::controls::Controls;
use pages::FilterForm;
use session::{SESSION_FOR, Sessions};

/// Records per timeline page.
const PAGE: u32 = 50;
const SESSION_COOKIE: &str = "reflex_session";
const CSRF_COOKIE: &str = "reflex_csrf";
/// Nothing but this origin's stylesheet and forms.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/") }))
        .route("/ui/", get(timeline))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/targets/{key}", get(targets::show))
        .route("/ui/approvals", get(approvals::list))
        .route("/ui/approvals/{id}", get(approvals::show))
        .route("/ui/approvals/{id}/approve", post(approvals::approve))
        .route("/ui/approvals/{id}/reject", post(approvals::reject))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/style.css", get(style))
        .layer(axum::middleware::from_fn(protect))
}

/// The headers every page carries.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for `/ui`; Secure when reflex serves TLS or is reached
/// at an https `server.public_url` (a proxy terminating TLS).
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let server = &state.config.server;
    let https = server
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let secure = if server.tls_cert.is_some() || https {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session's keys (the store's random key), when audit or approver tokens are configured.
async fn sessions(state: &AppState) -> Result<Option<Sessions>, ApiError> {
    if state.config.audit.tokens.is_empty() && !state.config.approvals.any_token() {
        return Ok(None);
    }
    let key = state.audit.ui_key().await?;
    Ok(Sessions::from_key(&key))
}

/// The live session the request's cookie names, if any.
async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let (Some(keys), Some(value)) = (sessions(state).await?, cookie(headers, SESSION_COOKIE))
    else {
        return Ok(None);
    };
    let Some(id) = keys.session_id(value, OffsetDateTime::now_utc()) else {
        return Ok(None);
    };
    // A session lasts only while the token it was opened with is still configured (audit or approver).
    let approvers = keys.approvers(&state.config);
    let held = Sessions::credential_of(id).is_some_and(|who| approvers.still_held(&who));
    if !held {
        return Ok(None);
    }
    Ok(state
        .audit
        .session_is_live(id)
        .await?
        .then(|| id.to_owned()))
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    Ok(session_of(state, headers).await?.is_some())
}

async fn style() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

/// The login form with a fresh CSRF token (in the form and in a cookie), answered with `status`.
async fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let keys = match sessions(state).await {
        Ok(keys) => keys,
        Err(err) => return err.into_response(),
    };
    let Some(keys) = keys else {
        return ApiError::unauthorized(
            "auth-not-configured",
            "the audit page is disabled: no tokens are configured in [audit]",
        )
        .into_response();
    };
    let csrf = keys.csrf(OffsetDateTime::now_utc());
    let mut response = (status, Html(pages::login(&csrf, error).into_string())).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(state, CSRF_COOKIE, &csrf, 3600));
    response
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok(true) => see_other("/ui/"),
        Ok(false) => login_page(&state, StatusCode::OK, None).await,
        Err(err) => err.into_response(),
    }
}

/// Checks the CSRF token and the audit token; records the attempt; sets the session cookie.
async fn login(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut meta = arrival.meta(Source::AuditRead);
    meta.note("ui", "login");
    let keys = match sessions(&state).await {
        Ok(Some(keys)) => keys,
        Ok(None) => return login_page(&state, StatusCode::UNAUTHORIZED, None).await,
        Err(err) => return err.into_response(),
    };
    let body = body.unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let now = OffsetDateTime::now_utc();
    let csrf = field("csrf").unwrap_or_default();
    let token = field("token").unwrap_or_default();
    let source = attempts::address_of(meta.caller.as_deref().unwrap_or_default()).to_owned();
    let failure = login_refused(&state, &headers, &keys, &source, csrf, token, now);
    let (status, code, outcome) = match failure {
        Some((status, code, message)) => {
            meta.auth = Auth::Failed(code.into());
            if !state.rejection_recorded(Source::AuditRead, code, false) {
                return login_page(&state, status, Some(message)).await;
            }
            (status, Some(code), Outcome::Rejected)
        }
        None => {
            meta.auth = Auth::Passed;
            (StatusCode::SEE_OTHER, None, Outcome::Completed)
        }
    };
    if let Err(err) = state
        .audit
        .put(meta.into_record(outcome, status.as_u16(), code, 0))
        .await
    {
        return ApiError::from(err).into_response();
    }
    if let Some((status, _, message)) = failure {
        return login_page(&state, status, Some(message)).await;
    }
    start_session(&state, &keys, token, now).await
}

/// Why a login is refused, checked in this order: too many attempts from `source` or with this token (the
/// attempt counts), a missing or stale CSRF token, a token that is neither an audit nor an approver token.
/// Each reason is its status, its rejection code and the message the form shows.
fn login_refused(
    state: &AppState,
    headers: &HeaderMap,
    keys: &Sessions,
    source: &str,
    csrf: &str,
    token: &str,
    now: OffsetDateTime,
) -> Option<(StatusCode, &'static str, &'static str)> {
    if !state.logins.allow(source, token) {
        Some((
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Too many attempts; wait a minute and try again.",
        ))
    } else if csrf.is_empty()
        || cookie(headers, CSRF_COOKIE) != Some(csrf)
        || !keys.csrf_valid(csrf, now)
    {
        Some((
            StatusCode::FORBIDDEN,
            "invalid-csrf",
            "The form expired; try again.",
        ))
    } else if !crate::config::any_matches(&state.config.audit.tokens, token.as_bytes())
        && keys
            .approvers(&state.config)
            .by_token(token.as_bytes())
            .is_none()
    {
        Some((
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            "That token is not accepted.",
        ))
    } else {
        None
    }
}

/// After a login that passed: records the session for `token` and answers with its cookie (clearing the
/// CSRF one), on to the timeline.
async fn start_session(
    state: &AppState,
    keys: &Sessions,
    token: &str,
    now: OffsetDateTime,
) -> Response {
    // An approver's session carries who the approver is: its pages show the approval buttons.
    let approvers = keys.approvers(&state.config);
    let approving = approvers.by_token(token.as_bytes()).is_some();
    let credential = approvers.credential(token.as_bytes());
    let id = if approving {
        Sessions::new_approver_id(&credential)
    } else {
        Sessions::new_reader_id(&credential)
    };
    let lifetime = std::time::Duration::from_secs(SESSION_FOR.whole_seconds().unsigned_abs());
    if let Err(err) = state.audit.start_session(&id, lifetime).await {
        return ApiError::from(err).into_response();
    }
    let mut response = see_other("/ui/");
    let headers = response.headers_mut();
    headers.append(
        SET_COOKIE,
        set_cookie(
            state,
            SESSION_COOKIE,
            &keys.issue(&id, now),
            SESSION_FOR.whole_seconds(),
        ),
    );
    headers.append(SET_COOKIE, set_cookie(state, CSRF_COOKIE, "", 0));
    response
}

/// Ends the session in the store (on every replica at once) and clears its cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_of(&state, &headers).await {
        Ok(Some(id)) => {
            if let Err(err) = state.audit.end_session(&id).await {
                return ApiError::from(err).into_response();
            }
        }
        Ok(None) => {}
        Err(err) => return err.into_response(),
    }
    let mut response = see_other("/ui/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    response
}

/// `datetime-local` (`2026-11-26T03:12`, seconds optional), read as UTC.
fn parse_local(value: &str) -> Option<OffsetDateTime> {
    let with_seconds = if value.len() == 16 {
        format!("{value}:00")
    } else {
        value.to_owned()
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(&with_seconds, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

fn some(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The account id an operator's `account` filter means: an `[[accounts]]` name, `local`, or an id as given.
fn account_id(state: &AppState, account: String) -> String {
    match state.config.account(&account) {
        Some(named) => named.account_id().to_owned(),
        None if account == crate::config::LOCAL_ACCOUNT => state.engine.home().account.clone(),
        None => account,
    }
}

/// How far back the timeline searches when no From is given, in days.
pub const TIMELINE_DAYS: i64 = 30;

/// An hour in milliseconds: the timeline's runs chart counts runs per hour.
const HOUR_MS: i64 = 3_600_000;

async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<FilterForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    if !signed_in(&state, &headers).await? {
        return Ok(see_other("/ui/login"));
    }
    let Query(form) =
        query.map_err(|err| ApiError::bad_request("invalid-query", err.body_text()))?;
    let until = parse_local(&form.to);
    // Without From, the `TIMELINE_DAYS` before To (or now): a filter that matches nothing never walks the
    // whole trail.
    let since = parse_local(&form.from).or_else(|| {
        Some(until.unwrap_or_else(OffsetDateTime::now_utc) - time::Duration::days(TIMELINE_DAYS))
    });
    let filter = Filter {
        target: some(&form.target),
        account: some(&form.account).map(|account| account_id(&state, account)),
        region: some(&form.region),
        source: some(&form.source),
        outcome: some(&form.outcome),
        since,
        until,
        before: some(&form.before),
        runs_only: form.runs_only(),
    };
    let mut records = state.audit.search(&filter, PAGE + 1).await?;
    let next = (records.len() > PAGE as usize).then(|| {
        records.truncate(PAGE as usize);
        let mut link = url::form_urlencoded::Serializer::new(String::from("/ui/?"));
        for (key, value) in [
            ("target", &form.target),
            ("account", &form.account),
            ("region", &form.region),
            ("source", &form.source),
            ("outcome", &form.outcome),
            ("from", &form.from),
            ("to", &form.to),
            ("access", &form.access),
        ] {
            if !value.is_empty() {
                link.append_pair(key, value);
            }
        }
        link.append_pair("before", &records[records.len() - 1].id);
        link.finish()
    });
    let controls = Controls {
        audit: &state.audit,
        config: &state.config,
        home: state.engine.home(),
        metrics: None,
    };
    let brakes = controls.state().await?;
    let mut last_runs = Vec::new();
    for target in state.engine.target_ids() {
        last_runs.push((target.clone(), state.audit.last_run(target).await?));
    }
    let until = OffsetDateTime::now_utc();
    let since = until - time::Duration::DAY;
    let rows = state.audit.activity(None, since, HOUR_MS).await?;
    let periods = activity::periods(&rows, since, until, time::Duration::HOUR);
    let activity = activity::runs("every target", "hour", &periods);
    let page = pages::timeline(
        &brakes,
        &last_runs,
        activity,
        &records,
        &form,
        next.as_deref(),
    );
    Ok(Html(page.into_string()).into_response())
}

async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !signed_in(&state, &headers).await? {
        return Ok(see_other("/ui/login"));
    }
    let Some(record) = state.audit.get(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no audit record {id}"),
        ));
    };
    let recovery = if record.acted > 0 {
        state.audit.recovery_of(&record.id).await?
    } else {
        None
    };
    let episode = state.audit.episode_story(&record.id).await?;
    let page = pages::run(&record, recovery.as_ref(), episode.as_ref());
    Ok(Html(page.into_string()).into_response())
}
