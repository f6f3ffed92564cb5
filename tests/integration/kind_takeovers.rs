//! A takeover after `kill -9` between a kind's call and its answer does not make the call again, for each kind
//! that acts on a whole target. The first process hears its answers late and is killed once its call reached
//! moto (or the webhook's receiver); SNS's redelivery 20 s later goes to a restarted process sharing the store,
//! which takes the run over and answers as the dead attempt would have: `asg-set-capacity` finds the capacity
//! it set, `ecs-redeploy` follows the deployment it started, `rds-reboot` finds its reboot recorded, and
//! `webhook` sends again under the same idempotency key, for the receiver to drop.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::asg_capacity::{broken_group, group, intent};
use crate::common::process::ReflexProcess;
use crate::common::slow_proxy::SlowProxy;
use crate::common::sns::{alarm, captured_delivery, topic};
use crate::common::{Fleet, Moto, config_text, unique};
use crate::ecs_rds::{database, read, service};
use crate::takeover::audit;
use crate::webhook_action::{Receiver, verified};

/// No grace, no cooldown, room to act.
const SETTINGS: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\nmax_terminations_per_run = 1\n\
                        max_removed_fraction_per_hour = 1.0\nmax_unhealthy_fraction = 0.9\n";

/// How long the first process waits for each answer: its call is made at once, its answer heard this late
/// (long enough for the test to kill it in between, short enough for its start-up reads).
const HOLD: Duration = Duration::from_millis(800);

/// Where the kind's call goes, and how the test counts it.
enum Call {
    /// To moto, as this operation.
    Aws(&'static str),
    /// To this webhook receiver, at this URL.
    Hook(Receiver, String),
}

impl Call {
    /// How many calls were made.
    async fn count(&self, moto: &Moto) -> usize {
        match self {
            Self::Aws(operation) => moto.recorded_writes_of(operation).await,
            Self::Hook(receiver, _) => receiver.calls().await.len(),
        }
    }
}

/// A kind's takeover: the balancer, its entry (given the webhook URL to use), and the kind's call.
struct Case<'a> {
    moto: &'a Moto,
    fleet: &'a Fleet,
    lb: String,
    entry: Box<dyn Fn(&str) -> String>,
    call: Call,
}

/// What the takeover left: the restarted process's answer and the dead attempt's run id.
struct TakenOver {
    answer: Value,
    dead_run: String,
}

/// Runs `case` to its takeover: the first process is killed once its call was made, the second takes over.
async fn take_over(case: &Case<'_>) -> TakenOver {
    let topic_arn = topic(case.fleet, &unique("alarms")).await;
    let delivery = captured_delivery(case.fleet, &topic_arn, &alarm(&case.lb, "ALARM")).await;
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("audit.db");
    let config = |endpoint: &str, hook: &str| {
        config_text(endpoint, &db, &[], SETTINGS)
            + &format!(
                "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\n\
                 [[targets]]\nload_balancer = \"{}\"\nladder = [\"heal\"]\n\n[[actions]]\nname = \"heal\"\n{}",
                case.lb,
                (case.entry)(hook)
            )
    };
    case.moto.start_recording().await;
    let client = reqwest::Client::new();

    // The first process hears every answer of the kind's call late: it is killed once the call was made.
    let (slow, first_text) = match &case.call {
        Call::Aws(_) => {
            let slow = SlowProxy::holding_replies(&case.moto.endpoint, HOLD).await;
            let text = config(&slow.endpoint, "");
            (slow, text)
        }
        Call::Hook(_, url) => {
            let (origin, path) = split_url(url);
            let slow = SlowProxy::holding_replies(origin, HOLD).await;
            let text = config(&case.moto.endpoint, &format!("{}{path}", slow.endpoint));
            (slow, text)
        }
    };
    let killed_at = killed_mid_call(case, &first_text, &delivery, &client).await;
    drop(slow);

    // SNS redelivers 20 s later, to a restarted process.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(killed_at.elapsed())).await;
    let hook = match &case.call {
        Call::Hook(_, url) => url.as_str(),
        Call::Aws(_) => "",
    };
    let second_dir = tempfile::tempdir().unwrap();
    let second = ReflexProcess::start(
        second_dir.path(),
        &config(&case.moto.endpoint, hook),
        &client,
    )
    .await;
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
    assert_eq!(answer["errors"], json!([]), "{answer}");
    let dead_run = audit(&[], &second.config)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|record| record["outcome"] == "acting")
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .expect("the dead attempt's record");
    TakenOver { answer, dead_run }
}

/// Starts a process with `text`, hands it `delivery`, and kills it (`kill -9`) once the kind's call was made,
/// before it answered: when it was killed.
async fn killed_mid_call(
    case: &Case<'_>,
    text: &str,
    delivery: &[u8],
    client: &reqwest::Client,
) -> Instant {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ReflexProcess::start(dir.path(), text, client).await;
    let pending = tokio::spawn({
        let request = client
            .post(format!("{}/sns", first.base))
            .body(delivery.to_vec());
        async move { request.send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while case.call.count(case.moto).await == 0 {
        assert!(Instant::now() < deadline, "the first attempt never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed_at = Instant::now();
    assert!(
        pending.await.unwrap().is_err(),
        "the killed process answered"
    );
    killed_at
}

/// `http://HOST:PORT/PATH` as its origin and its path.
fn split_url(url: &str) -> (&str, &str) {
    let path_at = url["http://".len()..].find('/').unwrap() + "http://".len();
    url.split_at(path_at)
}

#[tokio::test]
async fn a_takeover_of_asg_set_capacity_sets_the_count_the_dead_attempt_set_once() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("take-asg");
    broken_group(&fleet, &lb).await;
    let case = Case {
        moto: &moto,
        fleet: &fleet,
        lb: lb.clone(),
        entry: Box::new(|_| {
            "kind = \"asg-set-capacity\"\nadd = 1\nmax_desired = 10\nverify_secs = 1\n".into()
        }),
        call: Call::Aws("SetDesiredCapacity"),
    };
    let taken = take_over(&case).await;
    assert_eq!(
        taken.answer["scaled-resources"],
        json!([lb]),
        "{}",
        taken.answer
    );
    assert_eq!(case.call.count(&moto).await, 1, "one SetDesiredCapacity");
    let group = group(&fleet, &lb).await;
    assert_eq!(group.desired_capacity(), Some(4), "three and one added");
    assert_eq!(intent(&group), Some(format!("{}/4", taken.dead_run)));
}

#[tokio::test]
async fn a_takeover_of_ecs_redeploy_follows_the_deployment_the_dead_attempt_started() {
    let moto = Moto::start(&["MOTO_ECS_SERVICE_RUNNING=2"]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("take-ecs");
    fleet.balancer_with(&lb, 2, 1).await;
    let ecs = service(&fleet, &lb, 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let name = lb.clone();
    let case = Case {
        moto: &moto,
        fleet: &fleet,
        lb: lb.clone(),
        entry: Box::new(move |_| {
            format!(
                "kind = \"ecs-redeploy\"\ncluster = \"{name}\"\nservice = \"{name}\"\n\
                 recent_change_secs = 1\nverify_secs = 1\n"
            )
        }),
        call: Call::Aws("UpdateService"),
    };
    let taken = take_over(&case).await;
    assert_eq!(
        taken.answer["redeployed-resources"],
        json!([lb]),
        "{}",
        taken.answer
    );
    assert_eq!(case.call.count(&moto).await, 1, "one UpdateService");
    let service = read(&ecs, &lb).await;
    let primary = service.deployments()[0].id().unwrap();
    let handle = taken.answer["actions"][0]["handle"].as_str().unwrap();
    assert!(handle.ends_with(primary), "{handle} follows {primary}");
}

#[tokio::test]
async fn a_takeover_of_rds_reboot_does_not_reboot_again() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("take-rds");
    fleet.balancer_with(&lb, 2, 1).await;
    database(&fleet, &lb).await;
    let name = lb.clone();
    let case = Case {
        moto: &moto,
        fleet: &fleet,
        lb: lb.clone(),
        entry: Box::new(move |_| {
            format!("kind = \"rds-reboot\"\ndb_instance = \"{name}\"\nverify_secs = 1\n")
        }),
        call: Call::Aws("RebootDBInstance"),
    };
    let taken = take_over(&case).await;
    assert_eq!(
        taken.answer["rebooted-databases"],
        json!([lb]),
        "{}",
        taken.answer
    );
    assert_eq!(case.call.count(&moto).await, 1, "one RebootDBInstance");
}

#[tokio::test]
async fn a_takeover_of_webhook_sends_again_under_the_dead_attempts_idempotency_key() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("take-hook");
    fleet.balancer_with(&lb, 2, 1).await;
    let (receiver, url) = Receiver::start(&[200]).await;
    let keep = tempfile::tempdir().unwrap();
    let secret = keep.path().join("hook-secret");
    std::fs::write(&secret, crate::webhook_action::SECRET).unwrap();
    let case = Case {
        moto: &moto,
        fleet: &fleet,
        lb: lb.clone(),
        entry: Box::new(move |url| {
            format!(
                "kind = \"webhook\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n\
                 body = '{{\"target\": {{{{ target|tojson }}}}}}'\nverify_secs = 1\n",
                secret.display()
            )
        }),
        call: Call::Hook(receiver.clone(), url),
    };
    let taken = take_over(&case).await;
    assert_eq!(
        taken.answer["webhooked-resources"],
        json!([lb]),
        "{}",
        taken.answer
    );
    let calls = receiver.calls().await;
    let keys: Vec<String> = calls.iter().map(verified).collect();
    let key = format!("{}/heal", taken.dead_run);
    assert_eq!(keys, [key.clone(), key], "sent twice, under one key");
}
