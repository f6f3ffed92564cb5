//! `reflex rules replay` on a trail the server itself wrote, and on a seeded one: Alertmanager alerts that a
//! rule took are tried again under a config with a new rule ahead of it, and the report says, rule by rule,
//! which alerts would move, what the new rule acts on and that its observe mode would hold it; a week and a day
//! of alerts seeded into the trail are replayed back to `--since 7d` and no further. A replay makes no AWS call
//! and adds nothing to the trail.

use serde_json::json;

use crate::common::process::reflex;
use crate::common::{Fleet, Moto, TestApp, config_text, unique};

/// Alertmanager's bearer token.
const TOKEN: &str = "replay-alertmanager-token-0123456789";

/// The rule in production: every ServiceDown alert reboots its instance.
const SERVING: &str = r#"
[[rules]]
name = "service-down"
sources = ["alertmanager"]
match = { labels = { alertname = "ServiceDown" } }
ladder = ["reboot"]
cooldown_secs = 0
"#;

/// The change under review: kafka's alerts go to a rule of their own, in observe mode, ahead of it.
const CHANGED: &str = r#"
[[rules]]
name = "kafka-down"
sources = ["alertmanager"]
match = { labels = { alertname = "ServiceDown", job = "kafka" } }
ladder = ["reboot"]
mode = "observe"
"#;

/// One Alertmanager delivery: ServiceDown for `job` on `host`.
fn delivery(job: &str, host: &str) -> String {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{job=\"{job}\",host=\"{host}\"}}"), "status": "firing",
        "receiver": "reflex",
        "alerts": [{"status": "firing", "startsAt": "2026-12-07T10:00:00Z",
                    "labels": {"alertname": "ServiceDown", "job": job, "instance": format!("{host}:9100")}}],
    })
    .to_string()
}

#[tokio::test]
async fn a_replay_lists_the_alerts_a_changed_rule_would_take_and_touches_nothing() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("replay-web");
    fleet.balancer_with(&lb, 2, 0).await;
    let kafka = fleet.launch(2, &[]).await;
    let web = fleet.launch(1, &[]).await;
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("audit.db");
    let base = config_text(&moto.endpoint, &db, &[&lb], "grace_period_secs = 0\n")
        + &format!("\n[alertmanager]\ntokens = [\"{TOKEN}\"]\n");
    let app =
        TestApp::spawn_with_config(tempfile::tempdir().unwrap(), &(base.clone() + SERVING)).await;
    for (job, host) in [("kafka", &kafka[0]), ("kafka", &kafka[1]), ("web", &web[0])] {
        let (status, body) = app
            .post("/alertmanager", Some(TOKEN), delivery(job, host))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["rule"], "service-down", "{body}");
    }
    app.stop().await;
    let kept = records_in(&db).await;

    let changed = keep.path().join("changed.toml");
    std::fs::write(&changed, base + CHANGED + SERVING).unwrap();
    moto.start_recording().await;
    let text = replayed_since(&changed, "1h");
    assert!(
        text.contains(": 2 would now come to another rule"),
        "{text}"
    );
    assert!(
        text.contains("rule \"service-down\":\n  would no longer take: 2 to rule \"kafka-down\"\n"),
        "{text}"
    );
    let mut hosts = kafka.clone();
    hosts.sort();
    assert!(
        text.contains(&format!(
            "rule \"kafka-down\":\n  would now take: 2 from rule \"service-down\"\n  would act on: {}\n  2 of them held: observe mode",
            hosts.join(", ")
        )),
        "{text}"
    );
    assert!(
        !text.contains(&web[0]),
        "the web alert stays with its rule: {text}"
    );

    // The same, as JSON: each moved alert with its record.
    let json_out = reflex([
        "rules",
        "replay",
        "--config",
        changed.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(report["alerts"], 3, "{report}");
    assert_eq!(report["moved"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["moved"][0]["was"], "service-down");

    // No AWS call, and nothing added to the trail.
    assert!(moto.recorded_actions().await.is_empty(), "no AWS call");
    assert_eq!(records_in(&db).await, kept, "nothing written");
}

/// `reflex rules replay --config CONFIG --since SINCE`'s report, once it succeeded.
fn replayed_since(config: &std::path::Path, since: &str) -> String {
    let replayed = reflex([
        "rules",
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--since",
        since,
    ]);
    let text = String::from_utf8_lossy(&replayed.stdout).into_owned();
    assert!(
        replayed.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    text
}

/// How many records the trail at `db` holds.
async fn records_in(db: &std::path::Path) -> usize {
    let url = format!("sqlite://{}", db.display());
    let (store, writer) = reflex::audit::AuditStore::open(&url).await.unwrap();
    let count = store.list(1000).await.unwrap().len();
    drop(store);
    writer.finish().await;
    count
}

/// A week and a day of ServiceDown alerts seeded into the trail at `db`, one an hour back from now, each
/// taken by `service-down`: every fourth one kafka's. How many of the last seven days' were kafka's.
async fn seed_a_week(db: &std::path::Path, hosts: &[String; 2]) -> usize {
    use reflex::audit::{AuditStore, Outcome, RequestMeta, Source};
    use reflex::rules::{AlertFacts, ROUTED_NOTE, Routed};
    let url = format!("sqlite://{}", db.display());
    let (store, writer) = AuditStore::open(&url).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut kafka_this_week = 0;
    for hour in 0..8 * 24 {
        let (job, host) = if hour % 4 == 0 {
            ("kafka", &hosts[0])
        } else {
            ("web", &hosts[1])
        };
        kafka_this_week += usize::from(job == "kafka" && hour < 7 * 24);
        let labels = [
            ("alertname", "ServiceDown"),
            ("job", job),
            ("instance", &format!("{host}:9100")),
        ];
        let alert = AlertFacts {
            source: "alertmanager".to_owned(),
            name: "ServiceDown".to_owned(),
            state: "firing".to_owned(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            ..AlertFacts::default()
        };
        let mut meta = RequestMeta::new(Source::Alertmanager, None);
        meta.note(
            ROUTED_NOTE,
            [Routed {
                alert,
                rule: Some("service-down".to_owned()),
            }],
        );
        let mut record = meta.into_record(Outcome::Completed, 200, None, 0);
        record.at = now - time::Duration::hours(hour) - time::Duration::minutes(30);
        store.put(record).await.unwrap();
    }
    drop(store);
    writer.finish().await;
    kafka_this_week
}

#[tokio::test]
async fn a_seeded_week_of_alerts_is_replayed_back_to_its_first_day_and_no_further() {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let launched = fleet.launch(2, &[]).await;
    let hosts = [launched[0].clone(), launched[1].clone()];
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("audit.db");
    let kafka = seed_a_week(&db, &hosts).await;
    let kept = records_in(&db).await;
    let base = config_text(&moto.endpoint, &db, &[], "grace_period_secs = 0\n")
        + &format!("\n[alertmanager]\ntokens = [\"{TOKEN}\"]\n");
    let changed = keep.path().join("changed.toml");
    std::fs::write(&changed, base + CHANGED + SERVING).unwrap();
    moto.start_recording().await;

    let text = replayed_since(&changed, "7d");
    assert!(
        text.starts_with(&format!(
            "replayed {} alerts of {} records since ",
            7 * 24,
            7 * 24
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(": {kafka} would now come to another rule")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rule \"kafka-down\":\n  would now take: {kafka} from rule \"service-down\"\n  would act on: {}\n  {kafka} of them held: observe mode",
            hosts[0]
        )),
        "{text}"
    );
    assert!(moto.recorded_actions().await.is_empty(), "no AWS call");
    assert_eq!(records_in(&db).await, kept, "nothing written");
}
