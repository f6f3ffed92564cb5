//! Each safety rule, end to end against moto: the skip or refusal is reported and nothing is terminated.

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::json;

use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, unique};

#[tokio::test]
async fn young_instances_are_in_their_grace_period() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("grace");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        "grace_period_secs = 3600\ncooldown_secs = 0\n",
    )
    .await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200);
    assert_eq!(
        summary["skipped"],
        json!([{"instance-id": bad[0], "reason": "grace-period"}])
    );
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
}

#[tokio::test]
async fn protected_instances_are_never_touched() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("prot");
    let good = fleet.launch(3, &[]).await;
    let protected = fleet.launch(1, &[("reflex:protect", "true")]).await;
    let all: Vec<String> = good.iter().chain(&protected).cloned().collect();
    fleet.balancer(&lb, &all).await;
    fleet.stop(&protected).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (_, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(
        summary["skipped"],
        json!([{"instance-id": protected[0], "reason": "protected"}])
    );
    assert_eq!(fleet.state(&protected[0]).await, InstanceStateName::Stopped);
}

#[tokio::test]
async fn too_many_unhealthy_refuses_the_whole_run() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("sys");
    let (good, bad) = fleet.balancer_with(&lb, 1, 2).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200);
    assert!(
        summary["refused"].as_str().unwrap().contains("2 of 3"),
        "{summary}"
    );
    assert_eq!(summary["terminated-instance-ids"], json!([]));
    assert!(fleet.none_terminated(&bad).await && fleet.none_terminated(&good).await);
    let record = &app.audit_records().await[0];
    assert_eq!(record.outcome, "refused");
    assert_eq!(
        record.detail["plan"]["refused"]["rule"],
        "too-many-unhealthy"
    );
}

#[tokio::test]
async fn min_in_service_refuses() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("floor");
    let (_, bad) = fleet.balancer_with(&lb, 2, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        &format!("{PERMISSIVE}min_in_service = 3\n"),
    )
    .await;
    let (_, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert!(
        summary["refused"]
            .as_str()
            .unwrap()
            .contains("min_in_service 3"),
        "{summary}"
    );
    assert_eq!(fleet.state(&bad[0]).await, InstanceStateName::Stopped);
}

#[tokio::test]
async fn the_per_run_cap_skips_the_rest() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("cap");
    let (_, mut bad) = fleet.balancer_with(&lb, 4, 3).await;
    bad.sort();
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        &format!("{PERMISSIVE}max_terminations_per_run = 2\n"),
    )
    .await;
    let (_, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(summary["terminated-instance-ids"], json!(bad[..2]));
    assert_eq!(
        summary["skipped"],
        json!([{"instance-id": bad[2], "reason": "cap-reached"}])
    );
    assert_eq!(fleet.state(&bad[2]).await, InstanceStateName::Stopped);
}

#[tokio::test]
async fn a_second_run_within_the_cooldown_is_refused() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("cool");
    let (good, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\n",
    )
    .await;
    let (_, first) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(first["terminated-instance-ids"], json!(bad));

    fleet.stop(&good[..1]).await;
    let (_, second) = app.remediate(json!({"load_balancer": lb})).await;
    assert!(
        second["refused"].as_str().unwrap().contains("cooldown"),
        "{second}"
    );
    assert_eq!(fleet.state(&good[0]).await, InstanceStateName::Stopped);
}

#[tokio::test]
async fn an_instance_already_shutting_down_is_not_terminated_again() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("again");
    let (_, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    app.remediate(json!({"load_balancer": lb})).await;
    let (_, second) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(second["terminated-instance-ids"], json!([]));
    assert_eq!(second["skipped"][0]["instance-id"], bad[0].as_str());
    assert_eq!(second["skipped"][0]["reason"], "already-terminating");
}
