//! Every request gets an id (a ULID) before anything else runs: it is on every log line of the request (through a
//! tracing span), in the `x-request-id` answer header, and it is the id of the request's audit record.
//! `Arrival` hands a handler that id with the caller's address, ready to start the audit record.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::AppState;
use crate::audit::{RequestMeta, Source, next_id};

/// The id assigned to the request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Assigns the id, runs the request inside a span carrying it, and returns it in `x-request-id`.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = next_id();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Who sent the request and under which id: what every audited route starts its record with.
#[derive(Debug)]
pub struct Arrival {
    id: String,
    caller: Option<String>,
}

impl Arrival {
    /// Starts the audit record of this request, from `source`.
    pub fn meta(self, source: Source) -> RequestMeta {
        RequestMeta::with_id(self.id, source, self.caller)
    }
}

impl FromRequestParts<AppState> for Arrival {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(next_id, |id| id.0.clone());
        let caller = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| caller(state, *peer, &parts.headers));
        Ok(Self { id, caller })
    }
}

/// The caller's address as recorded in the audit trail: the peer, or — when the peer is a trusted proxy — the
/// nearest untrusted address in `X-Forwarded-For`, noted with the proxy it came through.
fn caller(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> String {
    let trusted = &state.config.server.trusted_proxies;
    if !trusted.contains(&peer.ip()) {
        return peer.to_string();
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    let client = forwarded
        .iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(forwarded.first());
    match client {
        Some(ip) => format!("{ip} (via {peer})"),
        None => peer.to_string(),
    }
}
