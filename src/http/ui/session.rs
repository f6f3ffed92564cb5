//! The audit page's session and CSRF values: HMAC-signed with a random key kept in the audit store (made once,
//! shared by every replica, replaced by `reflex ui rotate-key`), never derived from the audit tokens, so that
//! nothing the page hands out can be used to guess a token offline. A session value names a session the store
//! records: a logout or a key rotation ends it at once, and it lasts `SESSION_FOR` at most.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

/// How long a session lasts after login, at most.
pub const SESSION_FOR: time::Duration = time::Duration::hours(8);
/// Separates an approver session's random id from who the approver is.
const APPROVER_MARK: &str = "-approver-";
/// Separates a reader's session's random id from the audit token it logged in with (its digest).
const READER_MARK: &str = "-reader-";
/// How long a login form may be filled in.
const CSRF_FOR: time::Duration = time::Duration::hours(1);

/// Signs and checks session and CSRF values.
#[derive(Debug, Clone)]
pub struct Sessions {
    key: hmac::Key,
    /// The store's key, which approvers' credentials are also keyed by.
    key_bytes: Vec<u8>,
}

impl Sessions {
    /// Keys from the store's key (hex); `None` when it is not hex.
    pub fn from_key(hex: &str) -> Option<Self> {
        let bytes = crate::hex::decode(hex)?;
        Some(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            key_bytes: bytes,
        })
    }

    /// The approvers of `config`, their credentials keyed as this page's sessions are.
    pub fn approvers<'a>(
        &self,
        config: &'a crate::config::Config,
    ) -> crate::approvers::Approvers<'a> {
        crate::approvers::Approvers::with_key(config, &self.key_bytes)
    }

    /// A new random id for the session of a reader who logged in with `credential` (as
    /// `Approvers::credential` names a token): the session lasts only while that token is configured.
    pub fn new_reader_id(credential: &str) -> String {
        let digest = credential.strip_prefix("token:").unwrap_or(credential);
        format!("{}{READER_MARK}{digest}", random_hex())
    }

    /// The token a session id was opened with (as `Approvers::credential` names it): a reader's or an
    /// approver's; `None` for an id that names none (made by an earlier release).
    pub fn credential_of(id: &str) -> Option<String> {
        id.split_once(READER_MARK)
            .or_else(|| id.split_once(APPROVER_MARK))
            .map(|(_, digest)| format!("token:{digest}"))
    }

    /// A session value for the session `id`, valid until `now + SESSION_FOR`.
    pub fn issue(&self, id: &str, now: OffsetDateTime) -> String {
        let expires = (now + SESSION_FOR).unix_timestamp();
        self.sign("session", &format!("{expires}-{id}"))
    }

    /// The session id in `value`, when this key signed it and it has not expired (the store still says
    /// whether the session was ended).
    pub fn session_id<'a>(&self, value: &'a str, now: OffsetDateTime) -> Option<&'a str> {
        let body = self.check("session", value, now)?;
        body.split_once('-').map(|(_, id)| id)
    }

    /// A CSRF token for the login form: random, signed, valid for an hour; the form carries it and a cookie
    /// holds the same value (double submit).
    pub fn csrf(&self, now: OffsetDateTime) -> String {
        let expires = (now + CSRF_FOR).unix_timestamp();
        self.sign("csrf", &format!("{expires}-{}", random_hex()))
    }

    /// Whether `value` is an unexpired CSRF token this key issued.
    pub fn csrf_valid(&self, value: &str, now: OffsetDateTime) -> bool {
        self.check("csrf", value, now).is_some()
    }

    /// The token of an approval form shown in the session `id`: bound to the session (a form of another
    /// session, or forged without the key, is refused), valid while the session lives.
    pub fn form_token(&self, id: &str) -> String {
        let tag = hmac::sign(&self.key, format!("form:{id}").as_bytes());
        crate::hex::encode(tag.as_ref())
    }

    /// Whether `value` is the approval form token of the session `id`.
    pub fn form_token_valid(&self, id: &str, value: &str) -> bool {
        crate::hex::decode(value).is_some_and(|tag| {
            hmac::verify(&self.key, format!("form:{id}").as_bytes(), &tag).is_ok()
        })
    }

    /// A new random id for an approver's session: it carries who the approver is (as `Approvers::credential`
    /// names their token), signed with the session.
    pub fn new_approver_id(approver: &str) -> String {
        let digest = approver.strip_prefix("token:").unwrap_or(approver);
        format!("{}{APPROVER_MARK}{digest}", random_hex())
    }

    /// The approver a session id names, if it is an approver's session.
    pub fn approver_of(id: &str) -> Option<String> {
        id.split_once(APPROVER_MARK)
            .map(|(_, digest)| format!("token:{digest}"))
    }

    fn sign(&self, purpose: &str, body: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{purpose}:{body}").as_bytes());
        let tag = crate::hex::encode(tag.as_ref());
        format!("{body}.{tag}")
    }

    /// The body of a signed value whose body starts with its expiry (Unix seconds) and has not expired.
    fn check<'a>(&self, purpose: &str, value: &'a str, now: OffsetDateTime) -> Option<&'a str> {
        let (body, tag) = value.rsplit_once('.')?;
        let tag = crate::hex::decode(tag)?;
        hmac::verify(&self.key, format!("{purpose}:{body}").as_bytes(), &tag).ok()?;
        let expires = body.split('-').next()?.parse::<i64>().ok()?;
        (expires > now.unix_timestamp()).then_some(body)
    }
}

/// 16 random bytes, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    crate::hex::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(key: &str) -> Sessions {
        Sessions::from_key(key).unwrap()
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_under_its_key() {
        let now = OffsetDateTime::now_utc();
        let keys = sessions(&"ab".repeat(32));
        let id = Sessions::new_reader_id("token:0123456789ab");
        let session = keys.issue(&id, now);
        assert_eq!(keys.session_id(&session, now), Some(id.as_str()));
        let almost = now + SESSION_FOR - time::Duration::SECOND;
        assert!(keys.session_id(&session, almost).is_some());
        assert!(keys.session_id(&session, now + SESSION_FOR).is_none());
        assert!(
            sessions(&"cd".repeat(32))
                .session_id(&session, now)
                .is_none()
        );
        let (body, tag) = session.rsplit_once('.').unwrap();
        let later = (now + time::Duration::days(30)).unix_timestamp();
        assert!(
            keys.session_id(&format!("{later}-{id}.{tag}"), now)
                .is_none(),
            "forged expiry"
        );
        assert!(keys.session_id(body, now).is_none());
        assert!(keys.session_id("", now).is_none());
        // A CSRF token is not a session, nor the other way round.
        let csrf = keys.csrf(now);
        assert!(keys.csrf_valid(&csrf, now));
        assert!(keys.session_id(&csrf, now).is_none());
        assert!(!keys.csrf_valid(&session, now));
        assert_ne!(csrf, keys.csrf(now), "random");
        assert!(Sessions::from_key("not hex").is_none());
    }

    #[test]
    fn an_approver_session_names_its_approver_and_its_form_token_binds_to_it() {
        let now = OffsetDateTime::now_utc();
        let keys = sessions(&"ab".repeat(32));
        let id = Sessions::new_approver_id("token:0123456789ab");
        assert_eq!(
            Sessions::approver_of(&id).as_deref(),
            Some("token:0123456789ab")
        );
        let session = keys.issue(&id, now);
        assert_eq!(keys.session_id(&session, now), Some(id.as_str()));
        let reader = Sessions::new_reader_id("token:0123456789ab");
        assert_eq!(Sessions::approver_of(&reader), None);
        assert_eq!(
            Sessions::credential_of(&reader).as_deref(),
            Some("token:0123456789ab")
        );
        assert_eq!(
            Sessions::credential_of(&id).as_deref(),
            Some("token:0123456789ab")
        );
        assert_eq!(Sessions::credential_of("0123abcd"), None);
        let token = keys.form_token(&id);
        assert!(keys.form_token_valid(&id, &token));
        assert!(!keys.form_token_valid(&Sessions::new_approver_id("token:0123456789ab"), &token));
        assert!(!keys.form_token_valid(&id, "00"));
        assert!(!sessions(&"cd".repeat(32)).form_token_valid(&id, &token));
    }
}
