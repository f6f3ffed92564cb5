//! Many accounts and regions on one reflex: one balancer name in the local account and in two regions of
//! another account (reached through a role reflex assumes there, in moto) is three targets, and every alert
//! heals only the one it names.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::alertmanager::AM_TOKEN;
use crate::common::iam::{IamAdmin, member_policy};
use crate::common::process::reflex;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};
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

#[tokio::test]
async fn one_balancer_name_in_two_accounts_and_two_regions_is_three_targets_each_healed_alone() {
    let moto = Moto::start(&[]);
    let local = Fleet::new(&moto.endpoint).await;
    let prod_eu = Fleet::in_account(&moto.endpoint, PROD, "eu-west-1").await;
    let prod_us = Fleet::in_account(&moto.endpoint, PROD, "us-east-1").await;
    let lb = unique("web");
    let (local_good, local_bad) = local.balancer_with(&lb, 2, 1).await;
    let (eu_good, eu_bad) = prod_eu.balancer_with(&lb, 2, 1).await;
    let (us_good, us_bad) = prod_us.balancer_with(&lb, 2, 1).await;
    assert!(
        local
            .ec2
            .describe_instances()
            .instance_ids(&eu_bad[0])
            .send()
            .await
            .is_err(),
        "moto keeps the accounts apart"
    );
    let topic_arn = topic(&local, &unique("alarms")).await;

    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    );
    text.push_str(&prod_account("reflex-member", ""));
    text.push_str(&format!(
        "\n[[targets]]\nload_balancer = \"{lb}\"\naccount = \"prod\"\nregion = \"eu-west-1\"\n\
         \n[[targets]]\nload_balancer = \"{lb}\"\naccount = \"prod\"\n\
         \n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\
         \n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n"
    ));
    moto.start_recording().await;
    let app = TestApp::spawn_with_config(dir, &text).await;
    subscribe(&local, &topic_arn, &format!("{}/sns", app.base)).await;

    // A CloudWatch alarm of prod's eu-west-1 balancer, over the local account's topic: that target only.
    let mut prod_alarm: Value = serde_json::from_str(&alarm(&lb, "ALARM")).unwrap();
    prod_alarm["AWSAccountId"] = json!(PROD);
    prod_alarm["AlarmArn"] = json!(format!(
        "arn:aws:cloudwatch:eu-west-1:{PROD}:alarm:awselb-{lb}-High-Unhealthy-Hosts"
    ));
    publish(&local, &topic_arn, &prod_alarm.to_string()).await;
    assert!(is_replaced(&prod_eu, &eu_bad[0]).await);
    assert!(!is_replaced(&prod_us, &us_bad[0]).await);
    assert!(!is_replaced(&local, &local_bad[0]).await);

    // A request that names no account matches all three: refused, nothing done to any.
    let (status, body) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("ambiguous-target")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(LOCAL)
            && detail.contains(&format!("{PROD}/eu-west-1"))
            && detail.contains(&format!("{PROD}/us-east-1")),
        "the candidates are named: {detail}"
    );
    assert!(!is_replaced(&prod_us, &us_bad[0]).await && !is_replaced(&local, &local_bad[0]).await);

    // Alertmanager's account and region labels pick prod's us-east-1 balancer.
    let webhook = json!({
        "version": "4", "groupKey": "{}:{alertname=\"down\"}", "status": "firing", "receiver": "reflex",
        "alerts": [{"status": "firing", "labels": {"alertname": "down", "load_balancer": lb,
                    "account": "prod", "region": "us-east-1"}, "annotations": {"summary": "down"}}],
    });
    let (status, body) = app
        .post("/alertmanager", Some(AM_TOKEN), webhook.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["account"], PROD, "{body}");
    assert_eq!(body["results"][0]["region"], "us-east-1");
    assert!(is_replaced(&prod_us, &us_bad[0]).await);
    assert!(!is_replaced(&local, &local_bad[0]).await);

    // A manual request names the local account by its name.
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "account": "local", "region": "us-east-1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["account"].as_str(), body["region"].as_str()),
        (Some(LOCAL), Some("us-east-1"))
    );
    assert!(is_replaced(&local, &local_bad[0]).await);
    for (fleet, good) in [
        (&local, &local_good),
        (&prod_eu, &eu_good),
        (&prod_us, &us_good),
    ] {
        assert!(fleet.none_terminated(good).await);
    }

    // Every record names the target's place.
    let records = app.audit_records().await;
    let mut places: Vec<(String, String)> = records
        .iter()
        .filter(|record| record.acted == 1 && record.target.is_some())
        .map(|record| {
            let place = record.account.clone().zip(record.region.clone());
            place.unwrap_or_else(|| panic!("a record of a run names its place: {record:#?}"))
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            (LOCAL.to_owned(), "us-east-1".to_owned()),
            (PROD.to_owned(), "eu-west-1".to_owned()),
            (PROD.to_owned(), "us-east-1".to_owned()),
        ]
    );

    // The command line names the place too (a dry run: nothing more is written to AWS).
    let path = app.config_path.to_str().unwrap().to_owned();
    let output = reflex([
        "remediate",
        "--config",
        &path,
        "--load-balancer",
        &lb,
        "--account",
        PROD,
        "--region",
        "eu-west-1",
        "--dry-run",
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

    // One AssumeRole for the account, at start-up, however many runs and regions followed (the command line
    // is a process of its own, with its own).
    let actions = moto.recorded_actions().await;
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

/// `sts:AssumeRole` of the member role in `account`, and nothing else.
fn assume(account: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Resource": format!("arn:aws:iam::{account}:role/reflex-member")}]})
}

#[tokio::test]
async fn an_account_whose_role_can_no_longer_be_assumed_is_denied_alone_and_the_others_keep_working()
 {
    let moto = Moto::start(&[]);
    let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let lb = unique("web");
    let mut fleets = Vec::new();
    for account in [PROD, STAGING] {
        let fleet = Fleet::in_account(&moto.endpoint, account, "us-east-1").await;
        let (_, bad) = fleet.balancer_with(&lb, 2, 1).await;
        // In each account: the role of the member template, and the test's own role to look on with.
        let admin = IamAdmin::with(&moto.endpoint, credentials_of(&fleet).await);
        admin
            .role_with_only("reflex-member", &member_policy())
            .await;
        admin.role_with_only("test-builder", &everything).await;
        fleets.push((fleet, bad));
    }
    let local = IamAdmin::new(&moto.endpoint);
    let (reflex_key, reflex_secret) = local.user_with_only("reflex", &assume(STAGING)).await;
    local
        .put_user_policy("reflex", "assume-prod", &assume(PROD))
        .await;
    let (admin_key, admin_secret) = local.user_with_only("admin", &everything).await;
    enforce_iam(&moto.endpoint).await;

    // Credentials are assumed again once they are a second old, so that the revocation below is seen at once.
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        PERMISSIVE,
    );
    text = crate::common::with_credentials(&text, &reflex_key, &reflex_secret);
    for (name, account) in [("prod", PROD), ("staging", STAGING)] {
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
        is_replaced(&fleets[1].0, &fleets[1].1[0]).await,
        "the member role's policy is enough"
    );

    // reflex may no longer assume prod's role.
    IamAdmin::with(
        &moto.endpoint,
        aws_credential_types::Credentials::new(&admin_key, &admin_secret, None, None, "test"),
    )
    .delete_user_policy("reflex", "assume-prod")
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
    assert!(!is_replaced(&fleets[0].0, &fleets[0].1[0]).await);
    let (status, body) = app
        .remediate(json!({"load_balancer": lb, "account": "staging", "dry_run": true}))
        .await;
    assert_eq!(status, 200, "the other account keeps working: {body}");

    let records = app.audit_records().await;
    let denied = records
        .iter()
        .find(|record| record.error.as_deref() == Some("aws-denied"))
        .expect("the denied run is recorded");
    assert_eq!(denied.account.as_deref(), Some(PROD));
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
    app.stop().await;
}
