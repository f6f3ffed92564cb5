//! No alert lost to a crash: a process killed with `kill -9` in the middle of a run leaves its SNS delivery
//! claimed; the redelivery SNS sends 20 s later, to a restarted process or another one sharing the store, takes
//! the claim over and finishes the job, and the instance is replaced once. On SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde_json::Value;

use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, reflex, remediate_in_background};
use crate::common::slow_proxy::SlowProxy;
use crate::common::{Fleet, Moto, PERMISSIVE, config_text, unique};
use crate::sns::{alarm, captured_delivery, topic};

/// reflex's config for `lb` on `endpoint`, taking SNS deliveries of `topic_arn`, with its store at `db`.
pub(crate) fn config(endpoint: &str, db: &std::path::Path, lb: &str, topic_arn: &str) -> String {
    let mut text = config_text(endpoint, db, &[lb], PERMISSIVE);
    text.push_str(&format!(
        "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n"
    ));
    text
}

/// `reflex audit list --json` with `args`, through the CLI, for the store `config` names.
pub(crate) fn audit(args: &[&str], config: &std::path::Path) -> String {
    let mut all = vec![
        "audit",
        "list",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let output = reflex(all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_redelivery_after_kill_minus_nine_takes_over_and_replaces_the_instance_once() {
    takeover_after_kill_minus_nine(None).await;
}

#[tokio::test]
async fn on_postgres_a_redelivery_to_a_restarted_process_and_another_replica_takes_over_once() {
    takeover_after_kill_minus_nine(Some(Postgres::fresh().await)).await;
}

/// The first process is killed mid-run; 20 s later the redelivery goes to a restarted process and, on
/// PostgreSQL, at the same moment to another replica that was running all along.
async fn takeover_after_kill_minus_nine(postgres: Option<Postgres>) {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("takeover");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let client = reqwest::Client::new();
    let config = |endpoint: &str| {
        let text = config(endpoint, &db, &lb, &topic_arn);
        match &postgres {
            Some(postgres) => postgres.config(&text),
            None => text,
        }
    };

    // The first process reaches AWS through a slow relay: its run is still under way when it is killed.
    let slow = SlowProxy::start(&moto.endpoint, Duration::from_millis(1500)).await;
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = ReflexProcess::start(first_dir.path(), &config(&slow.endpoint), &client).await;
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = match postgres {
        Some(_) => {
            Some(ReflexProcess::start(replica_dir.path(), &config(&moto.endpoint), &client).await)
        }
        None => None,
    };
    let url = format!("{}/sns", first.base);
    let body = delivery.clone();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.post(url).body(body).send().await }
    });
    // Killed after it recorded its intent, while its TerminateInstances waits in the relay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = audit(&[], &first.config);
        if records.contains("\"outcome\":\"acting\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first attempt never recorded its intent: {records}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.child.kill().unwrap(); // SIGKILL: no answer, no settlement, no sign-off
    first.child.wait().unwrap();
    let killed_at = Instant::now();
    assert!(
        pending.await.unwrap().is_err(),
        "the killed process answered"
    );
    drop(slow);
    let first_records: Vec<Value> = audit(&[], &first.config)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(first_records.len(), 1);
    let dead_id = first_records[0]["id"].as_str().unwrap().to_owned();

    // SNS retries 20 s later; by then the dead process's claim shows as stuck.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(killed_at.elapsed())).await;
    let stuck = audit(&["--stuck"], &first.config);
    assert!(stuck.contains(&dead_id), "{stuck}");

    let second_dir = tempfile::tempdir().unwrap();
    let second = ReflexProcess::start(second_dir.path(), &config(&moto.endpoint), &client).await;
    let redeliveries: Vec<_> = std::iter::once(&second)
        .chain(replica.as_ref())
        .map(|process| {
            let request = client
                .post(format!("{}/sns", process.base))
                .body(delivery.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for redelivery in redeliveries {
        answers.push(redelivery.await.unwrap());
    }
    let (taken_over, replayed): (Vec<Value>, Vec<Value>) = answers
        .into_iter()
        .partition(|answer| answer["duplicate"] == false);
    assert_eq!(
        taken_over.len(),
        1,
        "one redelivery takes over: {replayed:?}"
    );
    let summary = taken_over.into_iter().next().unwrap();
    for answer in &replayed {
        assert_eq!(answer["audit-id"], summary["audit-id"], "{answer}");
    }
    // The dead attempt's TerminateInstances may or may not have reached AWS before the kill (the relay still
    // delivers what it holds): the takeover terminates the instance only when it did not, and counts it
    // against the cap when it did. Either way it is replaced exactly once.
    let takeover_terminated = summary["terminated-instance-ids"] == serde_json::json!(bad);
    let skipped_as_terminating = summary["skipped"]
        == serde_json::json!([{"instance-id": bad[0], "reason": "already-terminating"}]);
    assert!(takeover_terminated != skipped_as_terminating, "{summary}");
    assert!(matches!(
        fleet.state(&bad[0]).await,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
    ));
    assert!(fleet.none_terminated(&good).await);

    // A later redelivery replays the takeover's answer; nothing is stuck any more.
    let again: Value = client
        .post(format!("{}/sns", second.base))
        .body(delivery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["audit-id"], summary["audit-id"]);
    assert_eq!(audit(&["--stuck"], &second.config), "");

    // The trail shows both attempts: the dead one's intent and the takeover that names it.
    let records: Vec<Value> = audit(&[], &second.config)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let dead = records
        .iter()
        .find(|r| r["id"] == dead_id.as_str())
        .unwrap();
    assert_eq!(dead["outcome"], "acting");
    let takeover = records
        .iter()
        .find(|r| r["id"] == summary["audit-id"])
        .unwrap();
    assert_eq!(takeover["outcome"], "completed");
    assert_eq!(takeover["detail"]["takeover"]["of"], dead_id.as_str());
    let already = &takeover["detail"]["takeover"]["already_replaced"];
    if takeover_terminated {
        assert_eq!(
            (takeover["acted"].as_u64(), already),
            (Some(1), &serde_json::json!([]))
        );
    } else {
        assert_eq!(
            (takeover["acted"].as_u64(), already),
            (Some(0), &serde_json::json!(bad))
        );
    }
}

#[tokio::test]
async fn two_servers_and_the_cli_sharing_a_store_act_once_on_a_target() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("shared");
    let (good, bad) = fleet.balancer_with(&lb, 4, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    // Slow AWS widens the window in which the runs overlap.
    let slow = SlowProxy::start(&moto.endpoint, Duration::from_millis(300)).await;
    let text = config_text(
        &slow.endpoint,
        &db,
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\nmax_terminations_per_run = 1\n",
    );
    let client = reqwest::Client::new();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = ReflexProcess::start(a_dir.path(), &text, &client).await;
    let b = ReflexProcess::start(b_dir.path(), &text, &client).await;
    let manual = |base: String| {
        let client = client.clone();
        let lb = lb.clone();
        async move {
            let response = client
                .post(format!("{base}/remediate"))
                .bearer_auth(crate::common::MANUAL_TOKEN)
                .json(&serde_json::json!({"load_balancer": lb}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let cli = remediate_in_background(&a.config, &lb);
    let (from_a, from_b) = tokio::join!(manual(a.base.clone()), manual(b.base.clone()));
    let cli = cli.await.unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let from_cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let summaries = [from_a.1, from_b.1, from_cli];
    assert_eq!((from_a.0, from_b.0), (200, 200), "{summaries:?}");
    one_run_acted_the_others_cooled_down(&summaries, &bad);
    assert!(fleet.none_terminated(&good).await);
}

/// Of these summaries of simultaneous runs on one target (cap 1, a long cooldown), one terminated one of the
/// `bad` instances and every other one was refused by the cooldown.
pub(crate) fn one_run_acted_the_others_cooled_down(summaries: &[Value], bad: &[String]) {
    let terminated: Vec<&Value> = summaries
        .iter()
        .flat_map(|s| s["terminated-instance-ids"].as_array().unwrap())
        .collect();
    assert_eq!(
        terminated.len(),
        1,
        "one run acts, within the cap: {summaries:#?}"
    );
    assert!(bad.iter().any(|id| terminated[0] == id), "{summaries:#?}");
    let refused = summaries
        .iter()
        .filter(|s| {
            s["refused"]
                .as_str()
                .is_some_and(|r| r.contains("cooldown"))
        })
        .count();
    assert_eq!(
        refused,
        summaries.len() - 1,
        "the others are refused by the cooldown: {summaries:#?}"
    );
}
