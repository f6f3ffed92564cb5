//! The verifier: the only way from raw delivery bytes to a `Verified` message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cert::SignatureAlgorithm;
use super::{CertStore, CertUrl, SnsError, Unverified};
use crate::engine::Authenticated;

/// How far in the future a Timestamp may be (clock skew).
const MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);

/// The checks besides the signature.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Allowed topics; `None` accepts any topic (offline `sns-verify` without a config only).
    pub topic_arns: Option<Vec<String>>,
    /// Oldest accepted message.
    pub max_age: Duration,
    /// Lowest accepted SignatureVersion: 2 refuses RSA-SHA1 signatures.
    pub min_signature_version: u8,
}

/// A message whose signature, certificate, topic and age were all checked.
#[derive(Debug, Clone)]
pub struct Verified {
    message: Unverified,
    cert_subject: String,
    delivery_key: String,
}

/// What the audit trail records about a verification.
#[derive(Debug, Serialize)]
pub struct VerificationRecord<'a> {
    kind: &'static str,
    message_id: &'a str,
    topic_arn: &'a str,
    timestamp: &'a str,
    signature_version: &'a str,
    signing_cert_url: &'a str,
    cert_subject: &'a str,
}

impl Verified {
    /// The verified message.
    pub fn message(&self) -> &Unverified {
        &self.message
    }

    /// The key that deduplicates deliveries of this message (see `Unverified::delivery_key`).
    pub fn delivery_key(&self) -> &str {
        &self.delivery_key
    }

    /// The proof a `Trigger` needs.
    pub fn proof(&self) -> Authenticated {
        Authenticated::issued()
    }

    /// The facts to audit.
    pub fn record(&self) -> VerificationRecord<'_> {
        VerificationRecord {
            kind: self.message.kind.as_str(),
            message_id: &self.message.message_id,
            topic_arn: &self.message.topic_arn,
            timestamp: &self.message.timestamp,
            signature_version: &self.message.signature_version,
            signing_cert_url: &self.message.signing_cert_url,
            cert_subject: &self.cert_subject,
        }
    }
}

/// Most accepted SigningCertURLs remembered (SNS signs with one certificate per region at a time).
const CERT_URLS_KEPT: usize = 64;

/// Verifies deliveries with one certificate store and policy.
#[derive(Debug)]
pub struct Verifier {
    policy: VerifyPolicy,
    certs: CertStore,
    /// SigningCertURLs that passed the URL policy, by their text: every delivery names one of a few.
    cert_urls: Mutex<HashMap<String, Arc<CertUrl>>>,
}

impl Verifier {
    /// A verifier.
    pub fn new(policy: VerifyPolicy, certs: CertStore) -> Self {
        Self {
            policy,
            certs,
            cert_urls: Mutex::default(),
        }
    }

    /// `raw` as a SigningCertURL that passed the policy (remembered once it has; a refusal is checked anew).
    fn cert_url(&self, raw: &str) -> Result<Arc<CertUrl>, SnsError> {
        let lock = || {
            self.cert_urls
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(url) = lock().get(raw) {
            return Ok(Arc::clone(url));
        }
        let url = Arc::new(CertUrl::parse(raw)?);
        let mut known = lock();
        if known.len() >= CERT_URLS_KEPT {
            known.clear();
        }
        known.insert(raw.to_owned(), Arc::clone(&url));
        Ok(url)
    }

    /// The certificate store (for its counters).
    pub fn certs(&self) -> &CertStore {
        &self.certs
    }

    /// Checks a delivery body at time `now`. `message_type_header` is `x-amz-sns-message-type` when sent.
    /// Every cheap check runs before the certificate is fetched; the URL policy runs before any fetch.
    pub async fn verify(
        &self,
        body: &[u8],
        message_type_header: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Verified, SnsError> {
        let message = Unverified::parse(body)?;
        if let Some(header) = message_type_header
            && header != message.kind.as_str()
        {
            return Err(SnsError::TypeMismatch {
                header: header.to_owned(),
                kind: message.kind.as_str().to_owned(),
            });
        }
        let algorithm = SignatureAlgorithm::from_version(&message.signature_version)?;
        if algorithm.version() < self.policy.min_signature_version {
            return Err(SnsError::UnsupportedSignatureVersion(format!(
                "{} (sns.min_signature_version is {})",
                algorithm.version(),
                self.policy.min_signature_version
            )));
        }
        if let Some(allowed) = &self.policy.topic_arns
            && !allowed.contains(&message.topic_arn)
        {
            return Err(SnsError::TopicNotAllowed(message.topic_arn.clone()));
        }
        self.check_age(&message.timestamp, now)?;
        let cert_url = self.cert_url(&message.signing_cert_url)?;
        if cert_url.region() != topic_region(&message.topic_arn) {
            return Err(SnsError::UntrustedUrl {
                field: "SigningCertURL",
                reason: "its SNS host is not in the topic's region".to_owned(),
            });
        }
        let signature = STANDARD
            .decode(message.signature.as_bytes())
            .map_err(|_| SnsError::BadSignature)?;
        let cert = self.certs.get(&cert_url).await?;
        let signed = message.string_to_sign();
        cert.verify(algorithm, signed.as_bytes(), &signature, now)?;
        Ok(Verified {
            cert_subject: cert.subject().to_owned(),
            delivery_key: message.delivery_key_of(&signed),
            message,
        })
    }

    fn check_age(&self, timestamp: &str, now: OffsetDateTime) -> Result<(), SnsError> {
        let at = OffsetDateTime::parse(timestamp, &Rfc3339).map_err(|err| {
            SnsError::Stale(format!("{timestamp:?} is not an ISO-8601 time: {err}"))
        })?;
        let max_age = time::Duration::try_from(self.policy.max_age).unwrap_or(time::Duration::MAX);
        let skew = time::Duration::try_from(MAX_FUTURE_SKEW).unwrap_or(time::Duration::MAX);
        if now - at > max_age {
            return Err(SnsError::Stale(format!(
                "{timestamp} is older than sns.max_age_secs ({} s)",
                self.policy.max_age.as_secs()
            )));
        }
        if at - now > skew {
            return Err(SnsError::Stale(format!("{timestamp} is in the future")));
        }
        Ok(())
    }
}

/// The region of a topic ARN (already checked to be one).
pub(super) fn topic_region(topic_arn: &str) -> &str {
    topic_arn.split(':').nth(3).unwrap_or_default()
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
