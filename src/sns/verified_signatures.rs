//! The signatures one certificate has already verified, remembered by a digest of exactly what was checked
//! (the scheme, the signed string and the signature). SNS retries a delivery until it is answered, with the
//! same bytes each time: a redelivery then costs a SHA-256 instead of an RSA verification. Bounded: when full,
//! it starts afresh.

use std::collections::HashSet;
use std::sync::Mutex;

use aws_lc_rs::digest;

/// Most signatures remembered per certificate (32 bytes each).
const KEEP: usize = 8192;

/// A digest of one verification's inputs.
pub(super) type Checked = [u8; 32];

/// The remembered verifications of one certificate.
#[derive(Debug, Default)]
pub(super) struct VerifiedSignatures {
    seen: Mutex<HashSet<Checked>>,
}

impl VerifiedSignatures {
    /// The digest of a verification of `signature` over `signed` with the scheme numbered `scheme`.
    pub fn digest_of(scheme: u8, signed: &[u8], signature: &[u8]) -> Checked {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(&[scheme]);
        context.update(&(signed.len() as u64).to_be_bytes());
        context.update(signed);
        context.update(signature);
        let mut out = [0; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }

    /// Whether this exact verification succeeded before.
    pub fn contains(&self, checked: &Checked) -> bool {
        self.lock().contains(checked)
    }

    /// Remembers a verification that succeeded.
    pub fn insert(&self, checked: Checked) {
        let mut seen = self.lock();
        if seen.len() >= KEEP {
            seen.clear();
        }
        seen.insert(checked);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Checked>> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for VerifiedSignatures {
    /// A copy of a certificate starts with nothing remembered.
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_scheme_string_and_signature_are_recognised() {
        let seen = VerifiedSignatures::default();
        let checked = VerifiedSignatures::digest_of(2, b"signed", b"sig");
        assert!(!seen.contains(&checked));
        seen.insert(checked);
        assert!(seen.contains(&checked));
        assert!(!seen.contains(&VerifiedSignatures::digest_of(1, b"signed", b"sig")));
        assert!(!seen.contains(&VerifiedSignatures::digest_of(2, b"signed!", b"sig")));
        assert!(!seen.contains(&VerifiedSignatures::digest_of(2, b"signed", b"sig!")));
        // The length is hashed: moving bytes from the string to the signature is another verification.
        assert!(!seen.contains(&VerifiedSignatures::digest_of(2, b"signe", b"dsig")));
    }

    #[test]
    fn a_full_memory_starts_afresh() {
        let seen = VerifiedSignatures::default();
        for n in 0..KEEP as u64 {
            seen.insert(VerifiedSignatures::digest_of(2, &n.to_be_bytes(), b""));
        }
        let first = VerifiedSignatures::digest_of(2, &0u64.to_be_bytes(), b"");
        assert!(seen.contains(&first));
        seen.insert(VerifiedSignatures::digest_of(2, b"one more", b""));
        assert!(!seen.contains(&first));
        assert_eq!(seen.lock().len(), 1);
    }
}
