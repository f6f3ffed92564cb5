//! An SNS signing certificate, checked once when it is loaded: a single PEM certificate for an SNS signing name
//! with an RSA key of at least 2048 bits. Validity is checked at each use, against the caller's clock.

use aws_lc_rs::signature::{self, ParsedPublicKey};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

use super::SnsError;
use super::verified_signatures::VerifiedSignatures;

/// Smallest accepted RSA modulus.
const MIN_RSA_BITS: usize = 2048;

/// The parts of a signing certificate needed to verify messages. The key is parsed once per signature scheme
/// when the certificate is loaded, not at every verification.
#[derive(Debug, Clone)]
pub struct SigningCert {
    /// The key for SignatureVersion 1 (RSA-SHA1).
    sha1_key: ParsedPublicKey,
    /// The key for SignatureVersion 2 (RSA-SHA256).
    sha256_key: ParsedPublicKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    subject: String,
    /// Signatures already verified with this certificate (redeliveries skip the RSA operation).
    verified: VerifiedSignatures,
}

impl SigningCert {
    /// Parses and checks a PEM document holding exactly one certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SnsError> {
        let reject = |reason: String| SnsError::CertificateRejected(reason);
        let mut blocks = Pem::iter_from_buffer(pem);
        let block = match blocks.next() {
            Some(Ok(block)) => block,
            _ => return Err(reject("not a PEM certificate".into())),
        };
        if blocks.next().is_some() {
            return Err(reject("more than one PEM block".into()));
        }
        if block.label != "CERTIFICATE" {
            return Err(reject(format!(
                "PEM block is {:?}, not CERTIFICATE",
                block.label
            )));
        }
        let cert = block
            .parse_x509()
            .map_err(|err| reject(format!("not an X.509 certificate: {err}")))?;
        let subject = cert.subject().to_string();
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            names.extend(
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                        _ => None,
                    }),
            );
        }
        if !names.iter().any(|name| is_signing_name(name)) {
            return Err(reject(format!(
                "subject {subject:?} is not an SNS signing name (sns.amazonaws.com)"
            )));
        }
        let spki = cert.public_key();
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= MIN_RSA_BITS => {}
            Ok(PublicKey::RSA(rsa)) => {
                return Err(reject(format!(
                    "RSA key of {} bits is weaker than {MIN_RSA_BITS}",
                    rsa.key_size()
                )));
            }
            _ => return Err(reject("the key is not RSA".into())),
        }
        let validity = cert.validity();
        let at = |t: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp())
                .map_err(|_| reject("validity dates out of range".into()))
        };
        let key_for = |algorithm: &'static dyn signature::VerificationAlgorithm| {
            ParsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
                .map_err(|err| reject(format!("the RSA key cannot be used: {err}")))
        };
        Ok(Self {
            sha1_key: key_for(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY)?,
            sha256_key: key_for(&signature::RSA_PKCS1_2048_8192_SHA256)?,
            not_before: at(validity.not_before)?,
            not_after: at(validity.not_after)?,
            subject,
            verified: VerifiedSignatures::default(),
        })
    }

    /// Checks the signature of `signed` made with SignatureVersion `version` (already known to be 1 or 2),
    /// after checking that the certificate is valid at `now`.
    pub fn verify(
        &self,
        version: SignatureAlgorithm,
        signed: &[u8],
        signature: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), SnsError> {
        if now < self.not_before || now > self.not_after {
            return Err(SnsError::CertificateRejected(format!(
                "not valid at {now} (valid from {} to {})",
                self.not_before, self.not_after
            )));
        }
        let checked = VerifiedSignatures::digest_of(version.version(), signed, signature);
        if self.verified.contains(&checked) {
            return Ok(());
        }
        let key = match version {
            SignatureAlgorithm::RsaSha1 => &self.sha1_key,
            SignatureAlgorithm::RsaSha256 => &self.sha256_key,
        };
        key.verify_sig(signed, signature)
            .map_err(|_| SnsError::BadSignature)?;
        self.verified.insert(checked);
        Ok(())
    }

    /// The certificate's subject, for the audit trail.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// The two signature schemes SNS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// SignatureVersion 1.
    RsaSha1,
    /// SignatureVersion 2.
    RsaSha256,
}

impl SignatureAlgorithm {
    /// Maps `SignatureVersion`; anything but 1 and 2 is rejected.
    pub fn from_version(version: &str) -> Result<Self, SnsError> {
        match version {
            "1" => Ok(Self::RsaSha1),
            "2" => Ok(Self::RsaSha256),
            other => Err(SnsError::UnsupportedSignatureVersion(
                other.chars().take(16).collect(),
            )),
        }
    }

    /// The SignatureVersion number.
    pub fn version(self) -> u8 {
        match self {
            Self::RsaSha1 => 1,
            Self::RsaSha256 => 2,
        }
    }
}

/// `sns.amazonaws.com` (every AWS signing certificate so far) or a regional SNS name.
fn is_signing_name(name: &str) -> bool {
    if matches!(name, "sns.amazonaws.com" | "sns.amazonaws.com.cn") {
        return true;
    }
    let Some(region) = name.strip_prefix("sns.").and_then(|rest| {
        rest.strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    }) else {
        return false;
    };
    region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
