//! `POST /sns` end to end: moto publishes genuinely signed notifications (its certificate fetched in emulator
//! mode); confirmations are signed by a test key whose certificate is pinned.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::common::sns::TestSigner;
pub(crate) use crate::common::sns::{alarm, captured_delivery, publish, subscribe, topic};
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

/// reflex allowed to touch `lb` and to take deliveries from `topics`, plus `sns_extra` keys in `[sns]`.
async fn app(
    moto: &Moto,
    lb: &str,
    topics: &[&str],
    sns_extra: &str,
) -> (TestApp, tempfile::TempDir) {
    app_with(moto, lb, topics, sns_extra, "").await
}

/// `app`, with `server_extra` keys in `[server]`.
async fn app_with(
    moto: &Moto,
    lb: &str,
    topics: &[&str],
    sns_extra: &str,
    server_extra: &str,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[lb],
        PERMISSIVE,
    )
    .replace("[server]\n", &format!("[server]\n{server_extra}"));
    text.push_str(&format!(
        "\n[sns]\ntopic_arns = {}\ncertificates_from = \"endpoint\"\n{}\n",
        serde_json::to_string(topics).unwrap(),
        sns_extra.replace("CERT_DIR", certs.path().to_str().unwrap())
    ));
    (TestApp::spawn_with_config(dir, &text).await, certs)
}

#[tokio::test]
async fn a_signed_alarm_from_moto_terminates_the_stopped_instance_and_ok_does_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("snsweb");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let (app, _certs) = app(moto, &lb, &[&topic_arn], "").await;
    subscribe(&fleet, &topic_arn, &format!("{}/sns", app.base)).await;

    publish(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;

    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(
        (
            record.source.as_str(),
            record.outcome.as_str(),
            record.acted
        ),
        ("sns", "completed", 1)
    );
    assert_eq!(record.auth, "passed");
    assert_eq!(record.detail["verified"]["signature_version"], "2");
    assert_eq!(record.detail["verified"]["topic_arn"], topic_arn.as_str());
    assert_eq!(
        record.detail["verified"]["cert_subject"],
        "CN=sns.amazonaws.com"
    );
    assert_eq!(
        record.detail["answer"]["terminated-instance-ids"],
        json!(bad)
    );
    assert_eq!(record.detail["answer"]["message"], alarm(&lb, "ALARM"));

    fleet.stop(&good[..1]).await;
    publish(&fleet, &topic_arn, &alarm(&lb, "OK")).await;
    assert_eq!(fleet.state(&good[0]).await, InstanceStateName::Stopped);
    let latest = &app.audit_records().await[0];
    assert_eq!((latest.outcome.as_str(), latest.status), ("ignored", 200));
    assert!(
        latest.detail["answer"]["ignored"]
            .as_str()
            .unwrap()
            .contains("OK")
    );
    // moto signs every message with a certificate of its own (a new SigningCertURL each time).
    assert_eq!(app.state_cert_loads(), 2);
}

#[tokio::test]
async fn redeliveries_even_concurrent_ones_act_once_and_return_the_first_summary() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("snsdup");
    let (_, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let topic_arn = topic(&fleet, &unique("dup")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    let (app, _certs) = app(moto, &lb, &[&topic_arn], "").await;

    let (first, second) = tokio::join!(
        app.post_sns(delivery.clone()),
        app.post_sns(delivery.clone())
    );
    assert_eq!((first.0, second.0), (200, 200), "{first:?} {second:?}");
    let (original, copy) = if first.1["duplicate"] == json!(false) {
        (first.1, second.1)
    } else {
        (second.1, first.1)
    };
    assert_eq!(original["duplicate"], false);
    assert_eq!(copy["duplicate"], true);
    assert_eq!(original["terminated-instance-ids"], json!(bad));
    let mut same = copy.clone();
    same["duplicate"] = json!(false);
    assert_eq!(same, original, "a redelivery answers the first summary");

    let (status, later) = app.post_sns(delivery).await;
    assert_eq!(status, 200);
    assert_eq!(later["duplicate"], true);
    assert_eq!(later["audit-id"], original["audit-id"]);

    let records = app.audit_records().await;
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "completed").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "duplicate").count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(records.iter().map(|r| r.acted).sum::<u32>(), 1);
}

#[tokio::test]
async fn concurrent_deliveries_of_an_alert_that_leads_to_nothing_are_recorded_once_and_replayed() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("snsok");
    fleet.balancer_with(&lb, 2, 0).await;
    let topic_arn = topic(&fleet, &unique("okdup")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "OK")).await;
    let (app, _certs) = app(moto, &lb, &[&topic_arn], "").await;

    let app = std::sync::Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (app, delivery) = (std::sync::Arc::clone(&app), delivery.clone());
        tasks.spawn(async move { app.post_sns(delivery).await });
    }
    let answers = tasks.join_all().await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let firsts: Vec<&Value> = answers
        .iter()
        .map(|(_, answer)| answer)
        .filter(|answer| answer["duplicate"] == json!(false))
        .collect();
    assert_eq!(firsts.len(), 1, "one delivery is the first: {answers:?}");
    for (_, answer) in &answers {
        let mut same = answer.clone();
        same["duplicate"] = json!(false);
        assert_eq!(&same, firsts[0], "every copy answers the first summary");
    }
    let records = app.audit_records().await;
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ignored").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "duplicate").count(),
        11,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn forged_replayed_foreign_and_unsigned_deliveries_are_rejected_and_change_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("snsbad");
    let (good, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let topic_arn = topic(&fleet, &unique("forged")).await;
    let other_topic = topic(&fleet, &unique("other")).await;
    let genuine = captured_delivery(&fleet, &topic_arn, "web is down").await;
    let foreign = captured_delivery(&fleet, &other_topic, &alarm(&lb, "ALARM")).await;
    let (app, _certs) = app(moto, &lb, &[&topic_arn], "max_age_secs = 3600").await;

    let mut forged: Value = serde_json::from_slice(&genuine).unwrap();
    forged["Message"] = json!(alarm(&lb, "ALARM"));
    let mut evil_cert: Value = serde_json::from_slice(&genuine).unwrap();
    evil_cert["SigningCertURL"] =
        json!("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem");
    let mut v3: Value = serde_json::from_slice(&genuine).unwrap();
    v3["SignatureVersion"] = json!("3");
    let mut old: Value = serde_json::from_slice(&genuine).unwrap();
    old["Timestamp"] = json!("2020-01-01T00:00:00.000Z");

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (forged.to_string().into_bytes(), 403, "bad-signature"),
        (evil_cert.to_string().into_bytes(), 403, "untrusted-url"),
        (
            v3.to_string().into_bytes(),
            403,
            "unsupported-signature-version",
        ),
        (old.to_string().into_bytes(), 403, "stale-message"),
        (foreign, 403, "topic-not-allowed"),
        (alarm(&lb, "ALARM").into_bytes(), 403, "unsigned-message"),
        (b"{oops".to_vec(), 400, "malformed-json"),
        (vec![b' '; 5000], 413, "payload-too-large"),
    ];
    for (body, status, code) in &cases {
        let (got, answer) = app.post_sns(body.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or_default()),
            (*status, *code),
            "{answer}"
        );
    }
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
    assert!(fleet.none_terminated(&good).await);
    let records = app.audit_records().await;
    assert_eq!(records.len(), cases.len());
    for (record, (_, status, code)) in records.iter().rev().zip(&cases) {
        assert_eq!(
            (
                record.outcome.as_str(),
                record.status,
                record.error.as_deref()
            ),
            ("rejected", *status, Some(*code))
        );
        assert_eq!(record.source, "sns");
    }
    assert_eq!(records.last().unwrap().auth, "bad-signature");

    // The genuine message itself names no balancer; with one target it heals that one.
    let (status, summary) = app.post_sns(genuine).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!(bad));
}

#[tokio::test]
async fn subscriptions_are_confirmed_for_allowed_topics_only() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let signer = TestSigner::new();
    let lb = unique("snsconf");
    let topic_arn = topic(&fleet, &unique("confirm")).await;
    let missing_topic = "arn:aws:sns:us-east-1:123456789012:does-not-exist";
    let not_allowed = topic(&fleet, &unique("notallowed")).await;

    for method in ["subscribe-url", "api"] {
        let (app, certs) = app(
            moto,
            &lb,
            &[&topic_arn, missing_topic],
            &format!("cert_dir = \"CERT_DIR\"\nconfirm = \"{method}\""),
        )
        .await;
        signer.pin_into(certs.path());

        let (status, answer) = app
            .post_sns(signer.confirmation("SubscriptionConfirmation", &topic_arn))
            .await;
        assert_eq!(status, 200, "{method}: {answer}");
        assert_eq!(answer["subscription"], "confirmed");
        let record = &app.audit_records().await[0];
        assert_eq!(record.outcome, "confirmed");
        assert_eq!(record.detail["confirmed"]["method"], method);

        // Allowed here but unknown to SNS: the confirmation call really happens, and fails.
        let (status, answer) = app
            .post_sns(signer.confirmation("SubscriptionConfirmation", missing_topic))
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (503, Some("confirmation-failed")),
            "{method}"
        );

        let (status, answer) = app
            .post_sns(signer.confirmation("SubscriptionConfirmation", &not_allowed))
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("topic-not-allowed")),
            "{method}"
        );

        let (status, answer) = app
            .post_sns(signer.confirmation("UnsubscribeConfirmation", &topic_arn))
            .await;
        assert_eq!(status, 200);
        assert!(answer["ignored"].as_str().is_some());
        assert_eq!(app.audit_records().await[0].outcome, "ignored");
        // Losing a subscription is loud: counted, and named by /readyz (still ready).
        let (status, ready) = app.get("/readyz", None).await;
        assert_eq!(status, 200);
        let warning = ready["warnings"][0].as_str().unwrap_or_default();
        assert!(warning.contains(&topic_arn), "{ready}");
        let metrics = app.get_text("/metrics").await;
        assert!(
            metrics.contains(&format!(
                "reflex_sns_unsubscribed_total{{topic_arn=\"{topic_arn}\"}} 1"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_thousand_concurrent_deliveries_fetch_the_new_certificate_once() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("snsload");
    let (_, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let topic_arn = topic(&fleet, &unique("load")).await;
    let delivery =
        bytes::Bytes::from(captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await);
    // All 1,000 may be in flight at once while the first one runs: server.max_in_flight (256 by default)
    // would answer some of them 503 `overloaded`, which src/http/tests.rs tests on its own.
    let (app, _certs) = app_with(moto, &lb, &[&topic_arn], "", "max_in_flight = 2000\n").await;
    let app = std::sync::Arc::new(app);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (app, delivery) = (std::sync::Arc::clone(&app), delivery.clone());
        tasks.spawn(async move { app.post_sns(delivery).await });
    }
    let mut acted = 0;
    while let Some(result) = tasks.join_next().await {
        let (status, summary) = result.unwrap();
        assert_eq!(status, 200, "{summary}");
        if summary["duplicate"] == json!(false) {
            acted += 1;
            assert_eq!(summary["terminated-instance-ids"], json!(bad));
        }
    }
    assert_eq!(
        acted, 1,
        "one delivery acts, the others are answered as duplicates"
    );
    assert_eq!(
        app.state_cert_loads(),
        1,
        "one fetch for 1,000 concurrent lookups of a new certificate URL"
    );
    assert_eq!(app.audit_records().await.len(), 1000);
}

#[tokio::test]
async fn a_subscription_to_a_topic_in_another_region_is_confirmed_in_that_region() {
    let moto = Moto::shared();
    let eu = Fleet::in_region(&moto.endpoint, "eu-west-1").await;
    let signer = TestSigner::new();
    let topic_arn = topic(&eu, &unique("eutopic")).await;
    assert!(topic_arn.contains(":eu-west-1:"), "{topic_arn}");
    let (app, certs) = app(
        moto,
        &unique("snseu"),
        &[&topic_arn],
        "cert_dir = \"CERT_DIR\"\nconfirm = \"api\"",
    )
    .await;
    signer.pin_into(certs.path());
    let (status, answer) = app
        .post_sns(signer.confirmation("SubscriptionConfirmation", &topic_arn))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["subscription"], "confirmed");
}
