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

impl WebhookConfig {
    /// The scoped token `token` is, if any: every digest is compared, in constant time.
    pub fn scoped_by(&self, token: &[u8]) -> Option<&ScopedToken> {
        self.scoped.iter().fold(None, |found, scoped| {
            if super::token_matches(&scoped.token_sha256, token) {
                Some(scoped)
            } else {
                found
            }
        })
    }
}

impl Config {
    /// Each scoped token is limited to accounts that are configured (its digest is checked with every other,
    /// `super::digest`).
    pub(super) fn validate_scoped(
        &self,
        section: &str,
        hook: &WebhookConfig,
    ) -> Result<(), ConfigError> {
        for (index, scoped) in hook.scoped.iter().enumerate() {
            let key = |field: &str| format!("{section}.scoped[{index}].{field}");
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
    use crate::config::digest::test_support::{refused_key, sha};
    use crate::config::parse;

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

    #[test]
    fn a_scoped_token_is_no_other_doors_and_not_the_empty_strings() {
        let token = "team-a-token-0123456789abcdef";
        let scoped = format!(
            "[[targets]]\nload_balancer = \"web-elb\"\n\
             [[alertmanager.scoped]]\ntoken_sha256 = \"{}\"\naccounts = [\"local\"]\n",
            sha(token)
        );
        for door in [
            "[grafana]\ntokens",
            "[manual]\ntokens",
            "[admin]\ntokens",
            "[audit]\ntokens",
            "[approvals]\ntokens",
        ] {
            let text = format!("{scoped}{door} = [\"{token}\"]\n");
            assert_eq!(
                refused_key(&text),
                "alertmanager.scoped[0].token_sha256",
                "{door}"
            );
        }
        let twice = format!(
            "{scoped}[[grafana.scoped]]\ntoken_sha256 = \"{}\"\naccounts = [\"local\"]\n",
            sha(token)
        );
        assert_eq!(refused_key(&twice), "grafana.scoped[0].token_sha256");
        let empty = scoped.replace(&sha(token), &sha(""));
        assert_eq!(refused_key(&empty), "alertmanager.scoped[0].token_sha256");
    }
}
