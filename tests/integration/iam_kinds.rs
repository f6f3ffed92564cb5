//! Least privilege for the action kinds that act on a whole target through other AWS services: the policy
//! `reflex iam-policy` prints for targets whose ladders add Auto Scaling capacity, redeploy an ECS service and
//! reboot a database is enough for each to act, under a moto that enforces IAM, and grants no other write.

use serde_json::json;

use crate::asg_capacity::broken_group;
use crate::common::iam::IamAdmin;
use crate::common::{Fleet, Moto, TestApp, config_text, unique, with_credentials};
use crate::ecs_rds::{database, service};
use crate::iam::{as_moto_enforces, enforce_iam, granted, printed_policy};

/// Three targets, each healed by one kind's entry; quick, with room to act.
fn config(moto: &Moto, db: &std::path::Path, names: &[String; 3]) -> String {
    let [asg, ecs, rds] = names;
    config_text(
        &moto.endpoint,
        db,
        &[],
        "grace_period_secs = 0\ncooldown_secs = 0\nmax_unhealthy_fraction = 0.9\n\
         max_removed_fraction_per_hour = 1.0\n",
    ) + &format!(
        r#"
[[targets]]
load_balancer = "{asg}"
ladder = ["add-capacity"]

[[targets]]
load_balancer = "{ecs}"
ladder = ["redeploy"]

[[targets]]
load_balancer = "{rds}"
ladder = ["reboot-db"]

[[actions]]
name = "add-capacity"
kind = "asg-set-capacity"
max_desired = 8

[[actions]]
name = "redeploy"
kind = "ecs-redeploy"
cluster = "{ecs}"
service = "{ecs}"
recent_change_secs = 1

[[actions]]
name = "reboot-db"
kind = "rds-reboot"
db_instance = "{rds}"
"#
    )
}

#[tokio::test]
async fn the_printed_policy_is_enough_to_add_capacity_redeploy_and_reboot_a_database() {
    let moto = Moto::start(&[]);
    let admin = Fleet::new(&moto.endpoint).await;
    let names = [unique("iam-asg"), unique("iam-ecs"), unique("iam-rds")];
    broken_group(&admin, &names[0]).await;
    for name in &names[1..] {
        admin.balancer_with(name, 2, 1).await;
    }
    service(&admin, &names[1], 0).await;
    database(&admin, &names[2]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(&moto, &dir.path().join("audit.db"), &names);
    let policy = printed_policy(dir.path(), &text);
    let granted = granted(&policy);
    // Beside reads, exactly the three kinds' writes: nothing that terminates, reboots or runs a command.
    let mut writes: Vec<&str> = granted
        .iter()
        .copied()
        .filter(|action| {
            let name = action.split_once(':').map_or("", |(_, name)| name);
            !["Describe", "List", "Get"]
                .iter()
                .any(|read| name.starts_with(read))
        })
        .collect();
    writes.sort_unstable();
    assert_eq!(
        writes,
        [
            "autoscaling:CreateOrUpdateTags",
            "autoscaling:SetDesiredCapacity",
            "ecs:TagResource",
            "ecs:UpdateService",
            "rds:AddTagsToResource",
            "rds:RebootDBInstance",
        ],
        "{granted:?}"
    );
    let (key_id, secret) = IamAdmin::new(&moto.endpoint)
        .user_with_only("kinds", &as_moto_enforces(&policy))
        .await;
    // The service's deployment is a second old: past its recent_change_secs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    enforce_iam(&moto.endpoint).await;

    let app = TestApp::spawn_with_config(dir, &with_credentials(&text, &key_id, &secret)).await;
    for (name, list) in names.iter().zip([
        "scaled-resources",
        "redeployed-resources",
        "rebooted-databases",
    ]) {
        let (status, summary) = app.remediate(json!({"load_balancer": name})).await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["errors"], json!([]), "{summary}");
        assert_eq!(summary[list], json!([name]), "{summary}");
    }
}
