//! Rules whose alarms name no EC2 instance (`instances = "none"`), against moto: a database's alarm reboots the
//! database its `DBInstanceIdentifier` names, an Auto Scaling group's alarm adds capacity to the group its
//! `AutoScalingGroupName` names, and an ECS service's alarm redeploys the service its `ServiceName` names
//! (`service_from`); each run is checked by its alarm being OK again. An alarm that lacks the name its rule
//! reads acts on nothing, and says why.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
use serde_json::{Value, json};

use crate::asg_capacity::broken_group;
use crate::common::sns::{captured_delivery, topic};
use crate::common::{Fleet, Moto, TestApp, config_text, unique};
use crate::ecs_rds::{database, service};
use crate::rules_run::{alarm, set_alarm};

/// The three rules on no instance, and their entries; `cluster` is the ECS cluster of the services.
fn rules(cluster: &str) -> String {
    format!(
        r#"
[[actions]]
name = "reboot-db"
kind = "rds-reboot"
db_instance_from = "DBInstanceIdentifier"
verify_secs = 1

[[actions]]
name = "add-capacity"
kind = "asg-set-capacity"
add = 1
max_desired = 10
verify_secs = 1

[[actions]]
name = "redeploy"
kind = "ecs-redeploy"
cluster = "{cluster}"
service_from = "ServiceName"
recent_change_secs = 1
verify_secs = 1

[[rules]]
name = "db-down"
match = {{ namespace = "AWS/RDS" }}
instances = "none"
ladder = ["reboot-db"]
verify = "alarm-ok"
verify_within_secs = 60

[[rules]]
name = "group-short"
match = {{ namespace = "AWS/EC2", metric = "GroupInServiceInstances" }}
instances = "none"
ladder = ["add-capacity"]
verify = "alarm-ok"
verify_within_secs = 60

[[rules]]
name = "service-hung"
match = {{ namespace = "AWS/ECS" }}
instances = "none"
ladder = ["redeploy"]
verify = "alarm-ok"
verify_within_secs = 60
"#
    )
}

/// An alarm `name` on `namespace`/`metric` with `dimensions`, made in moto and set to ALARM: the message
/// CloudWatch publishes for it.
async fn alarm_in_moto(
    fleet: &Fleet,
    name: &str,
    (namespace, metric): (&str, &str),
    dimensions: &[(&str, &str)],
) -> String {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&fleet.sdk);
    let mut put = cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace(namespace)
        .metric_name(metric)
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::LessThanThreshold);
    for (key, value) in dimensions {
        put = put.dimensions(Dimension::builder().name(*key).value(*value).build());
    }
    put.send().await.expect("PutMetricAlarm");
    set_alarm(fleet, name, StateValue::Alarm).await;
    let dimensions: Vec<Value> = dimensions
        .iter()
        .map(|(key, value)| json!({"name": key, "value": value}))
        .collect();
    alarm(name, namespace, metric, json!(dimensions))
}

/// reflex serving the rules, taking SNS deliveries of its topic, on `moto`: the app and the topic.
async fn app(moto: &Moto, fleet: &Fleet, cluster: &str) -> (TestApp, String) {
    app_with(moto, fleet, &rules(cluster)).await
}

/// reflex serving `rules`, taking SNS deliveries of its topic, on `moto`: the app and the topic.
async fn app_with(moto: &Moto, fleet: &Fleet, rules: &str) -> (TestApp, String) {
    let topic_arn = topic(fleet, &unique("alarms")).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 1\n",
    ) + &format!(
        "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n"
    ) + rules;
    (TestApp::spawn_with_config(dir, &text).await, topic_arn)
}

/// The form of each request of `action` moto recorded, as its fields.
async fn forms_of(moto: &Moto, action: &str) -> Vec<Vec<(String, String)>> {
    moto.recorded_forms()
        .await
        .into_iter()
        .filter(|form| form.iter().any(|(k, v)| k == "Action" && v == action))
        .collect()
}

/// Whether `form` holds `key` = `value`.
fn has(form: &[(String, String)], key: &str, value: &str) -> bool {
    form.iter().any(|(k, v)| k == key && v == value)
}

#[tokio::test]
async fn alarms_on_a_database_a_group_and_a_service_act_on_what_they_name_and_are_checked_by_the_alarm()
 {
    let moto = Moto::start(&["MOTO_ECS_SERVICE_RUNNING=2"]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let db = unique("orders-db");
    database(&fleet, &db).await;
    let group = unique("workers");
    broken_group(&fleet, &group).await;
    let cluster = unique("api");
    service(&fleet, &cluster, 2).await;
    // The service's deployment is more than a second old: past recent_change_secs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (app, topic_arn) = app(&moto, &fleet, &cluster).await;
    moto.start_recording().await;
    let alarms = [
        (
            format!("{db}-connections"),
            ("AWS/RDS", "DatabaseConnections"),
            vec![("DBInstanceIdentifier", db.as_str())],
            ("db-down", "rebooted-databases"),
        ),
        (
            format!("{group}-in-service"),
            ("AWS/EC2", "GroupInServiceInstances"),
            vec![("AutoScalingGroupName", group.as_str())],
            ("group-short", "scaled-resources"),
        ),
        (
            format!("{cluster}-running"),
            ("AWS/ECS", "RunningTaskCount"),
            vec![
                ("ClusterName", cluster.as_str()),
                ("ServiceName", cluster.as_str()),
            ],
            ("service-hung", "redeployed-resources"),
        ),
    ];
    let mut runs = Vec::new();
    for (name, metric, dimensions, (rule, list)) in &alarms {
        let message = alarm_in_moto(&fleet, name, *metric, dimensions).await;
        let delivery = captured_delivery(&fleet, &topic_arn, &message).await;
        let (status, run) = app.post_sns(delivery).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["rule"], *rule, "{run}");
        assert_eq!(run[*list], json!([rule]), "{run}");
        assert_eq!(run["errors"], json!([]), "{run}");
        runs.push(run["audit-id"].as_str().unwrap().to_owned());
    }

    // Each call went to what its alarm named.
    let reboots = forms_of(&moto, "RebootDBInstance").await;
    assert_eq!(reboots.len(), 1, "{reboots:?}");
    assert!(has(&reboots[0], "DBInstanceIdentifier", &db), "{reboots:?}");
    let raises = forms_of(&moto, "SetDesiredCapacity").await;
    assert_eq!(raises.len(), 1, "{raises:?}");
    assert!(
        has(&raises[0], "AutoScalingGroupName", &group),
        "{raises:?}"
    );
    assert!(has(&raises[0], "DesiredCapacity", "4"), "{raises:?}");
    let redeploys = moto
        .recorded_json("AmazonEC2ContainerServiceV20141113.UpdateService")
        .await;
    assert_eq!(redeploys.len(), 1, "{redeploys:?}");
    assert_eq!(redeploys[0]["service"], cluster.as_str(), "{redeploys:?}");
    assert_eq!(redeploys[0]["forceNewDeployment"], true, "{redeploys:?}");

    // Each alarm is OK again after its action: each run's check says recovered, by the alarm.
    for (name, ..) in &alarms {
        set_alarm(&fleet, name, StateValue::Ok).await;
    }
    for (run, (name, ..)) in runs.iter().zip(&alarms) {
        let check = app.check_of(run).await;
        assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
        assert_eq!(check.detail["alarm"]["watch"]["name"], name.as_str());
        assert_eq!(check.detail["alarm"]["state"]["value"], "OK");
    }
}

#[tokio::test]
async fn an_alarm_without_the_name_its_rule_reads_acts_on_nothing_and_says_why() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let (app, topic_arn) = app(&moto, &fleet, "unused").await;
    moto.start_recording().await;
    let message = alarm(
        &unique("cluster-cpu"),
        "AWS/RDS",
        "CPUUtilization",
        json!([{"name": "DBClusterIdentifier", "value": "orders"}]),
    );
    let delivery = captured_delivery(&fleet, &topic_arn, &message).await;
    let (status, run) = app.post_sns(delivery).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["rule"], "db-down", "{run}");
    assert_eq!(run["rebooted-databases"], json!([]), "{run}");
    assert!(forms_of(&moto, "RebootDBInstance").await.is_empty());
    let record = app
        .audit
        .get(run["audit-id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let why = record.detail["plan"]["refused_arguments"].to_string();
    assert!(
        why.contains("names no DBInstanceIdentifier"),
        "{:?}",
        record.detail
    );
}

/// An approver's token.
const APPROVER: &str = "resources-approver-token-0123456789";

#[tokio::test]
async fn alarms_on_two_databases_are_held_apart_and_each_approval_reboots_its_own() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let dbs = [unique("ledger-db"), unique("orders-db")];
    for db in &dbs {
        database(&fleet, db).await;
    }
    let rules = rules("unused").replace(
        "name = \"db-down\"\n",
        "name = \"db-down\"\nmode = \"approve\"\n",
    ) + &format!("\n[approvals]\ntokens = [\"{APPROVER}\"]\n");
    let (app, topic_arn) = app_with(&moto, &fleet, &rules).await;
    moto.start_recording().await;
    let mut held = Vec::new();
    for db in &dbs {
        let name = format!("{db}-connections");
        let dimensions = [("DBInstanceIdentifier", db.as_str())];
        let metric = ("AWS/RDS", "DatabaseConnections");
        let message = alarm_in_moto(&fleet, &name, metric, &dimensions).await;
        let delivery = captured_delivery(&fleet, &topic_arn, &message).await;
        let (status, run) = app.post_sns(delivery).await;
        assert_eq!(status, 200, "{run}");
        let id = run["approval"]["id"].as_str().expect("held for approval");
        held.push(id.to_owned());
    }
    assert_ne!(held[0], held[1], "another database is another decision");
    assert!(forms_of(&moto, "RebootDBInstance").await.is_empty());

    // The second approval reboots the second alarm's database, and only it.
    let path = format!("/admin/approvals/{}/approve", held[1]);
    let (status, voted) = app.post(&path, Some(APPROVER), "{}").await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(
        voted["summary"]["rebooted-databases"],
        json!(["db-down"]),
        "{voted}"
    );
    let reboots = forms_of(&moto, "RebootDBInstance").await;
    assert_eq!(reboots.len(), 1, "{reboots:?}");
    assert!(
        has(&reboots[0], "DBInstanceIdentifier", &dbs[1]),
        "{reboots:?}"
    );
}
