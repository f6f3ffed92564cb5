//! The `reflex` binary: `remediate` matches the HTTP summary, `audit list`, `check-config`, and an answered
//! request's audit record surviving `kill -9`.

use serde_json::{Value, json};

use crate::common::process::{ReflexProcess, reflex};
use crate::common::{Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, TestApp, config_text, unique};

fn without_audit_id(mut summary: Value) -> Value {
    summary.as_object_mut().unwrap().remove("audit-id");
    summary.as_object_mut().unwrap().remove("message");
    summary
}

#[tokio::test]
async fn cli_remediate_matches_the_http_summary() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("cli");
    let (_, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (_, over_http) = app
        .remediate(json!({"load_balancer": lb, "dry_run": true}))
        .await;

    let config = app.config_path.to_str().unwrap();
    let output = reflex([
        "remediate",
        "--config",
        config,
        "--load-balancer",
        &lb,
        "--dry-run",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let from_cli: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        without_audit_id(from_cli.clone()),
        without_audit_id(over_http)
    );
    assert_eq!(from_cli["terminated-instance-ids"], json!(bad));

    let output = reflex(["audit", "list", "--config", config, "--json"]);
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["source"], "cli");
    assert_eq!(lines[0]["id"], from_cli["audit-id"]);
    assert_eq!(lines[1]["source"], "manual");

    let output = reflex([
        "remediate",
        "--config",
        config,
        "--load-balancer",
        "not-a-target",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a configured target"));
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        config_text("http://127.0.0.1:1", &dir.path().join("a.db"), &["web"], ""),
    )
    .unwrap();
    let output = reflex(["check-config", "--config", good.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[targets]]\nload_balancer = \"web\"\n[remediation]\nmax_unhealthy_fraction = 2\n",
    )
    .unwrap();
    let output = reflex(["check-config", "--config", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("remediation.max_unhealthy_fraction"));

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let tls = dir.path().join("tls.toml");
    std::fs::write(
        &tls,
        config_text("http://127.0.0.1:1", &dir.path().join("a.db"), &["web"], "").replace(
            "max_body_bytes = 4096\n",
            &format!(
                "max_body_bytes = 4096\ntls_cert = \"{0}\"\ntls_key = \"{0}\"\n",
                not_pem.display()
            ),
        ),
    )
    .unwrap();
    let output = reflex(["check-config", "--config", tls.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.tls_cert") && stderr.contains("not.pem"),
        "{stderr}"
    );

    let output = reflex(["check-config", "--config", "/nonexistent.toml"]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("cannot read config file /nonexistent.toml")
    );
}

#[test]
fn the_example_config_checks_and_help_explains() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/reflex.example.toml");
    assert!(
        reflex(["check-config", "--config", example])
            .status
            .success()
    );
    let help = String::from_utf8(reflex(["--help"]).stdout).unwrap();
    for word in ["serve", "remediate", "check-config", "audit"] {
        assert!(help.contains(word), "{help}");
    }
}

#[tokio::test]
async fn an_answered_request_survives_kill_minus_nine() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &["web-elb"],
        PERMISSIVE,
    );
    let client = reqwest::Client::new();
    let mut reflex_process = ReflexProcess::start(dir.path(), &text, &client).await;
    let base = reflex_process.base.clone();
    let config = reflex_process.config.clone();
    let response = client
        .post(format!("{base}/remediate"))
        .bearer_auth(MANUAL_TOKEN)
        .body(json!({"load_balancer": "not-a-target"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let answered: Value = response.json().await.unwrap();
    assert_eq!(answered["error"], "unknown-load-balancer");
    reflex_process.child.kill().unwrap(); // SIGKILL
    reflex_process.child.wait().unwrap();

    let output = reflex([
        "audit",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    let listed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("unknown-load-balancer"));
}

#[test]
fn sns_verify_accepts_every_genuine_aws_message_at_its_timestamp_and_rejects_tampered_copies() {
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sns");
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    for entry in std::fs::read_dir(vectors.join("aws")).unwrap() {
        let path = entry.unwrap().path();
        let fields: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let cert_file = fields["SigningCertURL"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let cert = vectors.join("certs").join(cert_file);
        let at = fields["Timestamp"].as_str().unwrap();
        let args = |file: &std::path::Path| {
            vec![
                "sns-verify".to_owned(),
                file.to_str().unwrap().to_owned(),
                "--cert".to_owned(),
                cert.to_str().unwrap().to_owned(),
                "--at".to_owned(),
                at.to_owned(),
            ]
        };
        let output = reflex(args(&path));
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stdout)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "verified");

        let mut tampered = fields.clone();
        tampered["TopicArn"] = json!(format!("{}x", fields["TopicArn"].as_str().unwrap()));
        let tampered_path = dir.path().join("tampered.json");
        std::fs::write(&tampered_path, tampered.to_string()).unwrap();
        let output = reflex(args(&tampered_path));
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("bad-signature"));

        let output = reflex(args(&path)[..4].to_vec());
        assert_eq!(
            output.status.code(),
            Some(1),
            "without --at the message is stale"
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("stale-message"));
        count += 1;
    }
    assert_eq!(count, 8);
}

#[tokio::test]
async fn healthcheck_exits_zero_only_when_reflex_answers() {
    let moto = Moto::shared();
    let app = TestApp::spawn(&moto.endpoint, &["web-elb"], PERMISSIVE).await;
    let url = format!("{}/healthz", app.base);
    let up = tokio::task::spawn_blocking(move || reflex(["healthcheck", "--url", &url]))
        .await
        .unwrap();
    assert!(up.status.success(), "{up:?}");

    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let down = reflex(["healthcheck", "--url", &format!("http://{closed}/healthz")]);
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("did not answer"), "{stderr}");
}

#[tokio::test]
async fn audit_verify_names_a_hand_edit_and_export_writes_the_chain_on_both_stores() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("chain");
    fleet.balancer_with(&lb, 2, 0).await;
    for postgres in [None, Some(crate::common::postgres::Postgres::fresh().await)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        let mut text = config_text(&moto.endpoint, &db, &[&lb], PERMISSIVE);
        let url = match &postgres {
            Some(postgres) => {
                text = postgres.config(&text);
                postgres.url.clone()
            }
            None => format!("sqlite://{}", db.display()),
        };
        let config = dir.path().join("reflex.toml");
        std::fs::write(&config, &text).unwrap();
        let config = config.to_str().unwrap();
        for _ in 0..2 {
            let run = reflex([
                "remediate",
                "--config",
                config,
                "--load-balancer",
                &lb,
                "--dry-run",
            ]);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let verify = reflex(["audit", "verify", "--config", config]);
        let said = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert!(verify.status.success(), "{said}");
        assert!(said.contains("audit chain intact: 2 entries"), "{said}");

        let export = reflex([
            "audit",
            "export",
            "--config",
            config,
            "--since",
            "2000-01-01T00:00:00Z",
        ]);
        assert!(export.status.success());
        let entries: Vec<Value> = String::from_utf8(export.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["seq"], 2);
        assert_eq!(entries[1]["prev_hash"], entries[0]["hash"]);
        assert_eq!(entries[0]["source"], "cli");

        // Someone rewrites the first run's outcome by hand.
        {
            use sqlx::{Connection as _, Executor as _};
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            conn.execute("UPDATE audit_entries SET outcome = 'rejected' WHERE seq = 1")
                .await
                .unwrap();
        }
        let verify = reflex(["audit", "verify", "--config", config]);
        let said = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert_eq!(verify.status.code(), Some(1), "{said}");
        let first = entries[0]["id"].as_str().unwrap();
        assert!(
            said.contains(&format!("entry 1 (record {first}) was changed")),
            "{said}"
        );
    }
}

#[tokio::test]
async fn pause_and_resume_from_the_cli_stop_and_restart_a_live_server() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("paused");
    let (good, bad) = fleet.balancer_with(&lb, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        PERMISSIVE,
    );
    let client = reqwest::Client::new();
    let server_dir = tempfile::tempdir().unwrap();
    let server = ReflexProcess::start(server_dir.path(), &text, &client).await;
    let config = server.config.to_str().unwrap();
    let remediate = || async {
        let response = client
            .post(format!("{}/remediate", server.base))
            .bearer_auth(MANUAL_TOKEN)
            .json(&json!({"load_balancer": lb}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };

    let paused = reflex([
        "pause",
        "--config",
        config,
        "--target",
        &lb,
        "--reason",
        "deploy 1234",
    ]);
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    let answer = remediate().await;
    let refused = answer["refused"].as_str().unwrap();
    assert!(
        refused.contains("paused") && refused.contains("deploy 1234"),
        "{answer}"
    );
    assert_eq!(answer["terminated-instance-ids"], json!([]));
    assert!(fleet.none_terminated(&bad).await);
    let listed = reflex(["pause", "--config", config]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&lb) && listed.contains("deploy 1234"),
        "{listed}"
    );

    let resumed = reflex(["resume", "--config", config, "--target", &lb]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(remediate().await["terminated-instance-ids"], json!(bad));
    assert!(fleet.none_terminated(&good).await);

    let again = reflex(["resume", "--config", config, "--target", &lb]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not paused"));
    let unknown = reflex([
        "pause", "--config", config, "--target", "nope", "--reason", "x",
    ]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not a configured target"));
    // Both commands are in the audit trail.
    let records = reflex(["audit", "list", "--json", "--config", config]);
    let records = String::from_utf8_lossy(&records.stdout).into_owned();
    assert!(
        records.contains(r#""pause":{"reason":"deploy 1234"}"#),
        "{records}"
    );
    assert!(records.contains(r#""resume":{"reason":null}"#), "{records}");
}

#[tokio::test]
async fn a_prune_inside_what_the_safety_rules_read_back_is_refused_and_the_cooldown_still_holds() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("prune");
    let (_, bad) = fleet.balancer_with(&lb, 4, 1).await;
    let app = TestApp::spawn(
        &moto.endpoint,
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 600\n",
    )
    .await;
    let (status, first) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["terminated-instance-ids"], json!(bad));
    let config = app.config_path.to_str().unwrap();

    let output = reflex(["audit", "prune", "--config", config, "--older-than", "0"]);
    assert!(!output.status.success(), "a prune of everything is refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("smallest allowed value is 1"), "{stderr}");
    assert!(stderr.contains("max_acted_per_day"), "{stderr}");

    let output = reflex(["audit", "prune", "--config", config, "--older-than", "1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The smallest allowed prune keeps what the cooldown reads: the next run is still refused by it.
    let (status, again) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["refused-rule"], "cooldown", "{again}");
}
