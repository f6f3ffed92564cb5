//! Many accounts and regions on one reflex: one balancer name in the local account and in two regions of
//! another account (reached through a role reflex assumes there, in moto) is three targets, and every alert
//! heals only the one it names.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::alertmanager::AM_TOKEN;
use crate::common::iam::{IamAdmin, member_policy};
use crate::common::process::reflex;
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};
use crate::iam::enforce_iam;
use crate::sns::{alarm, publish, subscribe, topic};

/// The other account's id, as its `[[accounts]]` entry's role names it.
pub(crate) const PROD: &str = "222233334444";

/// A third account.
const STAGING: &str = "333344445555";

/// moto's account: the local one.
const LOCAL: &str = "123456789012";

async fn is_replaced(fleet: &Fleet, id: &str) -> bool {
    matches!(
        fleet.state(id).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    )
}

/// The `[[accounts]]` entry of `PROD`, allowed in eu-west-1 and us-east-1.
pub(crate) fn prod_account(role: &str, extra: &str) -> String {
    format!(
        "\n[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::{PROD}:role/{role}\"\n\
         external_id = \"prod-external-id-0123\"\nregions = [\"eu-west-1\", \"us-east-1\"]\n{extra}\n"
    )
}

/// An alarm of `lb` in `account` and `region`, as CloudWatch publishes it (its `AlarmArn` says where).
fn alarm_in(lb: &str, account: &str, region: &str) -> String {
    let mut alarm: Value = serde_json::from_str(&alarm(lb, "ALARM")).unwrap();
    alarm["AWSAccountId"] = json!(account);
    alarm["AlarmArn"] = json!(format!(
        "arn:aws:cloudwatch:{region}:{account}:alarm:awselb-{lb}-High-Unhealthy-Hosts"
    ));
    alarm.to_string()
}

/// The result's refusal rule.
fn refused(body: &Value) -> Option<&str> {
    body["refused-rule"].as_str()
}

#[tokio::test]
async fn one_balancer_name_in_two_accounts_and_two_regions_is_four_targets_each_healed_alone() {
    let moto = Moto::start(&[]);
    let lb = unique("web");
    // (account name, account id, region, fleet, its instances, the stopped one)
    let mut places = Vec::new();
    for (name, account, region) in [
        ("local", LOCAL, "us-east-1"),
        ("local", LOCAL, "eu-west-1"),
        ("prod", PROD, "us-east-1"),
        ("prod", PROD, "eu-west-1"),
    ] {
        let fleet = if account == LOCAL {
            Fleet::in_region(&moto.endpoint, region).await
        } else {
            Fleet::in_account(&moto.endpoint, account, region).await
        };
        let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
        places.push((name, account, region, fleet, good, bad[0].clone()));
    }
    let local = &places[0].3;
    assert!(
        local
            .ec2
            .describe_instances()
            .instance_ids(&places[2].5)
            .send()
            .await
            .is_err(),
        "moto keeps the accounts apart"
    );
    let topic_arn = topic(local, &unique("alarms")).await;

    // A cooldown and an hourly budget of one: each target's own, or the four would not all act.
    let dir = tempfile::tempdir().unwrap();
    let remediation = "grace_period_secs = 0\ncooldown_secs = 600\nmax_acted_per_hour = 1\n";
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        remediation,
    );
    // The local account's topic is the central one: prod's entry lets its alarms name prod.
    let central = format!("sns_topic_arns = [\"{topic_arn}\"]\n");
    text.push_str(&prod_account("reflex-member", &central));
    for (name, _, region, ..) in &places {
        text.push_str(&format!(
            "\n[[targets]]\nload_balancer = \"{lb}\"\naccount = \"{name}\"\nregion = \"{region}\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\
         \n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n{ADMIN}"
    ));
    moto.start_recording().await;
    let app = TestApp::spawn_with_config(dir, &text).await;
    subscribe(local, &topic_arn, &format!("{}/sns", app.base)).await;

    // Fifty reads of prod's two targets (dry runs) share one set of assumed credentials.
    for n in 0..50 {
        let region = if n % 2 == 0 { "us-east-1" } else { "eu-west-1" };
        let (status, body) = app
            .remediate(
                json!({"load_balancer": lb, "account": "prod", "region": region, "dry_run": true}),
            )
            .await;
        assert_eq!(
            (status, body["account"].as_str()),
            (200, Some(PROD)),
            "{body}"
        );
    }

    // Four alarms, one per account and region, over the local account's topic: each replaces its own stopped
    // instance, and no other.
    for (done, (_, account, region, ..)) in places.iter().enumerate() {
        publish(local, &topic_arn, &alarm_in(&lb, account, region)).await;
        for (n, (name, account, region, fleet, good, bad)) in places.iter().enumerate() {
            assert_eq!(
                is_replaced(fleet, bad).await,
                n <= done,
                "after alarm {done}: {name} {account} {region}"
            );
            assert!(fleet.none_terminated(good).await);
        }
    }
    let records = app.audit_records().await;
    let mut acted: Vec<(String, String)> = records
        .iter()
        .filter(|record| record.acted == 1)
        .map(|record| {
            (
                record.account.clone().unwrap(),
                record.region.clone().unwrap(),
            )
        })
        .collect();
    acted.sort();
    // What each of the four runs answered (shown with --nocapture).
    for record in records.iter().filter(|record| record.acted == 1) {
        eprintln!("four targets: {}", record.detail["answer"]);
    }
    let mut expected: Vec<(String, String)> = places
        .iter()
        .map(|(_, account, region, ..)| (account.to_string(), region.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        acted, expected,
        "one run acted per target, each recorded with its place"
    );

    // A request that names no account matches all four: refused, nothing done to any.
    let (status, body) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("ambiguous-target")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    for (name, account, region, ..) in &places {
        assert!(
            detail.contains(&format!("{account}/{region} ({name})")),
            "{detail}"
        );
    }

    // Alertmanager's account and region labels name a place (by account name or id).
    let webhook = json!({
        "version": "4", "groupKey": "{}:{alertname=\"down\"}", "status": "firing", "receiver": "reflex",
        "alerts": [{"status": "firing", "labels": {"alertname": "down", "load_balancer": lb,
                    "account": LOCAL, "region": "eu-west-1"}, "annotations": {"summary": "down"}}],
    });
    let (status, body) = app
        .post("/alertmanager", Some(AM_TOKEN), webhook.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["results"][0];
    assert_eq!(
        (result["account"].as_str(), result["region"].as_str()),
        (Some(LOCAL), Some("eu-west-1"))
    );
    assert_eq!(
        refused(result),
        Some("cooldown"),
        "its own cooldown: {result}"
    );

    // A pause of prod's us-east-1 target through the API holds that target only.
    let (status, body) = app
        .post(
            "/admin/pause",
            Some(ADMIN_TOKEN),
            json!({"target": lb, "account": "prod", "region": "us-east-1", "reason": "deploy"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let manual = async |account: &str, region: &str| {
        let (status, body) = app
            .remediate(json!({"load_balancer": lb, "account": account, "region": region}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["account"].as_str(), body["region"].as_str()),
            (
                Some(if account == "prod" { PROD } else { LOCAL }),
                Some(region)
            )
        );
        refused(&body).map(str::to_owned)
    };
    assert_eq!(manual("prod", "us-east-1").await.as_deref(), Some("paused"));
    // A place without a target names nothing: refused, not read as "everything".
    let (status, body) = app
        .post(
            "/admin/pause",
            Some(ADMIN_TOKEN),
            json!({"account": "prod", "reason": "deploy"}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid-request")),
        "{body}"
    );
    assert_eq!(
        manual("prod", "eu-west-1").await.as_deref(),
        Some("cooldown")
    );
    assert_eq!(
        manual("local", "us-east-1").await.as_deref(),
        Some("cooldown")
    );

    // The command line names the place too: a pause, and a run.
    let path = app.config_path.to_str().unwrap().to_owned();
    let output = reflex([
        "pause",
        "--config",
        &path,
        "--target",
        &lb,
        "--account",
        PROD,
        "--region",
        "eu-west-1",
        "--reason",
        "deploy",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = reflex([
        "remediate",
        "--config",
        &path,
        "--load-balancer",
        &lb,
        "--account",
        "prod",
        "--region",
        "eu-west-1",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (summary["account"].as_str(), summary["region"].as_str()),
        (Some(PROD), Some("eu-west-1"))
    );
    assert_eq!(refused(&summary), Some("paused"));
    assert_eq!(
        manual("local", "eu-west-1").await.as_deref(),
        Some("cooldown")
    );
    let output = reflex([
        "pause",
        "--config",
        &path,
        "--target",
        &lb,
        "--reason",
        "which one?",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("name the account and region"));

    // One AssumeRole for prod at start-up, however many runs and regions followed; the command line's runs
    // are processes of their own, each with its own.
    let actions = moto.recorded_actions().await;
    eprintln!(
        "moto's request log: AssumeRole {:?}",
        actions.get("AssumeRole")
    );
    assert_eq!(actions.get("AssumeRole").copied(), Some(2), "{actions:?}");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("reflex_assume_role_total{account=\"prod\",outcome=\"assumed\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_target_another_account_cannot_see_is_refused_at_start_naming_its_place() {
    let moto = Moto::shared();
    let lb = unique("nowhere");
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        PERMISSIVE,
    );
    text.push_str(&prod_account("reflex-member", ""));
    text.push_str(&format!(
        "\n[[targets]]\nload_balancer = \"{lb}\"\naccount = \"prod\"\nregion = \"eu-west-1\"\n"
    ));
    let config = reflex::config::parse(&text, std::iter::empty()).unwrap();
    let err = reflex::App::build(config).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains(&lb)
            && message.contains(PROD)
            && message.contains("eu-west-1")
            && message.contains("\"prod\""),
        "{message}"
    );
}

/// The credentials `fleet`'s clients use.
async fn credentials_of(fleet: &Fleet) -> aws_credential_types::Credentials {
    use aws_credential_types::provider::ProvideCredentials as _;
    fleet
        .sdk
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap()
}

/// The member template's trust policy for a role in moto's own account (where moto checks trust): reflex's
/// user, with `external_id`.
fn trust(external_id: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": format!("arn:aws:iam::{LOCAL}:user/reflex")},
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]})
}

#[tokio::test]
async fn a_role_whose_external_id_no_longer_matches_is_denied_alone_and_the_others_keep_working() {
    let moto = Moto::start(&[]);
    let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let lb = unique("web");
    // prod's role is in moto's own account, where moto checks a role's trust policy; staging's in another.
    let prod = Fleet::new(&moto.endpoint).await;
    let (_, prod_bad) = prod.balancer_with(&lb, 2, 1).await;
    let local = IamAdmin::new(&moto.endpoint);
    local
        .role_trusting(
            "reflex-member",
            &trust("prod-external-id-0123"),
            &member_policy(),
        )
        .await;
    let staging = Fleet::in_account(&moto.endpoint, STAGING, "us-east-1").await;
    let (_, staging_bad) = staging.balancer_with(&lb, 2, 1).await;
    let admin = IamAdmin::with(&moto.endpoint, credentials_of(&staging).await);
    admin
        .role_with_only("reflex-member", &member_policy())
        .await;
    admin.role_with_only("test-builder", &everything).await;
    let assume = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]});
    let (reflex_key, reflex_secret) = local.user_with_only("reflex", &assume).await;
    let (admin_key, admin_secret) = local.user_with_only("admin", &everything).await;
    enforce_iam(&moto.endpoint).await;
    let prod = Fleet::with_credentials(&moto.endpoint, &admin_key, &admin_secret).await;

    // Credentials are assumed again once they are a second old, so that the change below is seen at once.
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        PERMISSIVE,
    );
    text = crate::common::with_credentials(&text, &reflex_key, &reflex_secret);
    for (name, account) in [("prod", LOCAL), ("staging", STAGING)] {
        text.push_str(&format!(
            "\n[[accounts]]\nname = \"{name}\"\nrole_arn = \"arn:aws:iam::{account}:role/reflex-member\"\n\
             external_id = \"{name}-external-id-0123\"\nsession_duration_secs = 900\nrefresh_before_expiry_secs = 899\n\
             \n[[targets]]\nload_balancer = \"{lb}\"\naccount = \"{name}\"\n"
        ));
    }
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "account": "staging"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        is_replaced(&staging, &staging_bad[0]).await,
        "the member role's policy is enough"
    );

    // prod's role now asks for another external id than reflex sends.
    IamAdmin::with(
        &moto.endpoint,
        aws_credential_types::Credentials::new(&admin_key, &admin_secret, None, None, "test"),
    )
    .update_trust("reflex-member", &trust("rotated-external-id-4567"))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "account": "prod"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("aws-denied")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("sts:AssumeRole") && detail.contains("\"prod\""),
        "{detail}"
    );
    assert!(!is_replaced(&prod, &prod_bad[0]).await);
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "account": "staging", "dry_run": true}))
        .await;
    assert_eq!(status, 200, "the other account keeps working: {body}");

    let records = app.audit_records().await;
    let denied = records
        .iter()
        .find(|record| record.error.as_deref() == Some("aws-denied"))
        .expect("the denied run is recorded");
    assert_eq!(denied.target.as_deref(), Some(lb.as_str()));
    assert!(
        denied.detail.to_string().contains("prod"),
        "{:?}",
        denied.detail
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("reflex_assume_role_total{account=\"prod\",outcome=\"denied\"} 1"),
        "{metrics}"
    );
    // staging's credentials were assumed again once they were inside their refresh margin, not reused.
    let assumed = metrics
        .lines()
        .find(|line| {
            line.starts_with("reflex_assume_role_total{account=\"staging\",outcome=\"assumed\"}")
        })
        .and_then(|line| line.rsplit(' ').next()?.parse::<u32>().ok())
        .unwrap();
    assert!(assumed >= 2, "{metrics}");
    app.stop().await;
}
