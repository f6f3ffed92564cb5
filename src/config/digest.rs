//! Token digests in the config (`token_sha256` of named approvers and scoped tokens): the config holds a
//! token's SHA-256, never the token. Each is checked at start-up (64 hex digits, not the empty string's, one
//! credential's only) and compared in constant time.

use super::validate::invalid;
use super::{Config, ConfigError, Secret};

/// The SHA-256 of the empty string: what `printf %s "$TOKEN" | sha256sum` prints when `TOKEN` is unset.
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The bytes of a configured digest: exactly 64 hex digits (either case).
pub fn parse_sha256(value: &str) -> Option<[u8; 32]> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    crate::hex::decode(value)?.try_into().ok()
}

/// The SHA-256 of `token`.
pub fn sha256(token: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    digest.as_ref().try_into().unwrap_or([0; 32])
}

/// Whether `token` hashes to the configured `digest`, compared in constant time; a token shorter than
/// `super::MIN_TOKEN_LEN` never does.
pub fn token_matches(digest: &str, token: &[u8]) -> bool {
    let long_enough = token.len() >= super::validate::MIN_TOKEN_LEN;
    parse_sha256(digest).is_some_and(|ours| {
        aws_lc_rs::constant_time::verify_slices_are_equal(&ours, &sha256(token)).is_ok()
    }) && long_enough
}

impl Config {
    /// Every configured digest is a SHA-256 other than the empty string's, and one credential's only: not
    /// another named approver's or scoped token's, and not the digest of a token or password any door
    /// accepts.
    pub(super) fn validate_digests(&self) -> Result<(), ConfigError> {
        let secrets = self.door_secrets();
        let named = self.named_digests();
        for (index, (key, digest)) in named.iter().enumerate() {
            let Some(bytes) = parse_sha256(digest) else {
                return invalid(
                    key,
                    "is not a SHA-256 in hex (64 digits): printf %s \"$TOKEN\" | sha256sum",
                );
            };
            if bytes == EMPTY_SHA256 {
                return invalid(
                    key,
                    "is the SHA-256 of an empty token (was $TOKEN set?): hash the token itself",
                );
            }
            if let Some((other, _)) = named[..index]
                .iter()
                .find(|(_, earlier)| parse_sha256(earlier) == Some(bytes))
            {
                return invalid(
                    key,
                    format!(
                        "is also {other}: a token is one credential's, so that who used it is known"
                    ),
                );
            }
            if let Some((door, _)) = secrets
                .iter()
                .find(|(_, secret)| sha256(secret.expose().as_bytes()) == bytes)
            {
                return invalid(
                    key,
                    format!(
                        "is the digest of a token {door} also accepts: a token is one credential's"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The digests the config names, each with its key.
    fn named_digests(&self) -> Vec<(String, &str)> {
        let approvers =
            self.approvals
                .approvers
                .iter()
                .enumerate()
                .filter_map(|(index, person)| {
                    let digest = person.token_sha256.as_deref()?;
                    Some((format!("approvals.approvers[{index}].token_sha256"), digest))
                });
        let scoped = [
            ("alertmanager", &self.alertmanager),
            ("grafana", &self.grafana),
        ]
        .into_iter()
        .flat_map(|(door, hook)| {
            hook.scoped.iter().enumerate().map(move |(index, scoped)| {
                (
                    format!("{door}.scoped[{index}].token_sha256"),
                    scoped.token_sha256.as_str(),
                )
            })
        });
        approvers.chain(scoped).collect()
    }

    /// Every token and password a door accepts, each with the door's key.
    pub(super) fn door_secrets(&self) -> Vec<(&'static str, &Secret)> {
        let doors: [(&'static str, &[Secret]); 8] = [
            ("approvals.tokens", &self.approvals.tokens),
            ("manual.tokens", &self.manual.tokens),
            ("admin.tokens", &self.admin.tokens),
            ("audit.tokens", &self.audit.tokens),
            ("alertmanager.tokens", &self.alertmanager.tokens),
            ("alertmanager.passwords", &self.alertmanager.passwords),
            ("grafana.tokens", &self.grafana.tokens),
            ("grafana.passwords", &self.grafana.passwords),
        ];
        doors
            .into_iter()
            .flat_map(|(door, secrets)| secrets.iter().map(move |secret| (door, secret)))
            .collect()
    }
}

/// What the config tests of token digests share.
#[cfg(test)]
pub(super) mod test_support {
    use crate::config::{ConfigError, parse};

    /// The SHA-256 of `token`, in hex, as `token_sha256` holds it.
    pub fn sha(token: &str) -> String {
        crate::hex::encode(&super::sha256(token.as_bytes()))
    }

    /// The key the config `text` is refused for.
    pub fn refused_key(text: &str) -> String {
        match parse(text, []) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_hex_digits_and_match_long_tokens_only() {
        let token = "a-long-enough-token-0123";
        let digest = crate::hex::encode(&sha256(token.as_bytes()));
        assert!(token_matches(&digest, token.as_bytes()));
        assert!(token_matches(&digest.to_uppercase(), token.as_bytes()));
        assert!(!token_matches(&digest, b"another-long-token-0123"));
        let short = crate::hex::encode(&sha256(b"short"));
        assert!(
            !token_matches(&short, b"short"),
            "a short token never matches"
        );
        assert_eq!(parse_sha256(&format!("+{}", &digest[1..])), None);
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(sha256(b""), EMPTY_SHA256);
    }
}
