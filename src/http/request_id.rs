//! Every request gets an id (a ULID) before anything else runs: it is on every log line of the request (through a
//! tracing span), in the `x-request-id` answer header, and it is the id of the request's audit record.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::audit::next_id;

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
