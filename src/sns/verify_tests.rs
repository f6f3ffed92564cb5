use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::sns::{CertSource, SigningCert};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alarms";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem";

struct TestKey {
    pkcs8: Vec<u8>,
    rcgen: KeyPair,
}

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let rcgen = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        TestKey {
            pkcs8: rcgen.serialize_der(),
            rcgen,
        }
    })
}

fn cert_pem(common_name: &str, not_after: OffsetDateTime) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = datetime!(2026-01-01 0:00 UTC);
    params.not_after = not_after;
    params.self_signed(&key().rcgen).unwrap().pem()
}

fn good_cert() -> SigningCert {
    SigningCert::from_pem(cert_pem("sns.amazonaws.com", datetime!(2027-01-01 0:00 UTC)).as_bytes())
        .unwrap()
}

fn verifier_with(cert: SigningCert) -> Verifier {
    Verifier::new(
        VerifyPolicy {
            topic_arns: Some(vec![TOPIC.to_owned()]),
            max_age: std::time::Duration::from_secs(3600),
            min_signature_version: 1,
        },
        CertStore::new(CertSource::Fixed(Arc::new(cert))),
    )
}

fn notification() -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "0b7a1a24-5b1d-5b6f-9a3e-000000000001",
        "TopicArn": TOPIC,
        "Subject": "ALARM: \"web\" in US East",
        "Message": "{\"AlarmName\":\"web\",\"NewStateValue\":\"ALARM\"}\n",
        "Timestamp": "2026-06-01T11:59:30.123Z",
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
    })
}

fn confirmation(kind: &str) -> Value {
    json!({
        "Type": kind,
        "MessageId": "0b7a1a24-5b1d-5b6f-9a3e-000000000002",
        "Token": "2336412f37fb687f5d51e6e2425dacbb",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:alarms&Token=2336412f37fb687f5d51e6e2425dacbb",
        "Timestamp": "2026-06-01T11:59:30.123Z",
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL
    })
}

/// Signs `fields` with RSA-SHA256 as SNS does for SignatureVersion 2 and returns the JSON body. (SignatureVersion
/// 1 is covered by the genuine AWS and crafted vectors: the crypto library only verifies SHA-1 signatures.)
fn sign(mut fields: Value) -> Vec<u8> {
    fields["Signature"] = json!("placeholder");
    let unsigned = Unverified::parse(fields.to_string().as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&key().pkcs8).unwrap();
    let mut out = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        unsigned.string_to_sign().as_bytes(),
        &mut out,
    )
    .unwrap();
    fields["Signature"] = json!(STANDARD.encode(out));
    fields.to_string().into_bytes()
}

async fn verify(body: &[u8]) -> Result<Verified, SnsError> {
    verifier_with(good_cert()).verify(body, None, NOW).await
}

async fn code_of(body: &[u8]) -> &'static str {
    verify(body).await.expect_err("must be rejected").code()
}

#[tokio::test]
async fn notifications_and_confirmations_verify() {
    let verified = verify(&sign(notification())).await.unwrap();
    assert_eq!(
        verified.message().message_id,
        "0b7a1a24-5b1d-5b6f-9a3e-000000000001"
    );
    for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
        let verified = verify(&sign(confirmation(kind))).await.unwrap();
        assert_eq!(verified.message().kind.as_str(), kind);
    }
}

#[tokio::test]
async fn subject_absent_null_and_empty_all_verify_when_signed_so() {
    for subject in [None, Some(Value::Null), Some(json!(""))] {
        let mut fields = notification();
        match subject {
            None => {
                fields.as_object_mut().unwrap().remove("Subject");
            }
            Some(value) => fields["Subject"] = value,
        }
        verify(&sign(fields)).await.unwrap();
    }
}

#[tokio::test]
async fn tampering_with_any_signed_field_breaks_the_signature() {
    let body: Value = serde_json::from_slice(&sign(notification())).unwrap();
    for (field, value) in [
        (
            "Message",
            json!("{\"AlarmName\":\"web\",\"NewStateValue\":\"ALARM\"}"),
        ),
        ("MessageId", json!("0b7a1a24-5b1d-5b6f-9a3e-000000000009")),
        ("Subject", json!("ALARM: \"db\" in US East")),
        ("Timestamp", json!("2026-06-01T11:59:31.123Z")),
    ] {
        let mut tampered = body.clone();
        tampered[field] = value;
        assert_eq!(
            code_of(tampered.to_string().as_bytes()).await,
            "bad-signature",
            "{field}"
        );
    }
    let mut no_subject = body.clone();
    no_subject.as_object_mut().unwrap().remove("Subject");
    assert_eq!(
        code_of(no_subject.to_string().as_bytes()).await,
        "bad-signature"
    );
    let mut v1 = body.clone();
    v1["SignatureVersion"] = json!("1");
    assert_eq!(code_of(v1.to_string().as_bytes()).await, "bad-signature");
    let mut not_base64 = body.clone();
    not_base64["Signature"] = json!("***not base64***");
    assert_eq!(
        code_of(not_base64.to_string().as_bytes()).await,
        "bad-signature"
    );
}

#[tokio::test]
async fn unknown_signature_versions_are_rejected() {
    for version in ["3", "0", "", "SHA256"] {
        let mut fields = notification();
        fields["SignatureVersion"] = json!(version);
        assert_eq!(
            code_of(&sign(fields)).await,
            "unsupported-signature-version",
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn untrusted_certificate_urls_are_rejected_before_any_fetch() {
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0123abcd.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem",
        "https://evil.com/SimpleNotificationService-0123abcd.pem",
        "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-0123abcd.pem",
    ] {
        let mut fields = notification();
        fields["SigningCertURL"] = json!(url);
        // The signature is valid (the URL is not signed): only the policy can stop it.
        assert_eq!(code_of(&sign(fields)).await, "untrusted-url", "{url}");
    }
}

#[tokio::test]
async fn topic_age_and_type_header_are_enforced() {
    let mut foreign = notification();
    foreign["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:other");
    assert_eq!(code_of(&sign(foreign)).await, "topic-not-allowed");

    let mut stale = notification();
    stale["Timestamp"] = json!("2026-06-01T10:59:00.000Z");
    assert_eq!(code_of(&sign(stale)).await, "stale-message");
    let mut future = notification();
    future["Timestamp"] = json!("2026-06-01T12:06:00.000Z");
    assert_eq!(code_of(&sign(future)).await, "stale-message");
    let mut garbage = notification();
    garbage["Timestamp"] = json!("2026-13-45T99:99:99Z");
    assert_eq!(code_of(&sign(garbage)).await, "stale-message");

    let body = sign(notification());
    let verifier = verifier_with(good_cert());
    assert!(
        verifier
            .verify(&body, Some("Notification"), NOW)
            .await
            .is_ok()
    );
    let err = verifier
        .verify(&body, Some("SubscriptionConfirmation"), NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "message-type-mismatch");
}

#[tokio::test]
async fn raw_and_malformed_bodies_are_rejected() {
    assert_eq!(
        code_of(b"{\"AlarmName\":\"web\",\"NewStateValue\":\"ALARM\"}").await,
        "unsigned-message"
    );
    assert_eq!(code_of(b"ALARM").await, "malformed-json");
    assert_eq!(code_of(b"\"just a string\"").await, "invalid-message");
    let mut no_version: Value = serde_json::from_slice(&sign(notification())).unwrap();
    no_version
        .as_object_mut()
        .unwrap()
        .remove("SignatureVersion");
    assert_eq!(
        code_of(no_version.to_string().as_bytes()).await,
        "invalid-message"
    );
}

#[test]
fn certificates_must_be_sns_rsa_2048_single_pem() {
    let rejected = |pem: &[u8]| {
        SigningCert::from_pem(pem)
            .expect_err("must be rejected")
            .to_string()
    };
    let wrong_subject = cert_pem("sns.amazonaws.com.evil.com", datetime!(2027-01-01 0:00 UTC));
    assert!(rejected(wrong_subject.as_bytes()).contains("not an SNS signing name"));
    let weak = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/weak_rsa1024_cert.pem"
    ));
    assert!(rejected(weak.as_bytes()).contains("1024 bits"));
    let good = cert_pem("sns.amazonaws.com", datetime!(2027-01-01 0:00 UTC));
    assert!(rejected(format!("{good}{good}").as_bytes()).contains("more than one"));
    assert!(rejected(b"not a certificate").contains("not a PEM"));
    let key_pem = key().rcgen.serialize_pem();
    assert!(rejected(key_pem.as_bytes()).contains("not CERTIFICATE"));
    assert!(SigningCert::from_pem(good.as_bytes()).is_ok());
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_certificate_is_rejected() {
    let expired = SigningCert::from_pem(
        cert_pem("sns.amazonaws.com", datetime!(2026-05-01 0:00 UTC)).as_bytes(),
    )
    .unwrap();
    let err = verifier_with(expired)
        .verify(&sign(notification()), None, NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "certificate-rejected");
    let mut early = notification();
    early["Timestamp"] = json!("2025-12-31T23:59:00.000Z");
    let err = verifier_with(good_cert())
        .verify(&sign(early), None, datetime!(2025-12-31 23:59:30 UTC))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "certificate-rejected");
}

#[tokio::test]
async fn pinned_certificates_are_read_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = |dir: &std::path::Path| {
        Verifier::new(
            VerifyPolicy {
                topic_arns: None,
                max_age: std::time::Duration::from_secs(3600),
                min_signature_version: 1,
            },
            CertStore::new(CertSource::Pinned(dir.to_owned())),
        )
    };
    let body = sign(notification());
    let missing = verifier(dir.path())
        .verify(&body, None, NOW)
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no pinned certificate"),
        "{missing}"
    );
    std::fs::write(
        dir.path().join("SimpleNotificationService-0123abcd.pem"),
        cert_pem("sns.amazonaws.com", datetime!(2027-01-01 0:00 UTC)),
    )
    .unwrap();
    let pinned = verifier(dir.path());
    pinned.verify(&body, None, NOW).await.unwrap();
    pinned.verify(&body, None, NOW).await.unwrap();
    assert_eq!((pinned.certs().loads(), pinned.certs().hits()), (1, 1));
}

/// Every genuine AWS message in the test vectors verifies at its own Timestamp with its real certificate.
#[tokio::test]
async fn genuine_aws_messages_verify_and_tampered_copies_do_not() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sns");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("aws")).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let fields: Value = serde_json::from_slice(&body).unwrap();
        let at = OffsetDateTime::parse(fields["Timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
        let verifier = Verifier::new(
            VerifyPolicy {
                topic_arns: None,
                max_age: std::time::Duration::from_secs(3600),
                min_signature_version: 1,
            },
            CertStore::new(CertSource::Pinned(root.join("certs"))),
        );
        verifier
            .verify(&body, None, at)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let mut tampered = fields.clone();
        tampered["Message"] = json!(format!("{}!", fields["Message"].as_str().unwrap()));
        let err = verifier
            .verify(tampered.to_string().as_bytes(), None, at)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "bad-signature", "{}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 8);
}

/// The crafted vectors (signed with `crafted_test_key.pem`) cover SignatureVersion 1 unsubscribe confirmations
/// and a SignatureVersion 2 message with non-BMP characters and a trailing newline. Their own certificate's
/// subject is deliberately not an SNS name, so a certificate for the same key is made here.
#[tokio::test]
async fn crafted_vectors_verify_with_a_certificate_for_their_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sns/selfsigned");
    let key_pem = std::fs::read_to_string(dir.join("crafted_test_key.pem")).unwrap();
    let crafted_key = KeyPair::from_pem(&key_pem).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "sns.amazonaws.com");
    params.not_before = datetime!(2020-01-01 0:00 UTC);
    params.not_after = datetime!(2040-01-01 0:00 UTC);
    let cert = params.self_signed(&crafted_key).unwrap().pem();

    let own = std::fs::read(dir.join("crafted_test_cert.pem")).unwrap();
    assert!(
        SigningCert::from_pem(&own)
            .unwrap_err()
            .to_string()
            .contains("not an SNS signing name")
    );

    for name in [
        "crafted_notification_v2_subject_unicode.json",
        "crafted_unsubscribe_confirmation_v1.json",
        "crafted_unsubscribe_confirmation_v2.json",
    ] {
        let body = std::fs::read(dir.join(name)).unwrap();
        let fields: Value = serde_json::from_slice(&body).unwrap();
        let at = OffsetDateTime::parse(fields["Timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
        let verifier = Verifier::new(
            VerifyPolicy {
                topic_arns: None,
                max_age: std::time::Duration::from_secs(3600),
                min_signature_version: 1,
            },
            CertStore::new(CertSource::Fixed(Arc::new(
                SigningCert::from_pem(cert.as_bytes()).unwrap(),
            ))),
        );
        verifier
            .verify(&body, None, at)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    }
}

#[tokio::test]
async fn a_rewrite_that_moves_text_between_signed_fields_is_refused() {
    // Genuinely signed: a Message that contains what looks like a MessageId pair.
    let mut original = notification();
    original["Message"] = json!("A\nMessageId\nB");
    original["MessageId"] = json!("c-1");
    let original = sign(original);
    assert!(verify(&original).await.is_ok());

    // The same signed bytes read another way: a new MessageId carved out of the Message.
    let mut rewritten: Value = serde_json::from_slice(&original).unwrap();
    rewritten["Message"] = json!("A");
    rewritten["MessageId"] = json!("B\nMessageId\nc-1");
    let body = rewritten.to_string();
    assert_eq!(code_of(body.as_bytes()).await, "invalid-message");

    // Without the shape rule the signature would still hold: both readings sign the same string.
    let first = Unverified::parse(&original).unwrap();
    let mut moved = first.clone();
    moved.message = "A".into();
    moved.message_id = "B\nMessageId\nc-1".into();
    assert_eq!(moved.string_to_sign(), first.string_to_sign());
}

#[tokio::test]
async fn the_delivery_key_ignores_unsigned_fields_and_binds_signed_ones() {
    let body = sign(notification());
    let verified = verify(&body).await.unwrap();
    let first = verified.message().delivery_key();
    assert_eq!(verified.delivery_key(), first);
    assert!(first.starts_with("sns:0b7a1a24-5b1d-5b6f-9a3e-000000000001:"));

    let mut unsigned_changed: Value = serde_json::from_slice(&body).unwrap();
    unsigned_changed["SigningCertURL"] =
        json!("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ffff.pem");
    unsigned_changed["UnsubscribeURL"] = json!("https://example.invalid/");
    unsigned_changed["MessageAttributes"] = json!({"a": {"Type": "String", "Value": "b"}});
    let again = verify(unsigned_changed.to_string().as_bytes())
        .await
        .unwrap()
        .message()
        .delivery_key();
    assert_eq!(first, again);

    let mut other = notification();
    other["Message"] = json!("another alarm with the same MessageId");
    let other = verify(&sign(other)).await.unwrap().message().delivery_key();
    assert_ne!(first, other);
}

#[test]
fn signed_fields_must_have_sns_shapes() {
    for (field, value) in [
        ("MessageId", ""),
        ("MessageId", "a b"),
        ("MessageId", &"x".repeat(129)),
        ("TopicArn", "arn:aws:sns:us-east-1:1:t"),
        ("TopicArn", &format!("{TOPIC}{}", "x".repeat(300))),
        ("TopicArn", "arn:aws:sqs:us-east-1:123456789012:q"),
        ("Timestamp", "2026-06-01 11:59:30"),
        ("Timestamp", "yesterday"),
    ] {
        let mut message = notification();
        message[field] = json!(value);
        message["Signature"] = json!("x");
        let err = Unverified::parse(message.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code(), "invalid-message", "{field}={value:?}");
        assert!(
            !err.to_string().contains("xxxxxxxxxx"),
            "the value is not echoed"
        );
    }
}

#[tokio::test]
async fn sha1_signatures_can_be_refused_by_config() {
    let mut v1 = notification();
    v1["SignatureVersion"] = json!("1");
    let body = sign(v1);
    let strict = Verifier::new(
        VerifyPolicy {
            topic_arns: Some(vec![TOPIC.to_owned()]),
            max_age: std::time::Duration::from_secs(3600),
            min_signature_version: 2,
        },
        CertStore::new(CertSource::Fixed(Arc::new(good_cert()))),
    );
    let err = strict.verify(&body, None, NOW).await.unwrap_err();
    assert_eq!(err.code(), "unsupported-signature-version");
    assert!(err.to_string().contains("min_signature_version"), "{err}");
    assert!(
        strict
            .verify(&sign(notification()), None, NOW)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_certificate_url_outside_the_topics_region_is_refused() {
    let mut fields = notification();
    fields["SigningCertURL"] =
        json!("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-0123abcd.pem");
    assert_eq!(code_of(&sign(fields)).await, "untrusted-url");
}

#[tokio::test]
async fn a_subscribe_url_outside_the_topics_region_is_never_fetched() {
    let mut fields = confirmation("SubscriptionConfirmation");
    fields["SubscribeURL"] =
        json!("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y");
    let verified = verify(&sign(fields)).await.unwrap();
    let sdk = aws_config::SdkConfig::builder().build();
    let confirmer = crate::sns::Confirmer::new(
        crate::config::ConfirmMethod::SubscribeUrl,
        crate::aws::SnsFetcher::new(&sdk, None).unwrap(),
        crate::aws::Subscriptions::new(&sdk),
    );
    match confirmer.confirm(&verified).await {
        Err(crate::sns::ConfirmError::Untrusted(err)) => {
            assert_eq!(err.code(), "untrusted-url");
            assert!(err.to_string().contains("region"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_remembered_verification_vouches_only_for_the_same_bytes_and_time_still_counts() {
    let verifier = verifier_with(good_cert());
    let body = sign(notification());
    verifier.verify(&body, None, NOW).await.unwrap();
    // The redelivery is recognised; the same message with any other signature is still checked and refused.
    verifier.verify(&body, None, NOW).await.unwrap();
    let mut forged: Value = serde_json::from_slice(&body).unwrap();
    let mut signature = STANDARD
        .decode(forged["Signature"].as_str().unwrap())
        .unwrap();
    signature[10] ^= 1;
    forged["Signature"] = json!(STANDARD.encode(&signature));
    let err = verifier
        .verify(forged.to_string().as_bytes(), None, NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad-signature");
    // A remembered message is still refused once it is too old, and once its certificate has expired.
    let late = NOW + time::Duration::hours(2);
    let err = verifier.verify(&body, None, late).await.unwrap_err();
    assert_eq!(err.code(), "stale-message");
    let cert = good_cert();
    let message = Unverified::parse(&body).unwrap();
    let signed = message.string_to_sign();
    let signature = STANDARD.decode(message.signature.as_bytes()).unwrap();
    let scheme = crate::sns::cert::SignatureAlgorithm::RsaSha256;
    cert.verify(scheme, signed.as_bytes(), &signature, NOW)
        .unwrap();
    let err = cert
        .verify(
            scheme,
            signed.as_bytes(),
            &signature,
            datetime!(2027-02-01 0:00 UTC),
        )
        .unwrap_err();
    assert_eq!(err.code(), "certificate-rejected");
}
