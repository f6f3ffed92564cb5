//! Who approves. The people of `[[approvals.approvers]]` are known by their token's digest or their Slack user
//! id, and each counts once by name whatever door they vote through; `[approvals] tokens` and
//! `[slack] approvers` are unnamed approvers, one per credential. What the trail and a session keep of a token
//! is keyed (an HMAC under the audit page's key in the store, over the token's SHA-256), never a bare digest a
//! weak token could be guessed from offline.

use aws_lc_rs::hmac;

use crate::config::{Config, NamedApprover, any_matches, parse_sha256, sha256, token_matches};

/// An approver whose credential checked out: who is counted, and the name the page and the trail show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who: two votes with the same `who` are one approval (`person:<name>`, `token:<keyed digest>`,
    /// `slack:<user id>`).
    pub who: String,
    /// The configured name of a named approver.
    pub name: Option<String>,
    /// Who the same approver was recorded as by an earlier release (`token:` and 6 bytes of the token's
    /// SHA-256; `slack:<user id>` for a person's Slack id): a vote already counted under one of them counts.
    pub aliases: Vec<String>,
}

impl Verified {
    /// This approver's vote through `door` (`api`, `page`, `slack`, `cli`), as the store counts it.
    pub fn voting_through(self, door: &str) -> crate::audit::Approver {
        crate::audit::Approver {
            who: self.who,
            door: door.to_owned(),
            name: self.name,
            at: String::new(),
            aliases: self.aliases,
        }
    }
}

/// Recognises approvers under the configuration and the store's key.
pub struct Approvers<'a> {
    config: &'a Config,
    key: hmac::Key,
}

impl<'a> Approvers<'a> {
    /// The approvers of `config`, keyed by the audit page's key (hex, as the store keeps it); `None` when the
    /// key is not hex.
    pub fn new(config: &'a Config, key_hex: &str) -> Option<Self> {
        Some(Self::with_key(config, &crate::hex::decode(key_hex)?))
    }

    /// The approvers of `config`, keyed by the audit page's key `key`.
    pub fn with_key(config: &'a Config, key: &[u8]) -> Self {
        Self {
            config,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// What a session or the trail keeps of a token (any door's): `token:` and a keyed digest of it.
    pub fn credential(&self, token: &[u8]) -> String {
        self.credential_of_digest(&sha256(token))
    }

    /// The credential of a token whose SHA-256 is `sha256`.
    fn credential_of_digest(&self, sha256: &[u8]) -> String {
        let tag = hmac::sign(
            &self.key,
            &[b"approver-credential:".as_slice(), sha256].concat(),
        );
        format!("token:{}", crate::hex::encode(&tag.as_ref()[..12]))
    }

    /// The approver holding `token`: a named person whose digest it matches, else an unnamed approver token.
    pub fn by_token(&self, token: &[u8]) -> Option<Verified> {
        match named_by_token(self.config, token) {
            Some(person) => Some(named_person(person)),
            None => any_matches(&self.config.approvals.tokens, token).then(|| Verified {
                who: self.credential(token),
                name: None,
                aliases: vec![earlier_token_id(&sha256(token))],
            }),
        }
    }

    /// Whether `token` is an approver's under `config` (who it is needs the store's key).
    pub fn holds_token(config: &Config, token: &[u8]) -> bool {
        named_by_token(config, token).is_some() || any_matches(&config.approvals.tokens, token)
    }

    /// The approver whose token a session's `credential` was made from, while that token is still an
    /// approver's.
    pub fn by_credential(&self, credential: &str) -> Option<Verified> {
        let named = self.config.approvals.approvers.iter().find(|person| {
            person
                .token_sha256
                .as_deref()
                .and_then(parse_sha256)
                .is_some_and(|sha256| self.credential_of_digest(&sha256) == credential)
        });
        if let Some(person) = named {
            return Some(named_person(person));
        }
        let token = self
            .config
            .approvals
            .tokens
            .iter()
            .find(|token| self.credential(token.expose().as_bytes()) == credential)?;
        Some(Verified {
            who: credential.to_owned(),
            name: None,
            aliases: vec![earlier_token_id(&sha256(token.expose().as_bytes()))],
        })
    }

    /// Whether a session's `credential` is still an audit reader's or an approver's token.
    pub fn still_held(&self, credential: &str) -> bool {
        self.by_credential(credential).is_some()
            || self
                .config
                .audit
                .tokens
                .iter()
                .any(|token| self.credential(token.expose().as_bytes()) == credential)
    }

    /// The approver a Slack user id is: a named person's, or one of `[slack] approvers`.
    pub fn by_slack(config: &Config, user: &str) -> Option<Verified> {
        let named = config
            .approvals
            .approvers
            .iter()
            .find(|person| person.slack_user.as_deref() == Some(user));
        match named {
            Some(person) => Some(named_person(person)),
            None => config
                .slack
                .approvers
                .iter()
                .any(|u| u == user)
                .then(|| Verified {
                    who: format!("slack:{user}"),
                    name: None,
                    aliases: Vec::new(),
                }),
        }
    }
}

/// The named approver whose token digest `token` matches; every digest is compared, in constant time.
fn named_by_token<'a>(config: &'a Config, token: &[u8]) -> Option<&'a NamedApprover> {
    config
        .approvals
        .approvers
        .iter()
        .fold(None, |found, person| {
            let matches = person
                .token_sha256
                .as_deref()
                .is_some_and(|digest| token_matches(digest, token));
            if matches { Some(person) } else { found }
        })
}

/// The named `person`, as votes count them, with who an earlier release recorded them as.
fn named_person(person: &NamedApprover) -> Verified {
    let digest = person.token_sha256.as_deref().and_then(parse_sha256);
    let aliases = digest
        .map(|sha256| earlier_token_id(&sha256))
        .into_iter()
        .chain(person.slack_user.iter().map(|user| format!("slack:{user}")))
        .collect();
    Verified {
        who: format!("person:{}", person.name),
        name: Some(person.name.clone()),
        aliases,
    }
}

/// How an earlier release recorded the holder of a token whose SHA-256 is `sha256`.
fn earlier_token_id(sha256: &[u8]) -> String {
    format!(
        "token:{}",
        crate::hex::encode(&sha256[..6.min(sha256.len())])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn sha(token: &str) -> String {
        crate::hex::encode(&sha256(token.as_bytes()))
    }

    fn config() -> Config {
        let text = format!(
            "[[targets]]\nload_balancer = \"web-elb\"\n\
             [slack]\nsigning_secret = \"slack-signing-secret-0123\"\napprovers = [\"U0LEGACY\"]\n\
             [audit]\ntokens = [\"reader-token-0123456789abcdef\"]\n\
             [approvals]\ntokens = [\"unnamed-token-0123456789abcdef\"]\n\
             [[approvals.approvers]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\nslack_user = \"U0ALICE\"\n",
            sha("alice-token-0123456789abcdef")
        );
        crate::config::parse(&text, []).unwrap()
    }

    #[test]
    fn a_person_is_one_approver_through_a_token_a_session_and_slack() {
        let config = config();
        let approvers = Approvers::new(&config, KEY).unwrap();
        let token = b"alice-token-0123456789abcdef";
        let by_token = approvers.by_token(token).unwrap();
        assert_eq!(by_token.who, "person:alice");
        assert_eq!(by_token.name.as_deref(), Some("alice"));
        let session = approvers.credential(token);
        assert_eq!(approvers.by_credential(&session), Some(by_token.clone()));
        assert_eq!(Approvers::by_slack(&config, "U0ALICE"), Some(by_token));
    }

    #[test]
    fn unnamed_credentials_are_keyed_and_strangers_are_nobody() {
        let config = config();
        let approvers = Approvers::new(&config, KEY).unwrap();
        let unnamed = approvers
            .by_token(b"unnamed-token-0123456789abcdef")
            .unwrap();
        assert_eq!(unnamed.name, None);
        // Keyed: neither the token's bare SHA-256 nor its prefix, and another key names it otherwise.
        let bare = sha("unnamed-token-0123456789abcdef");
        assert!(!bare.starts_with(unnamed.who.trim_start_matches("token:")));
        let other = Approvers::new(&config, &"ab".repeat(32)).unwrap();
        assert_ne!(
            other.credential(b"unnamed-token-0123456789abcdef"),
            unnamed.who
        );
        assert_eq!(approvers.by_credential(&unnamed.who), Some(unnamed));
        assert_eq!(
            Approvers::by_slack(&config, "U0LEGACY")
                .map(|v| v.who)
                .as_deref(),
            Some("slack:U0LEGACY")
        );
        assert_eq!(approvers.by_token(b"reader-token-0123456789abcdef"), None);
        assert_eq!(Approvers::by_slack(&config, "U0STRANGER"), None);
        let reader = approvers.credential(b"reader-token-0123456789abcdef");
        assert!(approvers.still_held(&reader));
        assert_eq!(approvers.by_credential(&reader), None);
        assert!(!approvers.still_held(&approvers.credential(b"removed-token")));
    }

    #[test]
    fn a_removed_persons_session_holds_no_more_and_earlier_records_of_them_are_their_aliases() {
        let config = config();
        let approvers = Approvers::new(&config, KEY).unwrap();
        let token = b"alice-token-0123456789abcdef";
        let session = approvers.credential(token);
        let alice = approvers.by_token(token).unwrap();
        let digest = sha("alice-token-0123456789abcdef");
        assert_eq!(
            alice.aliases,
            [
                format!("token:{}", &digest[..12]),
                "slack:U0ALICE".to_owned()
            ]
        );
        let mut without = config.clone();
        without.approvals.approvers.clear();
        let approvers = Approvers::new(&without, KEY).unwrap();
        assert_eq!(approvers.by_credential(&session), None);
        assert!(!approvers.still_held(&session));
        assert_eq!(approvers.by_token(token), None);
        assert!(Approvers::new(&without, "not hex").is_none());
    }
}
