//! Never fighting a change, end to end against moto: silences set through the CLI and the admin API (no AWS call
//! while they hold, their end announced, kept across a restart), maintenance windows, an Auto Scaling group
//! with an instance in Standby or a replacing process suspended, and a whole Availability Zone down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::process::{ReflexProcess, reflex, remediate_at};
use crate::common::{ADMIN, ADMIN_TOKEN, Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

/// Calls an `/admin` route of the server at `base` with the admin token: its status and JSON body (null when
/// there is none).
async fn admin_at(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The JSON records `reflex audit list --json` prints, newest first.
fn records(config: &str) -> Vec<Value> {
    let out = reflex([
        "audit", "list", "--config", config, "--json", "--limit", "100",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn silences_from_the_cli_and_the_api_refuse_without_aws_calls_outlive_a_restart_and_end_by_themselves()
 {
    let moto = Moto::start(&[]);
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("silence");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    ) + ADMIN;
    let client = reqwest::Client::new();
    let server_dir = tempfile::tempdir().unwrap();
    let mut server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    let config = server.config.to_str().unwrap().to_owned();

    // Set from the CLI, on the store every process shares.
    let out = reflex([
        "silence", "--config", &config, "--target", &lb, "--for", "1h", "--reason", "deploy 9",
        "--by", "ana",
    ]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = printed
        .split("(id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_owned();
    let listed = reflex(["silence", "--config", &config]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    let refused = reflex([
        "silence", "--config", &config, "--for", "45x", "--reason", "r",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a length"));

    moto.start_recording().await;
    let (status, answer) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["refused-rule"], "silenced", "{answer}");
    let sentence = answer["refused"].as_str().unwrap();
    assert!(
        sentence.contains("deploy 9") && sentence.contains("ana"),
        "{sentence}"
    );
    assert_eq!(
        fleet_calls(&moto).await,
        Default::default(),
        "no AWS call at all"
    );

    // It outlives a restart.
    server.signal("TERM");
    assert!(server.exit_within(Duration::from_secs(10)).await.success());
    let server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    moto.start_recording().await;
    let (_, answer) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(answer["refused-rule"], "silenced", "{answer}");
    assert_eq!(
        fleet_calls(&moto).await,
        Default::default(),
        "no AWS call at all"
    );
    let (_, state) = admin_at(
        &client,
        reqwest::Method::GET,
        format!("{}/admin/state", server.base),
        None,
    )
    .await;
    assert_eq!(state["silences"][0]["id"], id.as_str(), "{state}");
    assert_eq!(state["silences"][0]["by"], "ana");
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("reflex_silenced"), "{metrics}");

    // Lifted through the API, then set again for two seconds: it ends by itself, announced once.
    let lift = format!("{}/admin/silences/{id}", server.base);
    let (status, _) = admin_at(&client, reqwest::Method::DELETE, lift.clone(), None).await;
    assert_eq!(status, 200);
    let (status, _) = admin_at(&client, reqwest::Method::DELETE, lift, None).await;
    assert_eq!(status, 404);
    let silences = format!("{}/admin/silences", server.base);
    let (status, set) = admin_at(
        &client,
        reqwest::Method::POST,
        silences.clone(),
        Some(json!({"target": lb, "for": "2s", "reason": "short"})),
    )
    .await;
    assert_eq!(status, 201);
    let short_id = set["silence"]["id"].as_str().unwrap().to_owned();
    let (status, _) = admin_at(
        &client,
        reqwest::Method::POST,
        silences,
        Some(json!({"target": lb, "reason": "forever"})),
    )
    .await;
    assert_eq!(status, 400);
    let (_, answer) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(answer["refused-rule"], "silenced", "{answer}");
    assert_eq!(
        fleet_calls(&moto).await,
        Default::default(),
        "no AWS call at all"
    );

    let mut announced = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        announced = records(&config)
            .into_iter()
            .find(|r| r["detail"]["silence_end"]["id"] == short_id.as_str());
        if announced.is_some() {
            break;
        }
    }
    let announced = announced.expect("the silence's end is recorded");
    assert_eq!(announced["target"], lb.as_str());
    let (_, healed) = remediate_at(&client, &server.base, &lb).await;
    assert_eq!(healed["terminated-instance-ids"], json!(bad), "{healed}");
    let ends = records(&config)
        .into_iter()
        .filter(|r| !r["detail"]["silence_end"].is_null())
        .count();
    assert_eq!(
        ends, 1,
        "the lifted silence has no end to announce; the short one's is announced once"
    );
}

#[tokio::test]
async fn an_alert_inside_a_maintenance_window_is_refused_and_check_config_shows_the_next_three() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("window");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    ) + &format!(
        "\n[[windows]]\nname = \"always\"\ntargets = [\"{lb}\"]\n\
             days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
             start = \"00:00\"\nduration = \"1d\"\ntime_zone = \"America/New_York\"\n"
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let (status, answer) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["refused-rule"], "maintenance-window", "{answer}");
    assert_eq!(answer["terminated-instance-ids"], json!([]));
    assert!(fleet.none_terminated(&bad).await);

    let out = reflex([
        "check-config",
        "--config",
        app.config_path.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("window \"always\""), "{printed}");
    let occurrences = printed.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(occurrences, 3, "{printed}");
    assert!(printed.contains("(in force now)"), "{printed}");
    assert!(
        printed.contains("EST") || printed.contains("EDT"),
        "{printed}"
    );
}

#[tokio::test]
async fn a_group_with_an_instance_in_standby_or_replace_unhealthy_suspended_is_not_fought() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let standby_name = unique("standby");
    let (standby_group, _, _) = fleet.target_group_with(&standby_name, 1, 0).await;
    let standby_members = fleet
        .auto_scaling_group(&standby_name, &standby_group.arn, 3)
        .await;
    fleet
        .autoscaling
        .enter_standby()
        .auto_scaling_group_name(&standby_name)
        .instance_ids(&standby_members[1])
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .expect("EnterStandby");
    fleet.stop(&standby_members[..1]).await;

    let held_name = unique("held");
    let (held_group, _, _) = fleet.target_group_with(&held_name, 1, 0).await;
    let held_members = fleet
        .auto_scaling_group(&held_name, &held_group.arn, 3)
        .await;
    fleet.stop(&held_members[..1]).await;
    fleet
        .autoscaling
        .suspend_processes()
        .auto_scaling_group_name(&held_name)
        .scaling_processes("ReplaceUnhealthy")
        .send()
        .await
        .expect("SuspendProcesses");

    let text_in = |dir: &tempfile::TempDir| {
        config_text(
            &moto.endpoint,
            &dir.path().join("audit.db"),
            &[],
            PERMISSIVE,
        ) + &format!(
            "\n[[targets]]\ntarget_group = \"{standby_name}\"\naction = \"auto\"\n\
                 \n[[targets]]\ntarget_group = \"{held_name}\"\naction = \"auto\"\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let text = text_in(&dir);
    let app = TestApp::spawn_with_config(dir, &text).await;
    for (name, members, seen) in [
        (&standby_name, &standby_members, "Standby"),
        (&held_name, &held_members, "ReplaceUnhealthy"),
    ] {
        let (status, answer) = app.remediate(json!({"target_group": name})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["refused-rule"], "change-in-progress", "{answer}");
        let sentence = answer["refused"].as_str().unwrap();
        assert!(
            sentence.contains(name.as_str()) && sentence.contains(seen),
            "{sentence}"
        );
        assert_eq!(answer["asg-unhealthy-instance-ids"], json!([]));
        assert_eq!(
            fleet.asg_health(&members[0]).await.as_deref(),
            Some("HEALTHY")
        );
    }
    let records = app.audit_records().await;
    assert!(
        records
            .iter()
            .any(|r| r.detail["seen_changes"][0]["suspended"] == json!(["ReplaceUnhealthy"])),
        "what was seen is recorded"
    );

    // Once the process is resumed, the change seen stays remembered a short while by the process that saw
    // it (answered without reading AWS); another process sees the group quiet and acts.
    fleet
        .autoscaling
        .resume_processes()
        .auto_scaling_group_name(&held_name)
        .scaling_processes("ReplaceUnhealthy")
        .send()
        .await
        .expect("ResumeProcesses");
    let (_, answer) = app.remediate(json!({"target_group": held_name})).await;
    assert_eq!(answer["refused-rule"], "change-in-progress", "{answer}");
    assert_eq!(
        answer["elb-instance-ids"],
        json!([]),
        "not read again: {answer}"
    );
    let other_dir = tempfile::tempdir().unwrap();
    let other_text = text_in(&other_dir);
    let other = TestApp::spawn_with_config(other_dir, &other_text).await;
    let (_, answer) = other.remediate(json!({"target_group": held_name})).await;
    assert_eq!(
        answer["asg-unhealthy-instance-ids"],
        json!([held_members[0]]),
        "{answer}"
    );
}

#[tokio::test]
async fn a_whole_zone_down_is_refused_as_zonal_failure_and_one_instance_of_it_is_replaced() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let zone_a = format!("{}a", fleet.region());
    let zone_b = format!("{}b", fleet.region());

    let lb = unique("zonal");
    let a = fleet.launch_in(2, &zone_a).await;
    let b = fleet.launch_in(3, &zone_b).await;
    fleet.balancer(&lb, &[a.clone(), b].concat()).await;
    fleet.stop(&a).await;

    let partial_lb = unique("partial");
    let a2 = fleet.launch_in(2, &zone_a).await;
    let b2 = fleet.launch_in(3, &zone_b).await;
    fleet
        .balancer(&partial_lb, &[a2.clone(), b2].concat())
        .await;
    fleet.stop(&a2[..1]).await;

    let app = TestApp::spawn(&moto.endpoint, &[&lb, &partial_lb], PERMISSIVE).await;
    let (status, answer) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["refused-rule"], "zonal-failure", "{answer}");
    assert!(
        answer["refused"].as_str().unwrap().contains(&zone_a),
        "{answer}"
    );
    assert!(fleet.none_terminated(&a).await);

    let (_, answer) = app.remediate(json!({"load_balancer": partial_lb})).await;
    assert_eq!(
        answer["terminated-instance-ids"],
        json!([a2[0]]),
        "{answer}"
    );
}

/// The AWS calls moto recorded, but for the check of the recorded account a process starting on an existing
/// store makes with STS in the background (it may land at any time after start-up).
async fn fleet_calls(moto: &Moto) -> std::collections::HashMap<String, usize> {
    let mut calls = moto.recorded_actions().await;
    calls.remove("GetCallerIdentity");
    calls
}
