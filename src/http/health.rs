//! `GET /healthz` (the process answers) and `GET /readyz` (the audit store answers too).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the audit store can be read and still commits a write. Topics that unsubscribed reflex are listed
/// under `warnings` (still ready: reflex works, but those alarms no longer arrive).
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.audit.ping().await?;
    let warnings: Vec<String> = state
        .sns
        .unsubscribed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|(topic, at)| {
            let at = crate::audit::rfc3339(*at);
            format!("SNS topic {topic} unsubscribed reflex at {at}; subscribe again")
        })
        .collect();
    if warnings.is_empty() {
        return Ok(Json(json!({"status": "ready"})));
    }
    Ok(Json(json!({"status": "ready", "warnings": warnings})))
}
