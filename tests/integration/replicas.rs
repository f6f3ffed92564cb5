//! Several replicas on one PostgreSQL store: a delivery is run once whichever replica it reaches and however
//! often it is redelivered, and one run at a time acts on a target whichever source (SNS, Alertmanager, the
//! CLI) and whichever replica the alerts come through.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alertmanager::{AM_TOKEN, vector};
use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, remediate_in_background};
use crate::common::slow_proxy::SlowProxy;
use crate::common::{Fleet, MANUAL_TOKEN, Moto, config_text, unique};
use crate::sns::{alarm, captured_delivery, topic};
use crate::takeover::{audit, one_run_acted_the_others_cooled_down};

/// Three `reflex serve` processes sharing `postgres`, allowed to act on `targets`: SNS deliveries of
/// `topic_arn`, Alertmanager with `AM_TOKEN`, these `remediation` settings.
async fn replicas(
    postgres: &Postgres,
    endpoint: &str,
    targets: &[&str],
    topic_arn: &str,
    remediation: &str,
    client: &reqwest::Client,
) -> (Vec<ReflexProcess>, Vec<tempfile::TempDir>) {
    let text = config_text(
        endpoint,
        std::path::Path::new("unused.db"),
        targets,
        remediation,
    );
    let text = postgres.config(&format!(
        "{text}\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\
         \n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n"
    ));
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut processes = Vec::new();
    for dir in &dirs {
        processes.push(ReflexProcess::start(dir.path(), &text, client).await);
    }
    (processes, dirs)
}

/// POSTs `body` to `path`, `count` times spread over the `bases`, all at once; returns each answer.
async fn post_everywhere(
    client: &reqwest::Client,
    bases: &[String],
    path: &str,
    token: Option<&str>,
    body: &[u8],
    count: usize,
) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let mut request = client
                .post(format!("{}{path}", bases[n % bases.len()]))
                .body(body.to_vec());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn three_replicas_run_a_delivery_posted_300_times_across_them_exactly_once() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("replicas");
    let am_lb = unique("replicas-am");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (am_good, am_bad) = fleet.balancer_with(&am_lb, 3, 1).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    let postgres = Postgres::fresh().await;
    let client = reqwest::Client::new();
    let (processes, _dirs) = replicas(
        &postgres,
        &moto.endpoint,
        &[&lb, &am_lb],
        &topic_arn,
        "grace_period_secs = 0\ncooldown_secs = 0\n",
        &client,
    )
    .await;
    let bases: Vec<String> = processes.iter().map(|p| p.base.clone()).collect();

    let answers = post_everywhere(&client, &bases, "/sns", None, &delivery, 300).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let (first, duplicates): (Vec<&Value>, Vec<&Value>) = answers
        .iter()
        .map(|(_, answer)| answer)
        .partition(|answer| answer["duplicate"] == false);
    assert_eq!(first.len(), 1, "exactly one run");
    let first = first[0];
    assert_eq!(first["terminated-instance-ids"], json!(bad));
    for duplicate in &duplicates {
        assert_eq!(duplicate["duplicate"], true);
        assert_eq!(duplicate["audit-id"], first["audit-id"]);
        assert_eq!(
            duplicate["terminated-instance-ids"],
            first["terminated-instance-ids"]
        );
    }
    assert!(fleet.none_terminated(&good).await);
    let records: Vec<Value> = audit(&["--limit", "1000"], &processes[0].config)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 300, "every delivery is audited");
    let runs: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] != "duplicate")
        .collect();
    assert_eq!(runs.len(), 1, "one run, one intent: {runs:#?}");
    assert_eq!(runs[0]["id"], first["audit-id"]);
    assert_eq!(runs[0]["acted"], 1);

    // Alertmanager redelivering one group notification: the same.
    let mut payload = vector("am_v4_firing_pingme.json");
    payload["alerts"][0]["labels"]["load_balancer"] = json!(am_lb);
    let body = payload.to_string();
    let answers = post_everywhere(
        &client,
        &bases,
        "/alertmanager",
        Some(AM_TOKEN),
        body.as_bytes(),
        90,
    )
    .await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let results: Vec<&Value> = answers.iter().map(|(_, a)| &a["results"][0]).collect();
    let (first, duplicates): (Vec<&Value>, Vec<&Value>) = results
        .into_iter()
        .partition(|result| result["duplicate"] == false);
    assert_eq!(first.len(), 1, "exactly one run");
    assert_eq!(first[0]["terminated-instance-ids"], json!(am_bad));
    assert!(
        duplicates
            .iter()
            .all(|d| d["audit-id"] == first[0]["audit-id"])
    );
    assert!(fleet.none_terminated(&am_good).await);
}

#[tokio::test]
async fn alerts_from_every_source_across_replicas_act_once_within_the_cap_and_the_cooldown() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("everywhere");
    let (good, bad) = fleet.balancer_with(&lb, 4, 2).await;
    let topic_arn = topic(&fleet, &unique("alarms")).await;
    let delivery = captured_delivery(&fleet, &topic_arn, &alarm(&lb, "ALARM")).await;
    let postgres = Postgres::fresh().await;
    let client = reqwest::Client::new();
    // Slow AWS widens the window in which the runs overlap.
    let slow = SlowProxy::start(&moto.endpoint, Duration::from_millis(300)).await;
    let (processes, _dirs) = replicas(
        &postgres,
        &slow.endpoint,
        &[&lb],
        &topic_arn,
        "grace_period_secs = 0\ncooldown_secs = 600\nmax_terminations_per_run = 1\n",
        &client,
    )
    .await;
    let mut payload = vector("am_v4_firing_pingme.json");
    payload["alerts"][0]["labels"]["load_balancer"] = json!(lb);

    let sns = client
        .post(format!("{}/sns", processes[0].base))
        .body(delivery)
        .send();
    let alertmanager = client
        .post(format!("{}/alertmanager", processes[1].base))
        .bearer_auth(AM_TOKEN)
        .body(payload.to_string())
        .send();
    let manual = client
        .post(format!("{}/remediate", processes[2].base))
        .bearer_auth(MANUAL_TOKEN)
        .json(&json!({"load_balancer": lb}))
        .send();
    let cli = remediate_in_background(&processes[0].config, &lb);
    let (sns, alertmanager, manual) = tokio::join!(sns, alertmanager, manual);
    let cli = cli.await.unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let mut summaries = Vec::new();
    for response in [sns, manual] {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        summaries.push(response.json::<Value>().await.unwrap());
    }
    let alertmanager = alertmanager.unwrap();
    assert_eq!(alertmanager.status(), 200);
    summaries.push(alertmanager.json::<Value>().await.unwrap()["results"][0].clone());
    summaries.push(serde_json::from_slice(&cli.stdout).unwrap());

    one_run_acted_the_others_cooled_down(&summaries, &bad);
    assert!(fleet.none_terminated(&good).await);
}
