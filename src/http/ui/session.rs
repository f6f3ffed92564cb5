//! The audit page's session and CSRF tokens: stateless, HMAC-signed values, so that every replica that shares
//! the audit tokens accepts a session any of them issued. The key is derived from the configured audit tokens:
//! rotating them ends every session.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::config::Secret;

/// How long a session lasts after login.
pub const SESSION_FOR: time::Duration = time::Duration::hours(8);
/// How long a login form may be filled in.
const CSRF_FOR: time::Duration = time::Duration::hours(1);

/// Signs and checks session and CSRF values.
#[derive(Debug, Clone)]
pub struct Sessions {
    key: hmac::Key,
}

impl Sessions {
    /// Keys derived from the audit tokens (`None` when there is none: nobody can log in).
    pub fn new(tokens: &[Secret]) -> Option<Self> {
        if tokens.is_empty() {
            return None;
        }
        let derive = hmac::Key::new(hmac::HMAC_SHA256, b"reflex audit page sessions");
        let mut context = hmac::Context::with_key(&derive);
        for token in tokens {
            context.update(token.expose().as_bytes());
            context.update(b"\n");
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, context.sign().as_ref());
        Some(Self { key })
    }

    /// A session value valid until `now + SESSION_FOR`.
    pub fn issue(&self, now: OffsetDateTime) -> String {
        self.sign("session", &(now + SESSION_FOR).unix_timestamp().to_string())
    }

    /// Whether `value` is a session this key issued and it has not expired.
    pub fn valid(&self, value: &str, now: OffsetDateTime) -> bool {
        self.check("session", value, now)
    }

    /// A CSRF token for the login form: random, signed, valid for an hour; the form carries it and a cookie
    /// holds the same value (double submit).
    pub fn csrf(&self, now: OffsetDateTime) -> String {
        let mut nonce = [0u8; 16];
        let _ = SystemRandom::new().fill(&mut nonce);
        let nonce = crate::hex::encode(&nonce);
        let expires = (now + CSRF_FOR).unix_timestamp();
        self.sign("csrf", &format!("{expires}-{nonce}"))
    }

    /// Whether `value` is an unexpired CSRF token this key issued.
    pub fn csrf_valid(&self, value: &str, now: OffsetDateTime) -> bool {
        self.check("csrf", value, now)
    }

    fn sign(&self, purpose: &str, body: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{purpose}:{body}").as_bytes());
        let tag = crate::hex::encode(tag.as_ref());
        format!("{body}.{tag}")
    }

    /// A signed value whose body starts with its expiry (Unix seconds) and has not expired.
    fn check(&self, purpose: &str, value: &str, now: OffsetDateTime) -> bool {
        let Some((body, tag)) = value.rsplit_once('.') else {
            return false;
        };
        let Some(tag) = crate::hex::decode(tag) else {
            return false;
        };
        if hmac::verify(&self.key, format!("{purpose}:{body}").as_bytes(), &tag).is_err() {
            return false;
        }
        let expires = body.split('-').next().and_then(|at| at.parse::<i64>().ok());
        expires.is_some_and(|at| at > now.unix_timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(token: &str) -> Sessions {
        Sessions::new(&[Secret::new(token)]).unwrap()
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_under_its_key() {
        let now = OffsetDateTime::now_utc();
        let keys = sessions("audit-token-0123456789");
        let session = keys.issue(now);
        assert!(keys.valid(&session, now));
        assert!(keys.valid(&session, now + SESSION_FOR - time::Duration::SECOND));
        assert!(!keys.valid(&session, now + SESSION_FOR));
        assert!(!sessions("another-token-0123456789").valid(&session, now));
        let (body, tag) = session.rsplit_once('.').unwrap();
        let later = (now + time::Duration::days(30)).unix_timestamp();
        assert!(!keys.valid(&format!("{later}.{tag}"), now), "forged expiry");
        assert!(!keys.valid(body, now));
        assert!(!keys.valid("", now));
        // A CSRF token is not a session, nor the other way round.
        let csrf = keys.csrf(now);
        assert!(keys.csrf_valid(&csrf, now));
        assert!(!keys.valid(&csrf, now));
        assert!(!keys.csrf_valid(&session, now));
        assert_ne!(csrf, keys.csrf(now), "random");
        assert!(Sessions::new(&[]).is_none());
    }
}
