//! Bearer-token authentication for the manual and audit routes: constant-time comparison, fail closed.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;

use super::error::ApiError;
use crate::approvers::{Approvers, Verified};
use crate::config::{Config, Secret, any_matches};
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
    if any_matches(tokens, presented(headers)?) {
        Ok(Authenticated::issued())
    } else {
        Err(ApiError::unauthorized(
            "invalid-token",
            "the bearer token is not accepted",
        ))
    }
}

/// The token of `Authorization: Bearer <token>`.
pub(super) fn presented(headers: &HeaderMap) -> Result<&[u8], ApiError> {
    let missing =
        || ApiError::unauthorized("missing-credentials", "send Authorization: Bearer <token>");
    let header = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    header
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .or_else(|| header.as_bytes().strip_prefix(b"bearer "))
        .ok_or_else(missing)
}

/// Checks an approver's `Authorization: Bearer <token>` against the named approvers' digests and
/// `[approvals] tokens`, without the store. Nothing configured means nobody gets in.
pub fn is_approver(headers: &HeaderMap, config: &Config) -> Result<(), ApiError> {
    if !config.approvals.any_token() {
        return Err(ApiError::unauthorized(
            "auth-not-configured",
            "this route is disabled: no approver tokens are configured ([[approvals.approvers]] token_sha256 \
             or [approvals] tokens)",
        ));
    }
    if Approvers::holds_token(config, presented(headers)?) {
        Ok(())
    } else {
        Err(not_an_approver())
    }
}

/// Who the approver whose `Authorization: Bearer <token>` `is_approver` accepted is.
pub fn approver(headers: &HeaderMap, approvers: &Approvers<'_>) -> Result<Verified, ApiError> {
    approvers
        .by_token(presented(headers)?)
        .ok_or_else(not_an_approver)
}

fn not_an_approver() -> ApiError {
    ApiError::unauthorized(
        "invalid-token",
        "the bearer token is no approver's ([[approvals.approvers]] token_sha256 or [approvals] tokens)",
    )
}

/// Checks `Authorization: Bearer <token>` against `tokens`, or `Authorization: Basic` against `username` and
/// `passwords`. Nothing configured means nobody gets in.
pub fn bearer_or_basic(
    headers: &HeaderMap,
    tokens: &[Secret],
    username: Option<&str>,
    passwords: &[Secret],
    section: &str,
) -> Result<Authenticated, ApiError> {
    let header = headers.get(AUTHORIZATION).map(|h| h.as_bytes());
    let basic = header.and_then(|h| {
        h.strip_prefix(b"Basic ")
            .or_else(|| h.strip_prefix(b"basic "))
    });
    let (Some(encoded), Some(username)) = (basic, username) else {
        return bearer(headers, tokens, section);
    };
    if passwords.is_empty() {
        return Err(ApiError::unauthorized(
            "auth-not-configured",
            format!("basic auth is not configured in [{section}]"),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| {
            ApiError::unauthorized(
                "invalid-credentials",
                "the Basic credentials are not base64",
            )
        })?;
    let (user, password) = decoded
        .iter()
        .position(|b| *b == b':')
        .map(|at| (&decoded[..at], &decoded[at + 1..]))
        .ok_or_else(|| {
            ApiError::unauthorized("invalid-credentials", "the Basic credentials have no ':'")
        })?;
    let user_ok = crate::config::Secret::new(username).matches(user);
    if any_matches(passwords, password) & user_ok {
        Ok(Authenticated::issued())
    } else {
        Err(ApiError::unauthorized(
            "invalid-credentials",
            "the user name or password is not accepted",
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
    fn basic_auth_checks_user_and_password() {
        let passwords = [Secret::new("password-0123456789")];
        let basic = |creds: &str| {
            headers(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            ))
        };
        let check = |h: &HeaderMap| bearer_or_basic(h, &[], Some("am"), &passwords, "alertmanager");
        assert!(check(&basic("am:password-0123456789")).is_ok());
        assert_eq!(
            check(&basic("other:password-0123456789")).unwrap_err().code,
            "invalid-credentials"
        );
        assert_eq!(
            check(&basic("am:wrong")).unwrap_err().code,
            "invalid-credentials"
        );
        assert_eq!(
            check(&basic("no-colon")).unwrap_err().code,
            "invalid-credentials"
        );
        assert_eq!(
            check(&headers("Basic !!!")).unwrap_err().code,
            "invalid-credentials"
        );
        assert_eq!(
            check(&HeaderMap::new()).unwrap_err().code,
            "auth-not-configured"
        );
    }

    #[test]
    fn fails_closed_without_tokens() {
        let err = bearer(&headers("Bearer anything"), &[], "manual").unwrap_err();
        assert_eq!(err.code, "auth-not-configured");
        assert_eq!(err.status, 401);
    }
}
