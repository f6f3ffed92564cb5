//! SNS test helpers: messages signed with a test key (for what moto does not send, such as subscription
//! confirmations), and a capture endpoint that records what moto delivers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use serde_json::{Value, json};

use super::Fleet;

/// A signing key with a certificate whose subject is `sns.amazonaws.com`.
pub struct TestSigner {
    pkcs8: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
}

/// The file name every test-signed message points its SigningCertURL at.
pub const TEST_CERT_FILE: &str = "SimpleNotificationService-00000000000000000000000000000001.pem";

impl TestSigner {
    /// A fresh 2048-bit RSA key and a self-signed certificate valid for a year.
    pub fn new() -> Self {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "sns.amazonaws.com");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Self {
            pkcs8: key.serialize_der(),
            cert_pem,
        }
    }

    /// Writes the certificate into `dir` under `TEST_CERT_FILE` (for `sns.cert_dir`).
    pub fn pin_into(&self, dir: &std::path::Path) {
        std::fs::write(dir.join(TEST_CERT_FILE), &self.cert_pem).unwrap();
    }

    /// A SignatureVersion 2 SubscriptionConfirmation (or UnsubscribeConfirmation) for `topic_arn`, signed now.
    pub fn confirmation(&self, kind: &str, topic_arn: &str) -> Vec<u8> {
        let region = topic_arn.split(':').nth(3).unwrap();
        let token = "2336412f37fb687f5d51e6e2425dacbbab295929709629bc581ffe77937070b0";
        let fields = json!({
            "Type": kind,
            "MessageId": ulid::Ulid::new().to_string(),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": format!("You have chosen to subscribe to the topic {topic_arn}."),
            "SubscribeURL": format!(
                "https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
            ),
            "Timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
            "SignatureVersion": "2",
            "SigningCertURL": format!("https://sns.{region}.amazonaws.com/{TEST_CERT_FILE}"),
        });
        self.sign(
            fields,
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
        )
    }

    /// A SignatureVersion 2 Notification of `message` on `topic_arn` with a new MessageId, signed now.
    pub fn notification(&self, topic_arn: &str, message: &str) -> Vec<u8> {
        let region = topic_arn.split(':').nth(3).unwrap();
        let fields = json!({
            "Type": "Notification",
            "MessageId": ulid::Ulid::new().to_string(),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
            "SignatureVersion": "2",
            "SigningCertURL": format!("https://sns.{region}.amazonaws.com/{TEST_CERT_FILE}"),
            "UnsubscribeURL": format!(
                "https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:0"
            ),
        });
        self.sign(
            fields,
            &["Message", "MessageId", "Timestamp", "TopicArn", "Type"],
        )
    }

    fn sign(&self, mut fields: Value, signed: &[&str]) -> Vec<u8> {
        let mut text = String::new();
        for key in signed {
            text.push_str(&format!("{key}\n{}\n", fields[*key].as_str().unwrap()));
        }
        let pair = RsaKeyPair::from_pkcs8(&self.pkcs8).unwrap();
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            text.as_bytes(),
            &mut signature,
        )
        .unwrap();
        fields["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
        fields.to_string().into_bytes()
    }
}

/// An HTTP endpoint on loopback that records every body POSTed to it and answers 200.
pub struct Capture {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Capture {
    /// Starts the endpoint.
    pub async fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route(
                "/",
                post(
                    |State(bodies): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                        bodies.lock().unwrap().push(body);
                    },
                ),
            )
            .with_state(Arc::clone(&bodies));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, bodies }
    }

    /// Every body received so far.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A CloudWatch alarm body for a classic ELB, as CloudWatch publishes it to SNS.
pub fn alarm(load_balancer: &str, state: &str) -> String {
    json!({
        "AlarmName": format!("awselb-{load_balancer}-High-Unhealthy-Hosts"),
        "AlarmDescription": "Created from EC2 Console",
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0).",
        "StateChangeTime": "2026-11-25T10:00:00.000+0000",
        "Region": "US East (N. Virginia)",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "UnHealthyHostCount",
            "Namespace": "AWS/ELB",
            "Statistic": "MAXIMUM",
            "Dimensions": [{"name": "LoadBalancerName", "value": load_balancer}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.0
        }
    })
    .to_string()
}

pub async fn topic(fleet: &Fleet, name: &str) -> String {
    let sns = aws_sdk_sns::Client::new(&fleet.sdk);
    sns.create_topic()
        .name(name)
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned()
}

pub async fn subscribe(fleet: &Fleet, topic_arn: &str, endpoint: &str) {
    aws_sdk_sns::Client::new(&fleet.sdk)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("http")
        .endpoint(endpoint)
        .send()
        .await
        .unwrap();
}

/// Publishes without a Subject: moto leaves the Subject out of the string it signs, which AWS includes, so a
/// message with a Subject from moto cannot verify (the unit tests and AWS vectors cover Subject).
pub async fn publish(fleet: &Fleet, topic_arn: &str, message: &str) {
    aws_sdk_sns::Client::new(&fleet.sdk)
        .publish()
        .topic_arn(topic_arn)
        .message(message)
        .send()
        .await
        .unwrap();
}

/// Publishes one alarm to a capture endpoint and returns moto's genuinely signed delivery.
pub async fn captured_delivery(fleet: &Fleet, topic_arn: &str, message: &str) -> Vec<u8> {
    let capture = Capture::start().await;
    subscribe(fleet, topic_arn, &capture.url).await;
    publish(fleet, topic_arn, message).await;
    let bodies = capture.bodies();
    assert_eq!(bodies.len(), 1);
    bodies[0].to_vec()
}
