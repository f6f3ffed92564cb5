//! `GET /audit?limit=N`: the audit trail, newest first, and `GET /audit/{id}`: one record (notifications link
//! it), for holders of an audit token. Successful reads are not recorded (they change nothing); refused ones
//! are.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::request_id::Arrival;
use super::{ApiError, AppState, auth};
use crate::audit::{AuditRecord, Auth, Outcome, Source};

/// Records returned when the caller gives no limit.
const DEFAULT_LIMIT: u32 = 100;
/// The most records one call returns.
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
struct ListResponse {
    records: Vec<AuditRecord>,
}

/// The route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/{id}", get(one))
}

/// Checks the audit token; a refused read is recorded.
async fn authorized(
    state: &AppState,
    arrival: Arrival,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if let Err(err) = auth::bearer(headers, &state.config.audit.tokens, "audit") {
        if !state.rejection_recorded(Source::AuditRead, err.code, false) {
            return Err(err);
        }
        let mut meta = arrival.meta(Source::AuditRead);
        meta.auth = Auth::Failed(err.code.into());
        state
            .audit
            .put(meta.into_record(Outcome::Rejected, err.status.as_u16(), Some(err.code), 0))
            .await?;
        return Err(err);
    }
    Ok(())
}

async fn one(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AuditRecord>, ApiError> {
    authorized(&state, arrival, &headers).await?;
    state.audit.get(&id).await?.map(Json).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not-found",
            format!("no audit record {id}"),
        )
    })
}

async fn list(
    State(state): State<AppState>,
    arrival: Arrival,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    authorized(&state, arrival, &headers).await?;
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("invalid-query", err.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let records = state.audit.list(limit).await?;
    Ok(Json(ListResponse { records }))
}
