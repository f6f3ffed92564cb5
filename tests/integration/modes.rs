//! How far reflex goes on its own with a target, end to end against moto: in observe mode an alert on a broken
//! fleet runs every stage up to the decision, records `would-act` with the plan, and writes nothing to AWS.

use serde_json::json;

use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, unique};

#[tokio::test]
async fn observe_mode_records_would_act_with_the_plan_and_moto_sees_no_write() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("observe");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        &format!("{PERMISSIVE}mode = \"observe\"\n"),
    )
    .await;
    moto.start_recording().await;
    let (status, summary) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["mode"], "observe", "{summary}");
    assert_eq!(summary["dry-run"], true);
    assert_eq!(
        summary["terminated-instance-ids"],
        json!(bad),
        "what would have been done"
    );
    let records = app.audit_records().await;
    let record = records
        .iter()
        .find(|r| r.id == summary["audit-id"].as_str().unwrap())
        .unwrap();
    assert_eq!(record.outcome.as_str(), "would-act");
    assert_eq!(
        record.detail["plan"]["act_on"][0]["instance-id"],
        json!(bad[0])
    );
    let recorded = moto.recorded_actions().await;
    assert!(
        recorded.contains_key("DescribeInstanceHealth"),
        "{recorded:?}"
    );
    for write in [
        "TerminateInstances",
        "SetInstanceHealth",
        "RebootInstances",
        "StopInstances",
    ] {
        assert!(!recorded.contains_key(write), "{write} in {recorded:?}");
    }
    assert!(fleet.none_terminated(&bad).await);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"reflex_remediation_runs_total{outcome="would-act",dry_run="true"} 1"#),
        "{metrics}"
    );
}
