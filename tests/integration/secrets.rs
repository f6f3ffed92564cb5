//! Secrets never reach a log line, an answer or the trail: every secret is configured with one marker, every
//! failure path that can be driven here is driven (receivers unreachable, a name that does not resolve, a TLS
//! handshake with a plain server, wrong credentials at every door, the database down, a bad config), and the
//! marker is looked for in the log, every answer, `GET /audit`, `reflex audit export` and the audit page.

use std::time::Duration;

use serde_json::json;

use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, reflex};
use crate::common::{AUDIT_TOKEN, Fleet, MANUAL_TOKEN, Moto, PERMISSIVE, config_text, unique};

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_answer_the_trail_or_the_page() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let mark = unique("SeCrEtMaRk");
    let lb = unique("secret");
    fleet.balancer_with(&lb, 3, 1).await;
    let postgres = Postgres::fresh().await;
    // Trust auth ignores the password, so the store opens with it in its URL.
    let db_url = postgres
        .url
        .replace("postgres@", &format!("postgres:{mark}-db@"));
    let moto_port = moto.endpoint.rsplit(':').next().unwrap().to_owned();
    let manual = format!("{mark}-manual");
    let audit = format!("{mark}-audit");
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("unused.db"),
        &[&lb],
        PERMISSIVE,
    )
    .replace(MANUAL_TOKEN, &manual)
    .replace(AUDIT_TOKEN, &audit)
    .replace(
        &format!(
            "url = \"sqlite://{}\"",
            dir.path().join("unused.db").display()
        ),
        &format!("url = \"{db_url}\""),
    ) + &format!(
        "\n[admin]\ntokens = [\"{mark}-admin\"]\n\
             \n[alertmanager]\ntokens = [\"{mark}-am\"]\nusername = \"am\"\npasswords = [\"{mark}-pw\"]\n\
             \n[grafana]\nhmac_secret = \"{mark}-hmac\"\n\
             \n[[notify]]\nurl = \"http://127.0.0.1:1/hook/{mark}-down\"\n\
             \n[[notify]]\nurl = \"https://nowhere.invalid/hook/{mark}-dns\"\nformat = \"slack\"\n\
             \n[[notify]]\nurl = \"https://127.0.0.1:{moto_port}/hook/{mark}-tls\"\n"
    );
    let client = reqwest::Client::new();
    let process = ReflexProcess::start_logged(dir.path(), &text, &client).await;
    let base = &process.base;
    let mut seen = String::new();
    let mut answer = async |request: reqwest::RequestBuilder| {
        let response = request.send().await.unwrap();
        let text = response.text().await.unwrap();
        seen.push_str(&text);
        text
    };

    // A run that acts, so that every notification fails its own way (refused, no such host, no TLS).
    let body = json!({"load_balancer": lb}).to_string();
    answer(
        client
            .post(format!("{base}/remediate"))
            .bearer_auth(&manual)
            .body(body.clone()),
    )
    .await;
    // Wrong credentials at every door.
    answer(
        client
            .post(format!("{base}/remediate"))
            .bearer_auth("wrong-token-0123456789")
            .body(body),
    )
    .await;
    answer(
        client
            .post(format!("{base}/alertmanager"))
            .basic_auth("am", Some("wrong-password-0123"))
            .body("{}"),
    )
    .await;
    answer(
        client
            .post(format!("{base}/grafana"))
            .header("X-Grafana-Alerting-Signature", "00ff")
            .header("X-Grafana-Alerting-Timestamp", "1")
            .body("{}"),
    )
    .await;
    answer(
        client
            .get(format!("{base}/admin/state"))
            .bearer_auth("wrong-token-0123456789"),
    )
    .await;
    answer(
        client
            .get(format!("{base}/audit"))
            .bearer_auth("wrong-token-0123456789"),
    )
    .await;
    // Every notification's attempts (4, backing off 0.5 s, 1 s, 2 s) end, and are recorded.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let listed = answer(
        client
            .get(format!("{base}/audit?limit=1000"))
            .bearer_auth(&audit),
    )
    .await;
    let records: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let records = records["records"].as_array().unwrap().clone();
    assert!(
        records
            .iter()
            .filter(|record| record["source"] == "notify")
            .count()
            >= 3,
        "the notifications failed and were recorded: {listed}"
    );
    for record in &records {
        let id = record["id"].as_str().unwrap();
        answer(client.get(format!("{base}/audit/{id}")).bearer_auth(&audit)).await;
    }
    answer(client.get(format!("{base}/metrics"))).await;
    // The audit page, signed in.
    let pages = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = pages.get(format!("{base}/ui/login")).send().await.unwrap();
    let csrf = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("reflex_csrf="))
        .map(|value| value.split(';').next().unwrap().to_owned())
        .unwrap();
    seen.push_str(&form.text().await.unwrap());
    let login = pages
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("reflex_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={audit}"))
        .send()
        .await
        .unwrap();
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("reflex_session="))
        .map(|value| value.split(';').next().unwrap().to_owned())
        .unwrap();
    for path in std::iter::once("/ui/".to_owned()).chain(
        records
            .iter()
            .map(|r| format!("/ui/runs/{}", r["id"].as_str().unwrap())),
    ) {
        let page = pages
            .get(format!("{base}{path}"))
            .header("cookie", format!("reflex_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        seen.push_str(&page.text().await.unwrap());
    }
    let config = process.config.to_str().unwrap().to_owned();
    let export = reflex([
        "audit",
        "export",
        "--config",
        &config,
        "--since",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(export.status.success());
    seen.push_str(&String::from_utf8_lossy(&export.stdout));
    let list = reflex(["audit", "list", "--config", &config, "--json"]);
    seen.push_str(&String::from_utf8_lossy(&list.stdout));
    drop(process);

    // The database down, and a bad config next to the secrets: the errors name neither.
    let down = dir.path().join("down.toml");
    std::fs::write(
        &down,
        text.replace(
            &db_url,
            &format!("postgres://postgres:{mark}-db@127.0.0.1:1/x"),
        ),
    )
    .unwrap();
    let failed = reflex(["audit", "list", "--config", down.to_str().unwrap()]);
    assert!(!failed.status.success());
    seen.push_str(&String::from_utf8_lossy(&failed.stderr));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace(
            "[remediation]\n",
            "[remediation]\nmax_unhealthy_fraction = 7\n",
        ),
    )
    .unwrap();
    let failed = reflex(["check-config", "--config", bad.to_str().unwrap()]);
    assert!(!failed.status.success());
    seen.push_str(&String::from_utf8_lossy(&failed.stderr));

    let log = std::fs::read_to_string(dir.path().join("reflex.log")).unwrap();
    assert!(log.contains("notification"), "the log was written: {log}");
    for (what, text) in [
        ("the log", log.as_str()),
        ("the answers, trail, exports and pages", seen.as_str()),
    ] {
        if let Some(at) = text.find(&mark) {
            let from = at.saturating_sub(200);
            panic!(
                "a secret reached {what}: …{}…",
                &text[from..(at + 100).min(text.len())]
            );
        }
    }
}
