//! The `asg-set-capacity` action kind against moto's Auto Scaling: a balancer whose broken instance is in a
//! group gets capacity added to that group, up to its MaxSize, unbounded by the capacity rules that would refuse
//! a replacement; a group at its maximum is not raised; a group whose launches are suspended is not touched
//! (`change-in-progress`); in approve mode the raise waits for its approver.

use aws_sdk_autoscaling::types::AutoScalingGroup;
use serde_json::json;

use crate::common::fleet::Behind;
use crate::common::{Fleet, Moto, TestApp, config_text, unique};

/// No grace, no cooldown, quick checks; an unhealthy fraction so low that a replacement would be refused.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n\
                     max_removed_fraction_per_hour = 1.0\nmax_unhealthy_fraction = 0.1\n";
/// An approver's token (approve mode).
const APPROVER: &str = "capacity-approver-token-0123456789";

/// A classic balancer `name` with one instance of its own and a group `name` of three behind it (MaxSize
/// four), the group's first instance stopped: the group's instances.
pub(crate) async fn broken_group(fleet: &Fleet, name: &str) -> Vec<String> {
    let own = fleet.launch(1, &[]).await;
    fleet.balancer(name, &own).await;
    let members = fleet
        .auto_scaling_group_behind(name, Behind::Balancer(name), 3)
        .await;
    fleet.stop(&members[..1]).await;
    members
}

/// reflex serving `name` with the `add-capacity` entry (add two, up to ten) as its ladder, under `extra`
/// remediation settings.
async fn app(moto: &Moto, name: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        &format!("{QUICK}{extra}"),
    ) + &format!(
        "\n[[targets]]\nload_balancer = \"{name}\"\nladder = [\"add-capacity\"]\n\n\
         [[actions]]\nname = \"add-capacity\"\nkind = \"asg-set-capacity\"\nadd = 2\nmax_desired = 10\n\
         verify_secs = 1\n\n[approvals]\ntokens = [\"{APPROVER}\"]\n"
    );
    TestApp::spawn_with_config(dir, &text).await
}

/// The group as moto holds it.
pub(crate) async fn group(fleet: &Fleet, name: &str) -> AutoScalingGroup {
    fleet
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .expect("DescribeAutoScalingGroups")
        .auto_scaling_groups()[0]
        .clone()
}

/// The value of the group's `reflex:capacity` tag.
pub(crate) fn intent(group: &AutoScalingGroup) -> Option<String> {
    group
        .tags()
        .iter()
        .find(|tag| tag.key() == Some("reflex:capacity"))
        .and_then(|tag| tag.value().map(str::to_owned))
}

#[tokio::test]
async fn capacity_is_added_to_the_broken_instances_group_up_to_its_max_size_and_checked() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("asg-add");
    let members = broken_group(&fleet, &name).await;
    let app = app(moto, &name, "").await;

    let (status, run) = app.remediate(json!({"load_balancer": name})).await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["audit-id"].as_str().unwrap().to_owned();
    let act = &run["actions"][0];
    assert_eq!(act["resource"], name.as_str(), "{run}");
    assert_eq!(act["action"], "set-desired-capacity");
    assert_eq!(act["covers"], json!([members[0]]));
    // Three plus two is five, but the group's MaxSize is four.
    assert_eq!(act["handle"], format!("4 {name}"), "{run}");
    assert_eq!(run["scaled-resources"], json!([name]));
    let read = group(&fleet, &name).await;
    assert_eq!(read.desired_capacity(), Some(4));
    assert_eq!(intent(&read), Some(format!("{run_id}/4")));
    assert!(fleet.none_terminated(&members).await, "nothing removed");

    // The new instance joins the balancer: as many InService as before the run plus the broken one.
    let check = app.check_of(&run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.detail["polled"][0]["state"], "4 of 4 InService");

    // At its MaxSize the group is not raised again: the act fails, nothing is changed.
    let (_, again) = app.remediate(json!({"load_balancer": name})).await;
    let error = again["actions"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("at-max") && error.contains("MaxSize 4"),
        "{again}"
    );
    assert_eq!(group(&fleet, &name).await.desired_capacity(), Some(4));
    assert_eq!(
        intent(&group(&fleet, &name).await),
        Some(format!("{run_id}/4"))
    );
    // A refusal of the kind's own is no AWS error: however often it comes, the breaker stays closed.
    // (three AWS errors in a row would open it, and a fourth run would be refused breaker-open.)
    for _ in 0..4 {
        let (_, again) = app.remediate(json!({"load_balancer": name})).await;
        assert!(error_of(&again).contains("(refused, at-max)"), "{again}");
    }
}

/// The first act's error in a run's answer.
fn error_of(run: &serde_json::Value) -> &str {
    run["actions"][0]["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_group_whose_launches_are_suspended_is_not_raised() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("asg-held");
    broken_group(&fleet, &name).await;
    fleet
        .autoscaling
        .suspend_processes()
        .auto_scaling_group_name(&name)
        .scaling_processes("Launch")
        .send()
        .await
        .expect("SuspendProcesses");
    let app = app(moto, &name, "").await;

    let (status, run) = app.remediate(json!({"load_balancer": name})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["refused-rule"], "change-in-progress", "{run}");
    let read = group(&fleet, &name).await;
    assert_eq!(read.desired_capacity(), Some(3));
    assert_eq!(intent(&read), None);
}

#[tokio::test]
async fn in_approve_mode_capacity_is_added_once_approved() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("asg-approve");
    broken_group(&fleet, &name).await;
    let app = app(moto, &name, "mode = \"approve\"\n").await;

    let (_, held) = app.remediate(json!({"load_balancer": name})).await;
    assert_eq!(held["approval"]["verb"], "add capacity beside", "{held}");
    assert_eq!(held["approval"]["would-replace"], json!([name]), "{held}");
    assert_eq!(group(&fleet, &name).await.desired_capacity(), Some(3));
    let path = format!(
        "/admin/approvals/{}/approve",
        held["approval"]["id"].as_str().unwrap()
    );
    let (status, voted) = app.post(&path, Some(APPROVER), "{}").await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(
        voted["summary"]["scaled-resources"],
        json!([name]),
        "{voted}"
    );
    assert_eq!(group(&fleet, &name).await.desired_capacity(), Some(4));
}
