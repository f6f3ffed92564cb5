//! Chaos: three `reflex serve` replicas on one PostgreSQL server (the test's own), four classic ELB targets,
//! alerts from SNS (genuinely signed by moto, some redelivered), Alertmanager and manual requests arriving
//! throughout. For `CHAOS` (60 s) a random replica is killed with -9 every few seconds and started again,
//! PostgreSQL is stopped and started once, and AWS answers slowly, drops connections and throttles (a fault
//! relay in front of moto). At the end, against moto's own request log and the trail: no run acted above its
//! cap, no budget was exceeded, every instance was acted on at most once, every acknowledged answer's record is
//! present, the chain verifies, and every replica answered `/readyz` 200 within 30 s of PostgreSQL's return.
//! Its own test binary, so that its load does not disturb the timing of other tests. Loopback only.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::fault_relay::FaultRelay;
use common::own_postgres::OwnPostgres;
use common::postgres::with_store;
use common::process::{ReflexProcess, reflex};
use common::sns::{alarm, captured_delivery, topic};
use common::{Fleet, MANUAL_TOKEN, Moto, config_text, unique};

/// How long the chaos lasts.
const CHAOS: Duration = Duration::from_secs(60);
/// Targets, and instances behind each (one broken at the start).
const TARGETS: usize = 4;
const INSTANCES: i32 = 8;
/// The limits the checks hold reflex to.
const PER_RUN: usize = 1;
const PER_TARGET_PER_HOUR: usize = 3;
const ALL_PER_HOUR: usize = 8;
/// How soon after PostgreSQL's return every replica must be ready again.
const READY_AGAIN: Duration = Duration::from_secs(30);
const AM_TOKEN: &str = "alertmanager-token-0123456789";

/// Everything the senders were answered.
#[derive(Default)]
struct Answers {
    by_status: BTreeMap<String, usize>,
    /// The audit ids of every acknowledged (200) answer.
    acknowledged: HashSet<String>,
    sent: usize,
}

impl Answers {
    fn count(
        &mut self,
        source: &str,
        status: Option<u16>,
        request_id: Option<String>,
        body: &Value,
    ) {
        self.sent += 1;
        let status = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        let code = body["error"]
            .as_str()
            .map(|code| format!(" {code}"))
            .unwrap_or_default();
        *self
            .by_status
            .entry(format!("{source} {status}{code}"))
            .or_default() += 1;
        if status == "200" {
            // The answer's request id is its audit record's id; a 200 without one would be unaccountable.
            self.acknowledged.insert(
                request_id.unwrap_or_else(|| format!("a 200 without x-request-id: {body}")),
            );
            let summaries = match body.get("results") {
                Some(Value::Array(results)) => results.clone(),
                _ => vec![body.clone()],
            };
            for summary in summaries {
                if let Some(id) = summary["audit-id"].as_str() {
                    self.acknowledged.insert(id.to_owned());
                }
            }
        }
    }
}

/// The replicas' current addresses (a restarted replica gets a new port).
type Bases = Arc<Mutex<Vec<String>>>;

fn pick<T: Clone>(items: &[T], roll: &mut u64) -> T {
    *roll ^= *roll << 13;
    *roll ^= *roll >> 7;
    *roll ^= *roll << 17;
    items[(*roll % items.len() as u64) as usize].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_a_database_restart_and_a_faulty_aws_break_no_promise() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("chaos seed {seed}");
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let postgres = OwnPostgres::start();

    // Four targets, one broken instance each; more break during the chaos.
    let mut lbs = Vec::new();
    let mut owner_of: HashMap<String, String> = HashMap::new();
    let mut healthy: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..TARGETS {
        let lb = unique("chaos");
        let (good, bad) = fleet.balancer_with(&lb, INSTANCES - 1, 1).await;
        for id in good.iter().chain(&bad) {
            owner_of.insert(id.clone(), lb.clone());
        }
        healthy.insert(lb.clone(), good);
        lbs.push(lb);
    }
    // Signed SNS deliveries, captured before the chaos (moto signs each with its own certificate).
    let topic_arn = topic(&fleet, &unique("chaos")).await;
    let mut deliveries = Vec::new();
    for round in 0..3 {
        for lb in &lbs {
            let message = alarm(lb, "ALARM").replace("10:00:00", &format!("10:0{round}:00"));
            deliveries.push(captured_delivery(&fleet, &topic_arn, &message).await);
        }
    }

    let relay = FaultRelay::start(&moto.endpoint, seed).await;
    let dir = tempfile::tempdir().unwrap();
    let remediation = format!(
        "grace_period_secs = 0\ncooldown_secs = 0\nmax_terminations_per_run = {PER_RUN}\n\
         max_unhealthy_fraction = 0.6\nmax_acted_per_hour = {PER_TARGET_PER_HOUR}\n\
         max_acted_per_hour_all = {ALL_PER_HOUR}\nbreaker_after_failures = 1000\n"
    );
    let targets: Vec<&str> = lbs.iter().map(String::as_str).collect();
    let mut text = config_text(
        &relay.endpoint,
        &dir.path().join("unused.db"),
        &targets,
        &remediation,
    );
    text.push_str(&format!(
        "\n[sns]\ntopic_arns = [\"{topic_arn}\"]\ncertificates_from = \"endpoint\"\n\
         \n[alertmanager]\ntokens = [\"{AM_TOKEN}\"]\n"
    ));
    let text = with_store(&text, &postgres.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    for replica_dir in &dirs {
        replicas.push(ReflexProcess::start(replica_dir.path(), &text, &client).await);
    }
    let bases: Bases = Arc::new(Mutex::new(
        replicas
            .iter()
            .map(|replica| replica.base.clone())
            .collect(),
    ));
    moto.start_recording().await;
    relay.faults(true);
    let started = Instant::now();
    let answers = Arc::new(Mutex::new(Answers::default()));

    // Alerts throughout: an SNS delivery (a redelivery when it was sent before), an Alertmanager group or a
    // manual request, to a random replica; a sender that got no 200 sends again later, as SNS does.
    let senders: Vec<_> = (0..3u64)
        .map(|sender| {
            let (client, bases, answers) =
                (client.clone(), Arc::clone(&bases), Arc::clone(&answers));
            let (lbs, deliveries) = (lbs.clone(), deliveries.clone());
            tokio::spawn(async move {
                let mut roll = seed.wrapping_add(sender * 7919) | 1;
                let mut n = 0;
                while started.elapsed() < CHAOS {
                    n += 1;
                    let base = pick(&bases.lock().unwrap().clone(), &mut roll);
                    let lb = pick(&lbs, &mut roll);
                    let (source, request) = match n % 3 {
                        0 => (
                            "sns",
                            client
                                .post(format!("{base}/sns"))
                                .body(pick(&deliveries, &mut roll)),
                        ),
                        1 => {
                            let mut payload: Value = serde_json::from_slice(
                                &std::fs::read(concat!(
                                    env!("CARGO_MANIFEST_DIR"),
                                    "/tests/vectors/alertmanager/am_v4_firing_pingme.json"
                                ))
                                .unwrap(),
                            )
                            .unwrap();
                            payload["alerts"][0]["labels"]["load_balancer"] = json!(lb);
                            payload["groupKey"] = json!(format!("{{}}:{{chaos=\"{sender}-{n}\"}}"));
                            (
                                "alertmanager",
                                client
                                    .post(format!("{base}/alertmanager"))
                                    .bearer_auth(AM_TOKEN)
                                    .header("content-type", "application/json")
                                    .body(payload.to_string()),
                            )
                        }
                        _ => (
                            "manual",
                            client
                                .post(format!("{base}/remediate"))
                                .bearer_auth(MANUAL_TOKEN)
                                .json(&json!({"load_balancer": lb})),
                        ),
                    };
                    let (status, id, body) = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let id = response
                                .headers()
                                .get("x-request-id")
                                .and_then(|value| value.to_str().ok())
                                .map(str::to_owned);
                            (
                                Some(status),
                                id,
                                response.json().await.unwrap_or(Value::Null),
                            )
                        }
                        Err(_) => (None, None, Value::Null),
                    };
                    answers.lock().unwrap().count(source, status, id, &body);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        })
        .collect();

    // More instances break as time goes on.
    let breaker = {
        let (fleet_endpoint, lbs) = (moto.endpoint.clone(), lbs.clone());
        let mut healthy = healthy.clone();
        tokio::spawn(async move {
            let fleet = Fleet::new(&fleet_endpoint).await;
            let mut roll = seed.rotate_left(17) | 1;
            let mut stopped = Vec::new();
            while started.elapsed() < CHAOS {
                tokio::time::sleep(Duration::from_secs(6)).await;
                let lb = pick(&lbs, &mut roll);
                if let Some(id) = healthy.get_mut(&lb).and_then(|good| good.pop()) {
                    fleet.stop(std::slice::from_ref(&id)).await;
                    stopped.push(id);
                }
            }
            stopped
        })
    };

    // The conductor: kills and restarts replicas, and restarts PostgreSQL once, half-way.
    let mut roll = seed.rotate_left(29) | 1;
    let mut kills = 0;
    let mut database_restarted = false;
    let mut ready_again = Duration::ZERO;
    while started.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_secs(4)).await;
        if !database_restarted && started.elapsed() > CHAOS / 2 {
            database_restarted = true;
            postgres.stop();
            tokio::time::sleep(Duration::from_secs(3)).await;
            postgres.resume();
            let back = Instant::now();
            for replica in &replicas {
                while client
                    .get(format!("{}/readyz", replica.base))
                    .send()
                    .await
                    .map_or(true, |response| response.status() != 200)
                {
                    assert!(
                        back.elapsed() < READY_AGAIN,
                        "{} not ready {READY_AGAIN:?} after PostgreSQL came back",
                        replica.base
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            ready_again = back.elapsed();
            continue;
        }
        let victim = pick(&[0usize, 1, 2], &mut roll);
        replicas[victim].child.kill().unwrap(); // SIGKILL
        replicas[victim].child.wait().unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        replicas[victim] = ReflexProcess::start(dirs[victim].path(), &text, &client).await;
        bases.lock().unwrap()[victim] = replicas[victim].base.clone();
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let stopped = breaker.await.unwrap();
    relay.faults(false);
    assert!(database_restarted);
    // Runs still under way finish (or their process is stopped cleanly) before the checks.
    for replica in &replicas {
        replica.signal("TERM");
    }
    for replica in &mut replicas {
        replica.exit_within(Duration::from_secs(30)).await;
    }

    // moto's own log: each instance acted on at most once, the budgets held.
    let mut acted: HashMap<String, usize> = HashMap::new();
    let mut widest_call = 0;
    for form in moto.recorded_forms().await {
        let action = form.iter().find(|(key, _)| key == "Action");
        if action.is_some_and(|(_, value)| value == "TerminateInstances") {
            let instances: Vec<&String> = form
                .iter()
                .filter(|(key, _)| key.starts_with("InstanceId"))
                .map(|(_, value)| value)
                .collect();
            widest_call = widest_call.max(instances.len());
            for instance in instances {
                *acted.entry(instance.clone()).or_default() += 1;
            }
        }
    }
    let mut per_target: HashMap<&str, usize> = HashMap::new();
    for instance in acted.keys() {
        *per_target.entry(owner_of[instance].as_str()).or_default() += 1;
    }
    let config = dirs[0].path().join("reflex.toml");
    let listed = reflex([
        "audit",
        "list",
        "--json",
        "--limit",
        "100000",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let records: Vec<Value> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        let rule = record["detail"]["answer"]["refused-rule"]
            .as_str()
            .or(record["error"].as_str())
            .unwrap_or(record["outcome"].as_str().unwrap_or_default());
        *by_rule.entry(rule.to_owned()).or_default() += 1;
    }
    let late = records
        .iter()
        .filter(|record| record["detail"]["committed_late"].is_object())
        .count();
    let answers = answers.lock().unwrap();
    let faults = &relay.counts;
    let load = std::sync::atomic::Ordering::SeqCst;
    let (slow, dropped, throttled) = (
        faults.slow.load(load),
        faults.dropped.load(load),
        faults.throttled.load(load),
    );
    println!(
        "chaos: {} alerts sent, answers {:?}, {} acknowledged; {kills} kills, PostgreSQL restarted once (replicas \
         ready {ready_again:?} after it came back); AWS connections relayed {}, slow {slow}, dropped {dropped}, \
         throttled {throttled}; {} instances replaced ({per_target:?}); {} records in the trail ({late} written \
         late, after a failed commit), by outcome or rule: {by_rule:?}",
        answers.sent,
        answers.by_status,
        answers.acknowledged.len(),
        faults.relayed.load(load),
        acted.len(),
        records.len(),
    );

    // moto's own log: each instance acted on at most once, no call above the cap, the budgets held, no instance
    // that never broke touched.
    for (instance, times) in &acted {
        assert_eq!(*times, 1, "{instance} was terminated {times} times");
    }
    assert!(
        widest_call <= PER_RUN,
        "one TerminateInstances for {widest_call} instances"
    );
    for (target, count) in &per_target {
        assert!(
            *count <= PER_TARGET_PER_HOUR,
            "{target}: {count} instances in the hour"
        );
    }
    assert!(
        acted.len() <= ALL_PER_HOUR,
        "{} instances in all",
        acted.len()
    );
    let stopped: HashSet<String> = stopped.into_iter().collect();
    for (target, good) in &healthy {
        for id in good.iter().filter(|id| !stopped.contains(*id)) {
            assert!(
                !acted.contains_key(id),
                "{id} of {target} was healthy and was terminated"
            );
        }
    }

    // The trail: every run within its cap, every acknowledged answer recorded, the chain intact.
    for record in &records {
        let count = record["acted"].as_u64().unwrap_or(0) as usize;
        assert!(count <= PER_RUN, "a run above its cap: {record}");
    }
    let ids: HashSet<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
    let missing: Vec<&String> = answers
        .acknowledged
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the trail: {missing:?}"
    );
    let verified = reflex(["audit", "verify", "--config", config.to_str().unwrap()]);
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // The chaos happened: every kind of fault fired, and enough alerts were answered to mean something.
    assert!(
        slow > 0 && dropped > 0 && throttled > 0,
        "faults {slow}/{dropped}/{throttled}"
    );
    assert!(kills >= 5, "{kills} kills");
    // Every alert was genuine: a fault answered 4xx would make SNS and Alertmanager drop it for good.
    let refused: Vec<&String> = answers
        .by_status
        .keys()
        .filter(|answer| answer.contains(" 4"))
        .collect();
    assert!(refused.is_empty(), "genuine alerts refused: {refused:?}");
    assert!(
        answers.acknowledged.len() > 10,
        "too few alerts were answered for the test to mean anything"
    );
}
