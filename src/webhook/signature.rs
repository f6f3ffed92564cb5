//! Grafana's webhook HMAC: lowercase hex HMAC-SHA256, keyed with the secret's bytes, over
//! `<unix-seconds>:<raw body>` when a timestamp header is configured (else over the raw body); Slack signs the
//! same with a `v0:` prefix.

use aws_lc_rs::hmac;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("the {0} header is missing")]
    MissingSignature(String),
    /// The timestamp header is absent.
    #[error(
        "the {0} header is missing (configure the same timestamp header in Grafana's HMAC settings)"
    )]
    MissingTimestamp(String),
    /// The timestamp is not a number of seconds.
    #[error("the timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error("the timestamp is {0} s away from now, outside the replay window")]
    Stale(i64),
    /// The signature does not match.
    #[error("the signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature(_) => "missing-signature",
            Self::MissingTimestamp(_) | Self::BadTimestamp => "bad-timestamp",
            Self::Stale(_) => "stale-signature",
            Self::Mismatch => "bad-signature",
        }
    }
}

/// Checks `signature_hex` for `body`, with the timestamp (seconds) when one is required, at Unix time `now`.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    signature_hex: &str,
    timestamp: Option<&str>,
    now: i64,
    max_skew_secs: i64,
) -> Result<(), SignatureError> {
    verify_prefixed(
        secret,
        b"",
        body,
        signature_hex,
        timestamp,
        now,
        max_skew_secs,
    )
}

/// `verify` for a scheme that signs `<prefix><timestamp>:<raw body>` (Slack's requests: `v0:`).
pub fn verify_prefixed(
    secret: &[u8],
    prefix: &[u8],
    body: &[u8],
    signature_hex: &str,
    timestamp: Option<&str>,
    now: i64,
    max_skew_secs: i64,
) -> Result<(), SignatureError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(prefix.len() + body.len() + 21);
    message.extend_from_slice(prefix);
    if let Some(timestamp) = timestamp {
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        let skew = now.saturating_sub(at);
        if skew.saturating_abs() > max_skew_secs {
            return Err(SignatureError::Stale(skew));
        }
        message.extend_from_slice(timestamp.trim().as_bytes());
        message.push(b':');
    }
    message.extend_from_slice(body);
    let tag = crate::hex::decode(signature_hex.trim()).ok_or(SignatureError::Mismatch)?;
    hmac::verify(&key, &message, &tag).map_err(|_| SignatureError::Mismatch)
}

/// Computes the signature Grafana would send (used by tests and tooling).
pub fn sign(secret: &[u8], body: &[u8], timestamp: Option<&str>) -> String {
    sign_prefixed(secret, b"", body, timestamp)
}

/// `sign` for a scheme that signs `<prefix><timestamp>:<raw body>`.
pub fn sign_prefixed(secret: &[u8], prefix: &[u8], body: &[u8], timestamp: Option<&str>) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = prefix.to_vec();
    if let Some(timestamp) = timestamp {
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b':');
    }
    message.extend_from_slice(body);
    crate::hex::encode(hmac::sign(&key, &message).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every known answer in the test vectors verifies, and a changed body does not.
    #[test]
    fn grafana_known_answers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/grafana");
        let vectors: Value =
            serde_json::from_slice(&std::fs::read(dir.join("grafana_hmac_vectors.json")).unwrap())
                .unwrap();
        let mut checked = 0;
        for vector in vectors["vectors"].as_array().unwrap() {
            let secret = vector["secret"].as_str().unwrap().as_bytes();
            let body = match vector["body_file"].as_str() {
                Some(file) => std::fs::read(dir.join(file)).unwrap(),
                None => vector["body"].as_str().unwrap().as_bytes().to_vec(),
            };
            let headers = vector["headers"].as_object().unwrap();
            let signature = headers
                .iter()
                .find(|(name, _)| name.ends_with("Signature"))
                .map(|(_, v)| v.as_str().unwrap())
                .unwrap();
            let timestamp = headers
                .iter()
                .find(|(name, _)| name.ends_with("Timestamp"))
                .map(|(_, v)| v.as_str().unwrap());
            let now = timestamp.map_or(0, |t| t.parse().unwrap());
            assert_eq!(
                sign(secret, &body, timestamp),
                signature,
                "{}",
                vector["name"]
            );
            verify(secret, &body, signature, timestamp, now, 300)
                .unwrap_or_else(|err| panic!("{}: {err}", vector["name"]));
            let mut changed = body.clone();
            changed.push(b' ');
            assert_eq!(
                verify(secret, &changed, signature, timestamp, now, 300),
                Err(SignatureError::Mismatch)
            );
            checked += 1;
        }
        assert_eq!(checked, 9);
    }

    #[test]
    fn timestamps_outside_the_window_and_bad_hex_are_refused() {
        let sig = sign(b"secret", b"body", Some("1000"));
        assert_eq!(
            verify(b"secret", b"body", &sig, Some("1000"), 1300, 300),
            Ok(())
        );
        assert_eq!(
            verify(b"secret", b"body", &sig, Some("1000"), 1301, 300),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(b"secret", b"body", &sig, Some("1000"), 699, 300),
            Err(SignatureError::Stale(-301))
        );
        assert_eq!(
            verify(b"secret", b"body", &sig, Some("x"), 1000, 300),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(b"secret", b"body", "zz", Some("1000"), 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", b"body", &sig, Some("1000"), 1000, 300),
            Err(SignatureError::Mismatch)
        );
        // A timestamp moved to another body's signature does not verify.
        assert_eq!(
            verify(b"secret", b"body", &sig, Some("1001"), 1000, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
