//! Secrets that never print and compare in constant time.

use std::fmt;

use serde::Deserialize;

/// A configured secret (token, password, HMAC key): `Debug` redacts it and equality checks are constant-time.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value read from a file or the environment.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's bytes, for MAC keys; never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares a presented credential with this secret without leaking how much of it matched, nor how long
    /// the secret is: the two SHA-256 digests, of one length, are compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let (ours, theirs) = (super::sha256(self.0.as_bytes()), super::sha256(presented));
        aws_lc_rs::constant_time::verify_slices_are_equal(&ours, &theirs).is_ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"<redacted>\")")
    }
}

/// True when any secret of the list matches; every entry is compared, so timing does not reveal which one did.
pub fn any_matches(secrets: &[Secret], presented: &[u8]) -> bool {
    secrets
        .iter()
        .fold(false, |found, secret| secret.matches(presented) | found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-hunter2-hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn matches_only_the_exact_bytes() {
        let secret = Secret::new("abc");
        assert!(secret.matches(b"abc"));
        assert!(!secret.matches(b"abcd"));
        assert!(!secret.matches(b"ab"));
        assert!(!secret.matches(b""));
        assert!(any_matches(&[Secret::new("x"), secret], b"abc"));
        assert!(!any_matches(&[], b"abc"));
    }
}
