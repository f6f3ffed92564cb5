//! The real Prometheus Alertmanager (Debian's `prometheus-alertmanager`), started on free loopback ports with its
//! own storage, clustering off, and a config written by the test. `timeout` bounds its life even if the test
//! process dies; `Drop` stops it otherwise.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Alertmanager.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with this YAML config and waits until its API answers.
    pub async fn start(config_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let port = free_port();
        let child = Command::new("timeout")
            .args(["300", "prometheus-alertmanager"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed (run scripts/test)");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = client.get(format!("{base}/-/ready")).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            base,
            child,
            _dir: dir,
        }
    }

    /// Posts alerts to its v2 API, as Prometheus does.
    pub async fn post_alerts(&self, alerts: serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to Alertmanager (a SIGKILL would orphan it).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
