//! SNS HTTP/S deliveries: parse, verify the signature against a certificate fetched only from genuine SNS
//! hosts, and classify the verified message. Nothing here acts on AWS; the route hands a `Trigger` on.

pub mod alarm;
mod cert;
mod cert_store;
mod confirm;
mod decide;
mod message;
mod url_policy;
mod verified_signatures;
mod verify;

pub use alarm::alarm_place;
pub use cert::SigningCert;
pub use cert_store::{CertSource, CertStore};
pub use confirm::{ConfirmError, Confirmer};
pub use decide::{Decision, account_allowed, decide};
pub use message::{MessageType, Unverified, is_topic_arn};
pub use url_policy::{CertUrl, SubscribeUrl};
pub use verify::{Verified, Verifier, VerifyPolicy};

/// What `POST /sns` needs: the verifier and the subscription confirmer.
#[derive(Debug)]
pub struct SnsReceiver {
    /// Verifies deliveries.
    pub verifier: Verifier,
    /// Confirms subscriptions.
    pub confirmer: Confirmer,
    /// Topics that unsubscribed reflex (a verified UnsubscribeConfirmation), with when: shown by `/readyz`
    /// until the process restarts, because alarms on them no longer arrive.
    pub unsubscribed: std::sync::Mutex<std::collections::BTreeMap<String, time::OffsetDateTime>>,
}

impl SnsReceiver {
    /// Builds the receiver from the `[sns]` config: pinned certificates when `cert_dir` is set, else fetched
    /// (from the emulator when `aws.endpoint_url` is set).
    pub fn new(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, crate::aws::FetchError> {
        let emulator = match config.sns.certificates_from {
            crate::config::CertificatesFrom::Endpoint => config.aws.endpoint_url.as_deref(),
            crate::config::CertificatesFrom::Aws => None,
        };
        let fetcher = crate::aws::SnsFetcher::new(sdk, emulator)?;
        if fetcher.is_emulated() {
            tracing::warn!(
                "SNS signing certificates and SubscribeURLs are fetched from the EMULATOR endpoint"
            );
        }
        let source = match &config.sns.cert_dir {
            Some(dir) => CertSource::Pinned(dir.clone()),
            None => CertSource::Fetch(fetcher.clone()),
        };
        let counter = |result| {
            metrics
                .sns_certificate_cache
                .get_or_create(&crate::metrics::CacheLabels { result })
                .clone()
        };
        let cert_store = CertStore::counted(source, counter("hit"), counter("load"));
        let policy = VerifyPolicy {
            topic_arns: Some(config.sns.topic_arns.clone()),
            max_age: std::time::Duration::from_secs(config.sns.max_age_secs),
            min_signature_version: config.sns.min_signature_version,
        };
        Ok(Self {
            verifier: Verifier::new(policy, cert_store),
            confirmer: Confirmer::new(
                config.sns.confirm,
                fetcher,
                crate::aws::Subscriptions::new(sdk),
            ),
            unsubscribed: std::sync::Mutex::default(),
        })
    }
}

/// Why a delivery was rejected. Each variant has a stable code (`code()`) and maps to one HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnsError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The JSON is not an SNS message object.
    #[error("the body is not an SNS message: {0}")]
    InvalidMessage(String),
    /// A required field is absent.
    #[error("the SNS message has no {0}")]
    MissingField(&'static str),
    /// A signed field does not have the shape SNS gives it (the value is not echoed: it is the caller's).
    #[error("the SNS message's {field} is not {expected}")]
    InvalidField {
        /// The field, e.g. `MessageId`.
        field: &'static str,
        /// What it must look like.
        expected: &'static str,
    },
    /// `Type` is not one SNS sends.
    #[error("unknown SNS message Type {0:?}")]
    UnknownType(String),
    /// No signature at all: raw message delivery, or not from SNS.
    #[error(
        "the message is not signed (raw message delivery is not accepted; turn it off on the subscription)"
    )]
    Unsigned,
    /// `SignatureVersion` is neither 1 nor 2.
    #[error("SignatureVersion {0:?} is not supported (only 1 and 2)")]
    UnsupportedSignatureVersion(String),
    /// The SigningCertURL or SubscribeURL does not point at a genuine SNS host.
    #[error("untrusted {field}: {reason}")]
    UntrustedUrl {
        /// `SigningCertURL` or `SubscribeURL`.
        field: &'static str,
        /// Which rule it breaks.
        reason: String,
    },
    /// The certificate is not acceptable (format, subject, validity, key).
    #[error("signing certificate rejected: {0}")]
    CertificateRejected(String),
    /// The certificate could not be fetched now; SNS will retry.
    #[error("signing certificate unavailable: {0}")]
    CertificateUnavailable(String),
    /// The signature does not match the message.
    #[error("signature does not match the message")]
    BadSignature,
    /// The topic is not in `sns.topic_arns`.
    #[error("topic {0} is not allowed (sns.topic_arns)")]
    TopicNotAllowed(String),
    /// The Timestamp is unparseable, too old or in the future.
    #[error("stale or invalid Timestamp: {0}")]
    Stale(String),
    /// The `x-amz-sns-message-type` header disagrees with `Type`.
    #[error("x-amz-sns-message-type header {header:?} does not match Type {kind:?}")]
    TypeMismatch {
        /// The header's value.
        header: String,
        /// The body's Type.
        kind: String,
    },
}

impl SnsError {
    /// The stable error code answered and audited.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed-json",
            Self::InvalidMessage(_)
            | Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::UnknownType(_) => "invalid-message",
            Self::Unsigned => "unsigned-message",
            Self::UnsupportedSignatureVersion(_) => "unsupported-signature-version",
            Self::UntrustedUrl { .. } => "untrusted-url",
            Self::CertificateRejected(_) => "certificate-rejected",
            Self::CertificateUnavailable(_) => "certificate-unavailable",
            Self::BadSignature => "bad-signature",
            Self::TopicNotAllowed(_) => "topic-not-allowed",
            Self::Stale(_) => "stale-message",
            Self::TypeMismatch { .. } => "message-type-mismatch",
        }
    }

    /// 400 for malformed input, 403 for anything that fails authentication, 503 when the certificate cannot
    /// be had right now (SNS retries 5xx).
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedJson(_)
            | Self::InvalidMessage(_)
            | Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::UnknownType(_) => 400,
            Self::CertificateUnavailable(_) => 503,
            _ => 403,
        }
    }
}
