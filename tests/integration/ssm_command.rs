//! `ssm-command` against moto's SSM: an `[[actions]]` entry runs its document on the broken instance with
//! parameters rendered from the instance, the command is followed until it ends and the instance is checked;
//! a parameter that fails its pattern sends nothing; a takeover after `kill -9` in the middle of a run sends
//! no second command.
//!
//! Each test has a moto of its own and reads what reflex sent from moto's request recorder: moto runs a command
//! sent to instance ids on every instance of the region (it reads the absent `Targets` as "all"), so its own
//! view of a command's instances says nothing of what was asked.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::process::ReflexProcess;
use crate::common::slow_proxy::SlowProxy;
use crate::common::sns::{alarm, captured_delivery, topic};
use crate::common::{Fleet, Moto, TestApp, config_text, unique};
use crate::takeover::audit;

/// Quick checks, room to act, no grace period.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\n\
                     max_removed_fraction_per_hour = 1.0\nmax_unhealthy_fraction = 0.9\n";

/// A target whose ladder runs the `restart-app` entry, then replaces; the entry restarts the service named by
/// the instance's `Service` tag.
fn restart_app(lb: &str) -> String {
    format!(
        r#"
[[targets]]
load_balancer = "{lb}"
ladder = ["restart-app", "replace"]

[[actions]]
name = "restart-app"
kind = "ssm-command"
document = "AWS-RunShellScript"
document_version = "1"
parameters = {{ commands = ["systemctl restart {{{{ instance.tags.Service }}}}", "echo {{{{ instance.id }}}}"] }}
parameter_patterns = {{ commands = "(systemctl restart [a-z-]+|echo i-[0-9a-f]+)" }}
timeout_secs = 600
verify_secs = 2
"#
    )
}

/// A moto of the test's own, recording every request from now on.
async fn recording_moto() -> Moto {
    let moto = Moto::start(&[]);
    moto.start_recording().await;
    moto
}

/// The SendCommand requests moto received, in order.
async fn sent(moto: &Moto) -> Vec<Value> {
    moto.recorded_json("AmazonSSM.SendCommand").await
}

/// The id of the one command moto holds for `instance`.
async fn command_id(fleet: &Fleet, instance: &str) -> String {
    let listed = aws_sdk_ssm::Client::new(&fleet.sdk)
        .list_commands()
        .instance_id(instance)
        .send()
        .await
        .expect("ListCommands");
    assert_eq!(listed.commands().len(), 1, "{listed:?}");
    listed.commands()[0].command_id().unwrap().to_owned()
}

/// Tags `instance` with `Service = service`.
async fn serves(fleet: &Fleet, instance: &str, service: &str) {
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key("Service")
        .value(service)
        .build();
    fleet
        .ec2
        .create_tags()
        .resources(instance)
        .tags(tag)
        .send()
        .await
        .expect("CreateTags");
}

#[tokio::test]
async fn a_command_runs_on_the_broken_instance_with_its_parameters_and_is_followed_to_its_end() {
    let moto = recording_moto().await;
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ssm-fixed");
    let (_, bad) = fleet.balancer_with(&lb, 2, 1).await;
    serves(&fleet, &bad[0], "app").await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], QUICK) + &restart_app(&lb);
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["commanded-instance-ids"], json!(bad), "{run}");
    assert_eq!(run["terminated-instance-ids"], json!([]));
    assert_eq!(run["actions"][0]["action"], "send-command", "{run}");
    assert_eq!(run["actions"][0]["state"], "pending", "{run}");
    let run_id = run["audit-id"].as_str().unwrap();

    // One command, to the broken instance only, named after the run, with the parameters rendered once.
    let sent = sent(&moto).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let command = &sent[0];
    assert_eq!(command["InstanceIds"], json!(bad), "{command}");
    assert_eq!(command["Comment"], format!("reflex run {run_id}"));
    assert_eq!(command["DocumentName"], "AWS-RunShellScript");
    assert_eq!(command["DocumentVersion"], "1");
    assert_eq!(command["TimeoutSeconds"], 600);
    let commands = json!(["systemctl restart app", format!("echo {}", bad[0])]);
    assert_eq!(command["Parameters"]["commands"], commands, "{command}");
    assert_eq!(
        run["actions"][0]["handle"],
        command_id(&fleet, &bad[0]).await,
        "{run}"
    );
    let record = app.audit.get(run_id).await.unwrap().unwrap();
    assert_eq!(
        record.detail["plan"]["act_on"][0]["arguments"]["commands"],
        commands
    );

    // The service came back: the check polls the command to its end, then finds the instance InService.
    fleet.start(&bad).await;
    let check = app.check_of(run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(
        check.detail["polled"][0]["state"], "Success",
        "{:?}",
        check.detail
    );
    assert_eq!(check.detail["polled"][0]["instance-id"], bad[0].as_str());
    assert!(fleet.none_terminated(&bad).await, "nothing terminated");
}

#[tokio::test]
async fn a_parameter_that_fails_its_pattern_or_cannot_be_rendered_sends_nothing() {
    let moto = recording_moto().await;
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ssm-refused");
    let (_, bad) = fleet.balancer_with(&lb, 3, 2).await;
    // One instance's tag would smuggle a second command in; the other has no tag to render.
    serves(&fleet, &bad[0], "app; curl evil").await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], QUICK) + &restart_app(&lb);
    let app = TestApp::spawn_with_config(dir, &text).await;

    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["commanded-instance-ids"], json!([]), "{run}");
    let mut skipped: Vec<Value> = run["skipped"].as_array().unwrap().clone();
    skipped.sort_by_key(|skip| skip["instance-id"].as_str().unwrap().to_owned());
    let mut expected: Vec<Value> = bad
        .iter()
        .map(|id| json!({"instance-id": id, "reason": "bad-parameter"}))
        .collect();
    expected.sort_by_key(|skip| skip["instance-id"].as_str().unwrap().to_owned());
    assert_eq!(skipped, expected, "{run}");
    assert_eq!(sent(&moto).await, Vec::<Value>::new(), "nothing is sent");
    // The record says what was refused for each.
    let record = app
        .audit
        .get(run["audit-id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let refused = record.detail["plan"]["refused_arguments"].to_string();
    assert!(
        refused.contains("does not match its pattern") && refused.contains("cannot be rendered"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_takeover_after_kill_minus_nine_mid_command_sends_no_second_command() {
    let moto = recording_moto().await;
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ssm-takeover");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    serves(&fleet, &bad[0], "app").await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let client = reqwest::Client::new();
    let config = |endpoint: &str| {
        config_text(
            endpoint,
            &db,
            &[],
            "grace_period_secs = 0\ncooldown_secs = 0\n",
        ) + &format!("\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n")
            + &restart_app(&lb)
    };

    // The first process hears AWS's answers late: it is killed once its SendCommand reached SSM, before it
    // learnt so.
    let slow = SlowProxy::holding_replies(&moto.endpoint, Duration::from_secs(2)).await;
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = ReflexProcess::start(first_dir.path(), &config(&slow.endpoint), &client).await;
    let pending = tokio::spawn({
        let request = client
            .post(format!("{}/sns", first.base))
            .body(delivery.clone());
        async move { request.send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent(&moto).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first attempt never sent its command"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed_at = Instant::now();
    assert!(
        pending.await.unwrap().is_err(),
        "the killed process answered"
    );
    drop(slow);

    // SNS redelivers 20 s later, to a restarted process.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(killed_at.elapsed())).await;
    let second_dir = tempfile::tempdir().unwrap();
    let second = ReflexProcess::start(second_dir.path(), &config(&moto.endpoint), &client).await;
    let answer: Value = client
        .post(format!("{}/sns", second.base))
        .body(delivery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert_eq!(answer["commanded-instance-ids"], json!(bad), "{answer}");
    // The takeover followed the dead attempt's command: one command, named after the dead attempt.
    let sent = sent(&moto).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        answer["actions"][0]["handle"],
        command_id(&fleet, &bad[0]).await,
        "{answer}"
    );
    let dead_id = audit(&[], &second.config)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|record| record["outcome"] == "acting")
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .expect("the dead attempt's record");
    assert_eq!(sent[0]["Comment"], format!("reflex run {dead_id}"));
}
