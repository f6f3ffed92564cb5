//! Bearer-token authentication for the manual and audit routes: constant-time comparison, fail closed.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::error::ApiError;
use crate::config::{Secret, any_matches};
use crate::engine::Authenticated;

/// Checks `Authorization: Bearer <token>` against the configured tokens. No configured token means nobody
/// gets in.
pub fn bearer(
    headers: &HeaderMap,
    tokens: &[Secret],
    section: &str,
) -> Result<Authenticated, ApiError> {
    if tokens.is_empty() {
        return Err(ApiError::unauthorized(
            "auth-not-configured",
            format!("this route is disabled: no tokens are configured in [{section}]"),
        ));
    }
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing-credentials", "send Authorization: Bearer <token>")
    })?;
    let presented = header
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .or_else(|| header.as_bytes().strip_prefix(b"bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("missing-credentials", "send Authorization: Bearer <token>")
        })?;
    if any_matches(tokens, presented) {
        Ok(Authenticated::issued())
    } else {
        Err(ApiError::unauthorized(
            "invalid-token",
            "the bearer token is not accepted",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn accepts_any_configured_token_and_rejects_the_rest() {
        let tokens = [
            Secret::new("token-one-0123456789"),
            Secret::new("token-two-0123456789"),
        ];
        assert!(bearer(&headers("Bearer token-two-0123456789"), &tokens, "manual").is_ok());
        let codes: Vec<_> = [
            headers("Bearer token-three-0123456789"),
            headers("Basic token-one-0123456789"),
            headers("Bearer "),
            HeaderMap::new(),
        ]
        .iter()
        .map(|h| bearer(h, &tokens, "manual").unwrap_err().code)
        .collect();
        assert_eq!(
            codes,
            [
                "invalid-token",
                "missing-credentials",
                "invalid-token",
                "missing-credentials"
            ]
        );
    }

    #[test]
    fn fails_closed_without_tokens() {
        let err = bearer(&headers("Bearer anything"), &[], "manual").unwrap_err();
        assert_eq!(err.code, "auth-not-configured");
        assert_eq!(err.status, 401);
    }
}
