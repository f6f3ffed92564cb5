//! The `ecs-redeploy` and `rds-reboot` action kinds against moto: a balancer whose instances fail is healed by
//! a new deployment of its ECS service, or by a reboot of its database, each followed to its end and checked; a
//! service rolling out or deployed moments ago, and a database that is not available, are left alone and the
//! step fails with the reason; a failover asked of a database without a standby is refused at start-up. moto
//! here reports a service's deployment running two tasks (its `MOTO_ECS_SERVICE_RUNNING`): one desiring two has
//! COMPLETED, one desiring three is IN_PROGRESS.

use std::sync::OnceLock;

use aws_sdk_ecs::types::{Service, Tag as EcsTag};
use serde_json::{Value, json};

use crate::common::process::reflex;
use crate::common::{Fleet, Moto, TestApp, config_text, unique};

/// No grace, no cooldown, quick checks, room to act.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n\
                     max_removed_fraction_per_hour = 1.0\nmax_unhealthy_fraction = 0.9\n";

/// The moto of these tests, whose ECS services run two tasks.
fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start(&["MOTO_ECS_SERVICE_RUNNING=2"]))
}

/// reflex serving `lb` with `entry` (an `[[actions]]` entry named `heal`) as its only step.
async fn app(lb: &str, entry: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&moto().endpoint, &dir.path().join("audit.db"), &[], QUICK)
        + &format!(
            "\n[[targets]]\nload_balancer = \"{lb}\"\nladder = [\"heal\"]\n\n[[actions]]\nname = \"heal\"\n{entry}"
        );
    TestApp::spawn_with_config(dir, &text).await
}

/// A cluster `name` with a service `name` desiring `desired` tasks, tagged `reflex:managed=true`.
pub(crate) async fn service(fleet: &Fleet, name: &str, desired: i32) -> aws_sdk_ecs::Client {
    services(fleet, name, &[name], desired).await
}

/// A cluster `cluster` with a service of each of `names` desiring `desired` tasks, each tagged
/// `reflex:managed=true`.
pub(crate) async fn services(
    fleet: &Fleet,
    cluster: &str,
    names: &[&str],
    desired: i32,
) -> aws_sdk_ecs::Client {
    let ecs = aws_sdk_ecs::Client::new(&fleet.sdk);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("CreateCluster");
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("app")
        .image("app:1")
        .memory(128)
        .build();
    ecs.register_task_definition()
        .family(cluster)
        .container_definitions(container)
        .send()
        .await
        .expect("RegisterTaskDefinition");
    for name in names {
        ecs.create_service()
            .cluster(cluster)
            .service_name(*name)
            .task_definition(cluster)
            .desired_count(desired)
            .tags(
                EcsTag::builder()
                    .key("reflex:managed")
                    .value("true")
                    .build(),
            )
            .send()
            .await
            .expect("CreateService");
    }
    ecs
}

/// The service as moto holds it, with its tags.
pub(crate) async fn read(ecs: &aws_sdk_ecs::Client, name: &str) -> Service {
    ecs.describe_services()
        .cluster(name)
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("DescribeServices")
        .services()[0]
        .clone()
}

fn deployment_id(service: &Service) -> String {
    service.deployments()[0].id().unwrap().to_owned()
}

fn tag<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(|tag| tag.value())
}

/// The act's error in a run's answer.
fn error(run: &Value) -> &str {
    run["actions"][0]["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_service_is_redeployed_followed_to_completion_and_its_instances_checked() {
    let fleet = Fleet::new(&moto().endpoint).await;
    let lb = unique("ecs-fix");
    let (_, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let ecs = service(&fleet, &lb, 2).await;
    let before = deployment_id(&read(&ecs, &lb).await);
    // Its last deployment is two seconds old: past a recent_change_secs of one.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let entry = format!(
        "kind = \"ecs-redeploy\"\ncluster = \"{lb}\"\nservices = {{ \"{lb}\" = \"{lb}\" }}\n\
         recent_change_secs = 1\nverify_secs = 1\n"
    );
    let app = app(&lb, &entry).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["audit-id"].as_str().unwrap().to_owned();
    assert_eq!(run["redeployed-resources"], json!([lb]), "{run}");
    let after = read(&ecs, &lb).await;
    let deployment = deployment_id(&after);
    assert_ne!(deployment, before, "a new deployment");
    assert_eq!(
        run["actions"][0]["handle"],
        format!("{lb} {lb} {deployment}"),
        "{run}"
    );
    assert!(tag(&after, "reflex:redeploy").is_some_and(|value| value.starts_with(&run_id)));

    // The tasks came back: the check follows the deployment to COMPLETED, then finds the instance InService.
    fleet.start(&bad).await;
    let check = app.check_of(&run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(
        check.detail["polled"][0]["state"],
        "COMPLETED, 2 of 2 running"
    );
}

#[tokio::test]
async fn a_service_rolling_out_or_deployed_moments_ago_is_not_redeployed_and_the_step_escalates() {
    let fleet = Fleet::new(&moto().endpoint).await;
    for (desired, recent, says) in [(3, 1, "change-in-progress"), (2, 900, "recent-change")] {
        let lb = unique("ecs-held");
        fleet.balancer_with(&lb, 2, 1).await;
        let ecs = service(&fleet, &lb, desired).await;
        let before = deployment_id(&read(&ecs, &lb).await);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let entry = format!(
            "kind = \"ecs-redeploy\"\ncluster = \"{lb}\"\nservice = \"{lb}\"\nrecent_change_secs = {recent}\n\
             verify_secs = 1\n"
        );
        let app = app(&lb, &entry).await;
        let (_, run) = app.remediate(json!({"load_balancer": lb})).await;
        assert!(error(&run).contains(says), "{run}");
        let after = read(&ecs, &lb).await;
        assert_eq!(deployment_id(&after), before, "no deployment started");
        assert_eq!(tag(&after, "reflex:redeploy"), None);
        // The instance is still down at the step's check: the ladder has no next step, so it escalates.
        let check = app.check_of(run["audit-id"].as_str().unwrap()).await;
        assert_eq!(
            check.outcome.as_str(),
            "not-recovered",
            "{:?}",
            check.detail
        );
        assert_eq!(
            check.detail["breaker"]["tripped"], "escalated",
            "{:?}",
            check.detail
        );
    }
}

/// A DB instance `name`, tagged `reflex:managed=true`.
pub(crate) async fn database(fleet: &Fleet, name: &str) -> aws_sdk_rds::Client {
    let rds = aws_sdk_rds::Client::new(&fleet.sdk);
    rds.create_db_instance()
        .db_instance_identifier(name)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password-0123456789")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("reflex:managed")
                .value("true")
                .build(),
        )
        .send()
        .await
        .expect("CreateDBInstance");
    rds
}

async fn db_tag(rds: &aws_sdk_rds::Client, name: &str) -> Option<String> {
    let read = rds
        .describe_db_instances()
        .db_instance_identifier(name)
        .send()
        .await
        .expect("DescribeDBInstances");
    read.db_instances()[0]
        .tag_list()
        .iter()
        .find(|tag| tag.key() == Some("reflex:reboot"))
        .and_then(|tag| tag.value().map(str::to_owned))
}

#[tokio::test]
async fn an_available_database_is_rebooted_and_a_stopped_one_is_left_alone() {
    let fleet = Fleet::new(&moto().endpoint).await;
    let lb = unique("rds-fix");
    let (_, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let rds = database(&fleet, &lb).await;
    let entry = format!("kind = \"rds-reboot\"\ndb_instance = \"{lb}\"\nverify_secs = 1\n");
    let app = app(&lb, &entry).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["audit-id"].as_str().unwrap().to_owned();
    assert_eq!(run["rebooted-databases"], json!([lb]), "{run}");
    assert_eq!(run["actions"][0]["handle"], lb.as_str(), "{run}");
    assert_eq!(db_tag(&rds, &lb).await.as_deref(), Some(run_id.as_str()));
    fleet.start(&bad).await;
    let check = app.check_of(&run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.detail["polled"][0]["state"], "available");

    // Stopped, it is not rebooted: the act fails, and its tag still names the first run.
    rds.stop_db_instance()
        .db_instance_identifier(&lb)
        .send()
        .await
        .expect("StopDBInstance");
    fleet.stop(&bad).await;
    let (_, again) = app.remediate(json!({"load_balancer": lb})).await;
    assert!(
        error(&again).contains("not-available") && error(&again).contains("stopped"),
        "{again}"
    );
    assert_eq!(db_tag(&rds, &lb).await.as_deref(), Some(run_id.as_str()));
}

/// `reflex check-config --aws` for `lb` healed by an `rds-reboot` entry failing over `db`: its output, and
/// whether it passed.
fn check_failover(lb: &str, db: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&moto().endpoint, &dir.path().join("audit.db"), &[], QUICK)
        + &format!(
            "\n[[targets]]\nload_balancer = \"{lb}\"\nladder = [\"heal\"]\n\n[[actions]]\nname = \"heal\"\n\
             kind = \"rds-reboot\"\ndb_instance = \"{db}\"\nforce_failover = true\n"
        );
    let path = dir.path().join("reflex.toml");
    std::fs::write(&path, text).unwrap();
    let out = reflex(["check-config", "--aws", "--config", path.to_str().unwrap()]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test]
async fn a_failover_of_a_database_without_a_standby_is_refused_at_start_up() {
    let fleet = Fleet::new(&moto().endpoint).await;
    let lb = unique("rds-failover");
    fleet.balancer_with(&lb, 2, 0).await;
    let single = unique("single-db");
    let rds = database(&fleet, &single).await;
    let standby = unique("standby-db");
    rds.create_db_instance()
        .db_instance_identifier(&standby)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .multi_az(true)
        .master_username("admin")
        .master_user_password("password-0123456789")
        .send()
        .await
        .expect("CreateDBInstance");

    let (passed, said) = check_failover(&lb, &single);
    assert!(!passed, "{said}");
    assert!(
        said.contains("step \"heal\" cannot serve it")
            && said.contains("not-multi-az")
            && said.contains("no standby"),
        "{said}"
    );
    let (passed, said) = check_failover(&lb, &standby);
    assert!(passed, "{said}");
}
