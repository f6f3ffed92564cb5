//! The `isolate` action kind end to end against moto, behind a target group and behind a classic load
//! balancer, each with an Auto Scaling group: the broken member leaves the balancer and the group, is kept (not
//! terminated) and tagged with the run, the group keeps its desired capacity and launches a replacement, the
//! summary lists the act, the check finds the capacity back, the budgets count it, and in approve mode the held
//! decision says it would isolate.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use crate::common::fleet::Behind;
use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

/// Checks come quickly, and the budget allows one act an hour.
const QUICK: &str = "verify_after_secs = 2\nmax_acted_per_hour = 1\nmax_unhealthy_fraction = 0.9\n";

/// reflex with the one target `target` (a TOML `[[targets]]` body) whose ladder is `["isolate"]`.
async fn app(moto: &Moto, target: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        &format!("{PERMISSIVE}{QUICK}"),
    );
    text.push_str(&format!(
        "\n{extra}\n[[targets]]\n{target}\nladder = [\"isolate\"]\n"
    ));
    TestApp::spawn_with_config(dir, &text).await
}

/// The value of the tag `key` on `id`, if it has one.
async fn tag(fleet: &Fleet, id: &str, key: &str) -> Option<String> {
    let output = fleet
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("DescribeInstances");
    let instance = &output.reservations()[0].instances()[0];
    instance
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(|tag| tag.value().map(str::to_owned))
}

/// The group's desired capacity and its instances.
async fn group(fleet: &Fleet, name: &str) -> (i32, Vec<String>) {
    let output = fleet
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    let group = &output.auto_scaling_groups()[0];
    let instances = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    (group.desired_capacity().unwrap_or_default(), instances)
}

/// The instances registered on the target group `arn`.
async fn in_target_group(fleet: &Fleet, arn: &str) -> Vec<String> {
    let output = fleet
        .elbv2
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .expect("DescribeTargetHealth");
    output
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_owned))
        .collect()
}

/// The instances registered on the classic load balancer `name`.
async fn in_balancer(fleet: &Fleet, name: &str) -> Vec<String> {
    let output = fleet
        .elb
        .describe_load_balancers()
        .load_balancer_names(name)
        .send()
        .await
        .expect("DescribeLoadBalancers");
    output.load_balancer_descriptions()[0]
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

/// Waits up to 30 s for the recovery check of `run`, and returns its outcome.
async fn checked(app: &TestApp, run: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = app.audit_records().await;
        let check = records
            .iter()
            .find(|r| r.source == "recovery-check" && r.detail["recovery"]["run"] == run);
        if let Some(check) = check {
            return check.outcome.as_str().to_owned();
        }
        assert!(Instant::now() < deadline, "no recovery check of {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What an isolation must leave behind: `id` kept (not terminated), tagged with `run`, out of the group, whose
/// desired capacity is still `desired` and which launched a replacement.
async fn isolated(fleet: &Fleet, group_name: &str, id: &str, run: &str, desired: i32) {
    assert_eq!(fleet.state(id).await, InstanceStateName::Stopped, "kept");
    assert_eq!(
        tag(fleet, id, "reflex:isolated").await.as_deref(),
        Some(run)
    );
    let (capacity, members) = group(fleet, group_name).await;
    assert_eq!(capacity, desired, "desired capacity unchanged");
    assert!(!members.contains(&id.to_owned()), "{members:?}");
    assert_eq!(
        members.len(),
        usize::try_from(desired).unwrap(),
        "replacement launched"
    );
}

/// The summary's one act: `id` isolated.
fn assert_isolated_in(summary: &Value, id: &str) {
    assert_eq!(summary["isolated-instance-ids"], json!([id]), "{summary}");
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert_eq!(
        summary["actions"],
        json!([{"instance-id": id, "action": "isolate", "state": "isolated"}])
    );
}

#[tokio::test]
async fn isolate_takes_a_target_group_member_out_and_its_group_replaces_it() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgiso");
    let (tg, _good, _) = fleet.target_group_with(&name, 2, 0).await;
    let members = fleet.auto_scaling_group(&name, &tg.arn, 3).await;
    fleet.stop(&members[..1]).await;
    let app = app(moto, &format!("target_group = \"{name}\""), "").await;

    let (status, summary) = app.remediate(json!({"target_group": name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_isolated_in(&summary, &members[0]);
    let run = summary["audit-id"].as_str().unwrap();
    isolated(&fleet, &name, &members[0], run, 3).await;
    assert!(!in_target_group(&fleet, &tg.arn).await.contains(&members[0]));
    let record = app.audit.get(run).await.unwrap().unwrap();
    assert_eq!(record.detail["actions"][0]["kind"], "isolate");
    assert_eq!(record.detail["episode"]["step"], "isolate");
    assert_eq!(checked(&app, run).await, "recovered");

    // The budget counted the isolation: another broken member is left alone.
    fleet.stop(&members[1..2]).await;
    let (status, again) = app.remediate(json!({"target_group": name})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["isolated-instance-ids"], json!([]));
    assert_eq!(
        again["skipped"],
        json!([{"instance-id": members[1], "reason": "budget"}])
    );
    app.stop().await;
}

#[tokio::test]
async fn isolate_takes_a_classic_balancer_member_out_and_its_group_replaces_it() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("elbiso");
    let good = fleet.launch(2, &[]).await;
    fleet.balancer(&name, &good).await;
    let members = fleet
        .auto_scaling_group_behind(&name, Behind::Balancer(&name), 2)
        .await;
    assert!(in_balancer(&fleet, &name).await.contains(&members[0]));
    fleet.stop(&members[..1]).await;
    let app = app(moto, &format!("load_balancer = \"{name}\""), "").await;

    let (status, summary) = app.remediate(json!({"load_balancer": name})).await;
    assert_eq!(status, 200, "{summary}");
    assert_isolated_in(&summary, &members[0]);
    let run = summary["audit-id"].as_str().unwrap();
    isolated(&fleet, &name, &members[0], run, 2).await;
    assert!(!in_balancer(&fleet, &name).await.contains(&members[0]));
    assert_eq!(checked(&app, run).await, "recovered");
    app.stop().await;
}

#[tokio::test]
async fn a_held_isolation_says_what_it_would_isolate_and_touches_nothing() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let name = unique("tgisoheld");
    let (tg, _, _) = fleet.target_group_with(&name, 2, 0).await;
    let members = fleet.auto_scaling_group(&name, &tg.arn, 2).await;
    fleet.stop(&members[..1]).await;
    let approve = "[approvals]\ntokens = [\"isolate-approver-token-0123456789\"]\n";
    let target = format!("target_group = \"{name}\"\nmode = \"approve\"");
    let app = app(moto, &target, approve).await;

    let (status, held) = app.remediate(json!({"target_group": name})).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["isolated-instance-ids"], json!([]), "{held}");
    assert_eq!(held["approval"]["verb"], "isolate");
    assert_eq!(held["approval"]["would-replace"], json!([members[0]]));
    let id = held["approval"]["id"].as_str().unwrap();
    let approval = app.audit.approval(id).await.unwrap().unwrap();
    let would = reflex::evidence::WouldDo::of(&approval.body["evidence"]);
    assert_eq!(would.verb, "isolate");
    assert_eq!(would.instances, [members[0].clone()]);
    // Nothing was done: still in the group and the target group, untagged.
    assert!(group(&fleet, &name).await.1.contains(&members[0]));
    assert!(in_target_group(&fleet, &tg.arn).await.contains(&members[0]));
    assert_eq!(tag(&fleet, &members[0], "reflex:isolated").await, None);
    app.stop().await;
}
