//! `[[alertmanager.scoped]]` and `[[grafana.scoped]]`: bearer tokens whose alerts may name targets in some
//! accounts only, so that a sender trusted for one account cannot make reflex act in another.

use serde::Deserialize;

use super::validate::invalid;
use super::{Config, ConfigError, LOCAL_ACCOUNT, WebhookConfig};

/// A bearer token limited to `accounts`: a delivery with it whose alerts name a target elsewhere is refused
/// (403 `account-not-allowed`) before anything is read or done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    /// The SHA-256 of the token, in hex (`printf %s "$TOKEN" | sha256sum`): the config holds no token.
    pub token_sha256: String,
    /// The accounts its alerts may name: `[[accounts]]` names, or `local`.
    pub accounts: Vec<String>,
}

impl ScopedToken {
    /// The token's digest as bytes (validated at start-up).
    pub fn digest(&self) -> Option<Vec<u8>> {
        crate::hex::decode(&self.token_sha256.to_ascii_lowercase())
    }
}

impl WebhookConfig {
    /// The scoped token `token` is, if any: every digest is compared, in constant time.
    pub fn scoped_by(&self, token: &[u8]) -> Option<&ScopedToken> {
        let presented = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        self.scoped.iter().fold(None, |found, scoped| {
            let matches = scoped.digest().is_some_and(|ours| {
                aws_lc_rs::constant_time::verify_slices_are_equal(&ours, presented.as_ref()).is_ok()
            });
            if matches { Some(scoped) } else { found }
        })
    }
}

impl Config {
    /// Each scoped token is a SHA-256, named once, not also one of the door's unscoped tokens, and limited
    /// to accounts that are configured.
    pub(super) fn validate_scoped(
        &self,
        section: &str,
        hook: &WebhookConfig,
    ) -> Result<(), ConfigError> {
        let mut seen = Vec::new();
        for (index, scoped) in hook.scoped.iter().enumerate() {
            let key = |field: &str| format!("{section}.scoped[{index}].{field}");
            let digest = scoped.token_sha256.to_ascii_lowercase();
            if digest.len() != 64 || scoped.digest().is_none() {
                return invalid(
                    key("token_sha256"),
                    "is not a SHA-256 in hex (64 digits): printf %s \"$TOKEN\" | sha256sum",
                );
            }
            if seen.contains(&digest) {
                return invalid(
                    key("token_sha256"),
                    "is listed twice: give each token one set of accounts",
                );
            }
            let unscoped = hook.tokens.iter().any(|token| {
                let ours = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    token.expose().as_bytes(),
                );
                crate::hex::encode(ours.as_ref()) == digest
            });
            if unscoped {
                return invalid(
                    key("token_sha256"),
                    format!(
                        "is the digest of a token {section}.tokens also accepts for every account: list it in one place"
                    ),
                );
            }
            seen.push(digest);
            if scoped.accounts.is_empty() {
                return invalid(
                    key("accounts"),
                    "is empty: name the accounts its alerts may act in",
                );
            }
            if let Some(unknown) = scoped
                .accounts
                .iter()
                .find(|name| name.as_str() != LOCAL_ACCOUNT && self.account(name).is_none())
            {
                return invalid(
                    key("accounts"),
                    format!(
                        "names {unknown:?}, which is neither \"local\" nor listed under [[accounts]]"
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, parse};

    fn sha(token: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        crate::hex::encode(digest.as_ref())
    }

    fn refused_key(text: &str) -> String {
        match parse(text, []) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_scoped_token_is_a_digest_limited_to_configured_accounts() {
        let base = "[[targets]]\nload_balancer = \"web-elb\"\n";
        let scoped = |digest: &str, accounts: &str| {
            format!(
                "{base}[[alertmanager.scoped]]\ntoken_sha256 = \"{digest}\"\naccounts = {accounts}\n"
            )
        };
        let token = "team-a-token-0123456789abcdef";
        let config = parse(&scoped(&sha(token), "[\"local\"]"), []).unwrap();
        let found = config.alertmanager.scoped_by(token.as_bytes()).unwrap();
        assert_eq!(found.accounts, ["local"]);
        assert!(config.alertmanager.scoped_by(b"another-token").is_none());
        assert_eq!(
            refused_key(&scoped("abc", "[\"local\"]")),
            "alertmanager.scoped[0].token_sha256"
        );
        assert_eq!(
            refused_key(&scoped(&sha(token), "[]")),
            "alertmanager.scoped[0].accounts"
        );
        assert_eq!(
            refused_key(&scoped(&sha(token), "[\"prod\"]")),
            "alertmanager.scoped[0].accounts"
        );
        let both = format!(
            "{}[alertmanager]\ntokens = [\"{token}\"]\n",
            scoped(&sha(token), "[\"local\"]")
        );
        assert_eq!(refused_key(&both), "alertmanager.scoped[0].token_sha256");
    }
}
