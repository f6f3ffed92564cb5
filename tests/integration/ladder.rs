//! The escalation ladder and relapse detection against moto, with the test playing the fleet: a reboot that
//! fixes an instance, one that does not (the next step replaces it, in the same episode), an escalation paged
//! to a PagerDuty-shaped receiver and resolved when the capacity comes back, replacements that keep breaking,
//! and a reboot's check that comes due while its process is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use reflex::audit::AuditRecord;
use serde_json::{Value, json};

use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, reflex, remediate_at};
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, Moto, TestApp, config_text, unique};

/// An approver's token (approve mode).
const APPROVER: &str = "ladder-approver-token-0123456789";

/// Remediation settings for a fleet the test plays: no grace, no cooldown, quick checks, room to act.
const QUICK: &str = "grace_period_secs = 0\ncooldown_secs = 0\nverify_after_secs = 2\nreboot_verify_secs = 2\n\
                     max_removed_fraction_per_hour = 1.0\nmax_unhealthy_fraction = 0.9\n";

/// A target that reboots first, then replaces.
fn ladder_target(lb: &str) -> String {
    format!("\n[[targets]]\nload_balancer = \"{lb}\"\nladder = [\"reboot\", \"replace\"]\n")
}

/// A local receiver of PagerDuty Events API v2 posts: the bodies it got, in order.
async fn pagerduty() -> (String, Arc<tokio::sync::Mutex<Vec<Value>>>) {
    type Bodies = Arc<tokio::sync::Mutex<Vec<Value>>>;
    async fn enqueue(State(bodies): State<Bodies>, body: axum::body::Bytes) -> StatusCode {
        bodies
            .lock()
            .await
            .push(serde_json::from_slice(&body).unwrap());
        StatusCode::ACCEPTED
    }
    let bodies: Bodies = Arc::default();
    let router = Router::new()
        .route("/v2/enqueue", post(enqueue))
        .with_state(Arc::clone(&bodies));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}/v2/enqueue", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, bodies)
}

/// The steps of the episode `record_id` belongs to, as (step, record id).
async fn story(app: &TestApp, record_id: &str) -> Vec<(String, String)> {
    let (_, steps) = app
        .audit
        .episode_story(record_id)
        .await
        .unwrap()
        .expect("an episode");
    steps.into_iter().map(|s| (s.step, s.record_id)).collect()
}

#[tokio::test]
async fn a_reboot_that_brings_the_instance_back_is_recovered_and_nothing_is_terminated() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ladder-fixed");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], QUICK) + &ladder_target(&lb);
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{run}");
    // A stopped instance cannot be rebooted: reflex starts it.
    assert_eq!(run["rebooted-instance-ids"], json!(bad), "{run}");
    assert_eq!(run["terminated-instance-ids"], json!([]));
    let run_id = run["audit-id"].as_str().unwrap();
    let record = app.audit.get(run_id).await.unwrap().unwrap();
    assert_eq!(
        record.detail["actions"][0]["action"], "start",
        "{:?}",
        record.detail
    );
    // The test brings it back InService before the check (starting it again is harmless).
    fleet.start(&bad).await;
    let check = app.check_of(run_id).await;
    assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
    assert_eq!(check.detail["ladder"]["recovered"], json!(bad));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fleet.none_terminated(&bad).await, "nothing terminated");
    assert!(
        !app.audit_records()
            .await
            .iter()
            .any(|r| r.source.as_str() == "ladder"),
        "no next step"
    );
    assert_eq!(
        story(&app, run_id).await,
        [
            ("reboot".into(), run_id.into()),
            ("check".into(), check.id.clone())
        ]
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"reflex_ladder_steps_total{step="reboot"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reboot_that_does_not_fix_it_is_replaced_then_escalated_paged_and_resolved_in_one_episode()
 {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ladder-escalate");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (url, pages) = pagerduty().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("routing-key");
    std::fs::write(&key_file, "R0UTINGKEY0123456789\n").unwrap();
    // A cooldown far longer than the test: the reboot's own action is no cooldown for the next step.
    let remediation = QUICK.replace("cooldown_secs = 0", "cooldown_secs = 600");
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        &remediation,
    ) + &ladder_target(&lb)
        + &format!(
            "\n[[notify]]\nurl = \"{url}\"\nformat = \"pagerduty\"\nrouting_key_file = \"{}\"\n",
            key_file.display()
        );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (_, run) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(run["rebooted-instance-ids"], json!(bad), "{run}");
    let first = run["audit-id"].as_str().unwrap().to_owned();
    // The reboot does not fix it: the instance goes down again before its check.
    fleet.stop(&bad).await;
    let check = app.check_of(&first).await;
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    assert_eq!(check.detail["ladder"]["still_down"], json!(bad));
    // The next step: a new recorded run of the same episode, past the cooldown the reboot started.
    let replace = app
        .record_where("the replacement", |r| r.source.as_str() == "ladder")
        .await;
    assert_eq!(
        replace.outcome.as_str(),
        "completed",
        "{:?}",
        replace.detail
    );
    assert_eq!(
        replace.detail["answer"]["terminated-instance-ids"],
        json!(bad)
    );
    assert_eq!(replace.detail["episode"]["id"], first.as_str());
    assert_eq!(check.detail["next"]["run"], replace.id.as_str());
    // After replacement the target stays short (the test adds no instance): escalated.
    let escalated = app.check_of(&replace.id).await;
    assert_eq!(
        escalated.outcome.as_str(),
        "not-recovered",
        "{:?}",
        escalated.detail
    );
    assert_eq!(escalated.detail["breaker"]["tripped"], "escalated");
    // Each run's page finds its own check: the reboot's, then the replacement's.
    for (run, checked) in [(&first, &check), (&replace.id, &escalated)] {
        let found = app.audit.recovery_of(run).await.unwrap();
        assert_eq!(found.map(|found| found.id), Some(checked.id.clone()));
    }
    let (_, refused) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(refused["refused-rule"], "breaker-open", "{refused}");
    let dedup_key = format!("reflex/123456789012/us-east-1/{lb}/{first}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pages.lock().await.is_empty() {
        assert!(Instant::now() < deadline, "never paged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trigger = pages.lock().await[0].clone();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(trigger["routing_key"], "R0UTINGKEY0123456789");
    assert_eq!(trigger["dedup_key"], dedup_key.as_str());
    let tried: Vec<&str> = trigger["payload"]["custom_details"]["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        tried,
        ["reboot", "check", "replace", "escalated"],
        "{trigger}"
    );
    // The test brings capacity back; a later check sees it and resolves the same incident.
    let fresh = fleet.launch(1, &[]).await;
    fleet.register(&lb, &fresh).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pages.lock().await.len() < 2 {
        assert!(Instant::now() < deadline, "never resolved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resolve = pages.lock().await[1].clone();
    assert_eq!(
        resolve,
        json!({"routing_key": "R0UTINGKEY0123456789", "event_action": "resolve", "dedup_key": dedup_key})
    );
    let steps: Vec<String> = story(&app, &first)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        steps,
        ["reboot", "check", "replace", "escalated", "resolved"]
    );
    let metrics = app.get_text("/metrics").await;
    for line in [
        r#"reflex_ladder_steps_total{step="reboot"} 1"#,
        r#"reflex_ladder_steps_total{step="replace"} 1"#,
        r#"reflex_escalations_total{reason="escalated"} 1"#,
        r#"reflex_breaker_trips_total{reason="escalated"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn replacements_that_keep_breaking_open_the_breaker_relapsing_and_the_next_is_not_replaced() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("relapse");
    let (_, first_bad) = fleet.balancer_with(&lb, 3, 1).await;
    let (url, pages) = pagerduty().await;
    let dir = tempfile::tempdir().unwrap();
    let remediation =
        format!("{QUICK}verify_after_secs = 3\nrelapse_limit = 2\nrelapse_window_secs = 3600\n")
            .replace("verify_after_secs = 2\n", "");
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        &remediation,
    ) + ADMIN
        + &format!("\n[[notify]]\nurl = \"{url}\"\nformat = \"json\"\nevents = [\"escalated\"]\n");
    let app = TestApp::spawn_with_config(dir, &text).await;
    let mut runs = Vec::new();
    let mut broken = first_bad;
    for round in 0..2 {
        let (_, run) = app.remediate(json!({"load_balancer": lb})).await;
        assert_eq!(
            run["terminated-instance-ids"],
            json!(broken),
            "round {round}: {run}"
        );
        let run_id = run["audit-id"].as_str().unwrap().to_owned();
        // What an Auto Scaling group would do: a replacement joins before the check ...
        let replacement = fleet.launch(1, &[]).await;
        fleet.register(&lb, &replacement).await;
        let check = app.check_of(&run_id).await;
        assert_eq!(check.outcome.as_str(), "recovered", "{:?}", check.detail);
        assert_eq!(
            check.detail["joined"][0]["instance_id"],
            replacement[0].as_str()
        );
        // ... and then it breaks too.
        fleet.stop(&replacement).await;
        runs.push(run_id);
        broken = replacement;
    }
    // The first relapse was replaced (one, under the limit of two); this is the second.
    let (_, refused) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(refused["refused-rule"], "relapsing", "{refused}");
    assert_eq!(refused["terminated-instance-ids"], json!([]));
    assert!(
        fleet.none_terminated(&broken).await,
        "the third is not replaced"
    );
    let record = app
        .audit
        .get(refused["audit-id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.detail["breaker"]["tripped"], "relapsing",
        "{:?}",
        record.detail
    );
    let (_, again) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(again["refused-rule"], "breaker-open", "{again}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pages.lock().await.is_empty() {
        assert!(Instant::now() < deadline, "no escalation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let escalation = pages.lock().await[0].clone();
    assert_eq!(escalation["event"], "escalated", "{escalation}");
    let text = escalation["text"].as_str().unwrap();
    for named in runs.iter().chain(&broken) {
        assert!(text.contains(named.as_str()), "{named} in {text}");
    }
    assert!(text.contains("image ami-"), "{text}");
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("reflex_relapses_total 2"), "{metrics}");
    assert!(
        metrics.contains(r#"reflex_escalations_total{reason="relapsing"} 1"#),
        "{metrics}"
    );
    // A person looked and reset the breaker: the relapse was counted, and the instance is replaced now.
    let reset = json!({"target": lb, "reason": "new image rolled out"});
    let (status, answer) = app
        .post("/admin/breaker/reset", Some(ADMIN_TOKEN), reset.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, replaced) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(
        replaced["terminated-instance-ids"],
        json!(broken),
        "{replaced}"
    );
}

#[tokio::test]
async fn in_approve_mode_each_step_of_the_ladder_is_held_and_the_approved_next_step_replaces() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ladder-approve");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let remediation = format!("{QUICK}mode = \"approve\"\n");
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[],
        &remediation,
    ) + &ladder_target(&lb)
        + &format!("\n[approvals]\ntokens = [\"{APPROVER}\"]\n");
    let app = TestApp::spawn_with_config(dir, &text).await;
    let approve = async |id: &str| {
        let path = format!("/admin/approvals/{id}/approve");
        let (status, voted) = app.post(&path, Some(APPROVER), "{}").await;
        assert_eq!(status, 200, "{voted}");
        voted
    };
    let (_, held) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(held["approval"]["verb"], "reboot", "{held}");
    assert_eq!(held["approval"]["would-replace"], json!(bad));
    let voted = approve(held["approval"]["id"].as_str().unwrap()).await;
    assert_eq!(
        voted["summary"]["rebooted-instance-ids"],
        json!(bad),
        "{voted}"
    );
    let first = voted["summary"]["audit-id"].as_str().unwrap().to_owned();
    fleet.stop(&bad).await;
    app.check_of(&first).await;
    // The next step is held too, as that step: approved, it replaces (not reboots again) in the same episode.
    let next = app
        .record_where("the held next step", |r| {
            r.source.as_str() == "ladder" && r.outcome.as_str() == "held"
        })
        .await;
    let answer = &next.detail["answer"];
    assert!(
        answer["approval"].get("verb").is_none(),
        "would replace: {answer}"
    );
    let voted = approve(&next.id).await;
    assert_eq!(
        voted["summary"]["terminated-instance-ids"],
        json!(bad),
        "{voted}"
    );
    let replaced = voted["summary"]["audit-id"].as_str().unwrap();
    let steps: Vec<(String, String)> = story(&app, replaced).await;
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    // The held next step and the approved one that acted are both its `replace` step.
    assert_eq!(
        names,
        ["reboot", "check", "replace", "replace"],
        "{steps:?}"
    );
    assert_eq!(steps[0].1, first);
}

#[tokio::test]
async fn a_reboot_check_due_while_its_process_is_down_runs_once_after_a_restart() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ladder-restart");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(&moto.endpoint, &dir.path().join("audit.db"), &[], QUICK) + &ladder_target(&lb);
    let client = reqwest::Client::new();
    let mut first = ReflexProcess::start(dir.path(), &text, &client).await;
    let (_, run) = remediate_at(&client, &first.base, &lb).await;
    assert_eq!(run["rebooted-instance-ids"], json!(bad), "{run}");
    first.child.kill().unwrap();
    let _ = first.child.wait();
    fleet.stop(&bad).await;
    // Past the check's due time, with nobody to run it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _second = ReflexProcess::start(dir.path(), &text, &client).await;
    let config = dir.path().join("reflex.toml");
    let sources = || {
        let out = reflex([
            "audit",
            "list",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|record| record["source"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sources().iter().any(|s| s == "ladder") {
        assert!(Instant::now() < deadline, "the next step never ran");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = sources();
    assert_eq!(
        seen.iter().filter(|s| *s == "ladder").count(),
        1,
        "{seen:?}"
    );
    assert!(!fleet.none_terminated(&bad).await, "replaced once");
}

#[tokio::test]
async fn a_reboot_check_due_while_its_replica_is_down_runs_once_on_another() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("ladder-replica");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let db = Postgres::fresh().await;
    let replica = async || {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(&moto.endpoint, &dir.path().join("unused.db"), &[], QUICK)
            + &ladder_target(&lb);
        TestApp::spawn_with_config(dir, &db.config(&text)).await
    };
    let rebooter = replica().await;
    let other = replica().await;
    let (_, run) = rebooter.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(run["rebooted-instance-ids"], json!(bad), "{run}");
    rebooter.stop().await;
    fleet.stop(&bad).await;
    let run_id = run["audit-id"].as_str().unwrap();
    let check = other.check_of(run_id).await;
    assert_eq!(
        check.outcome.as_str(),
        "not-recovered",
        "{:?}",
        check.detail
    );
    other
        .record_where("the replacement", |r| r.source.as_str() == "ladder")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = other.audit_records().await;
    let count = |f: &dyn Fn(&AuditRecord) -> bool| records.iter().filter(|r| f(r)).count();
    assert_eq!(
        count(&|r| r.source.as_str() == "ladder"),
        1,
        "one next step"
    );
    assert_eq!(
        count(&|r| r.detail["ladder"]["run"] == run_id),
        1,
        "one check"
    );
    assert!(!fleet.none_terminated(&bad).await);
}
