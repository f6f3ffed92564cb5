//! Shared test helpers: a real moto server, a fleet built in it through the real AWS SDK, and reflex itself
//! served on a port-0 loopback listener with its own temporary audit store.

#![allow(dead_code)]

pub mod alertmanager;
pub mod fault_relay;
pub mod fleet;
pub mod iam;
pub mod moto;
pub mod own_postgres;
pub mod postgres;
pub mod process;
pub mod slow_proxy;
pub mod sns;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use reflex::App;
use reflex::audit::AuditStore;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use fleet::Fleet;
pub use moto::Moto;

/// The manual token every test app accepts.
pub const MANUAL_TOKEN: &str = "manual-token-0123456789abcdef";
/// The audit token every test app accepts.
pub const AUDIT_TOKEN: &str = "audit-token-0123456789abcdef";
/// The admin token of apps configured with `ADMIN` (the `/admin` routes).
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
/// The `[admin]` section that accepts `ADMIN_TOKEN`.
pub const ADMIN: &str = "\n[admin]\ntokens = [\"admin-token-0123456789abcdef\"]\n";

/// `text` (from `config_text`) with the AWS keys of another IAM user instead of moto's defaults.
pub fn with_credentials(text: &str, key_id: &str, secret: &str) -> String {
    text.replace(
        "access_key_id = \"testing\"",
        &format!("access_key_id = \"{key_id}\""),
    )
    .replace(
        "secret_access_key = \"testing\"",
        &format!("secret_access_key = \"{secret}\""),
    )
}

/// A config text pointing at `endpoint`, with test-friendly limits and `targets`; `extra` is appended
/// (later tables override nothing, so pass only sections not written here).
pub fn config_text(
    endpoint: &str,
    db: &std::path::Path,
    targets: &[&str],
    remediation: &str,
) -> String {
    let mut text = format!(
        r#"[server]
listen = "127.0.0.1:0"
max_body_bytes = 4096

[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"
access_key_id = "testing"
secret_access_key = "testing"
operation_timeout_ms = 5000
max_attempts = 1

[audit]
url = "sqlite://{db}"
tokens = ["{AUDIT_TOKEN}"]

[manual]
tokens = ["{MANUAL_TOKEN}"]

[remediation]
{remediation}
"#,
        db = db.display()
    );
    for target in targets {
        text.push_str(&format!("\n[[targets]]\nload_balancer = \"{target}\"\n"));
    }
    text
}

/// Remediation settings that let a fresh moto fleet be acted on: no grace period, no cooldown.
pub const PERMISSIVE: &str = "grace_period_secs = 0\ncooldown_secs = 0\n";

/// reflex running in this process on a loopback port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The app's audit store, to inspect what was recorded.
    pub audit: AuditStore,
    /// The config file written for the app (for the CLI).
    pub config_path: PathBuf,
    sns: std::sync::Arc<reflex::sns::SnsReceiver>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts reflex against `endpoint` allowed to touch `targets`, with `remediation` settings.
    pub async fn spawn(endpoint: &str, targets: &[&str], remediation: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(endpoint, &dir.path().join("audit.db"), targets, remediation);
        Self::spawn_with_config(dir, &text).await
    }

    /// Starts reflex with this exact config text, written into `dir`.
    pub async fn spawn_with_config(dir: tempfile::TempDir, text: &str) -> Self {
        let config_path = dir.path().join("reflex.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = reflex::config::parse(text, std::iter::empty()).expect("test config is valid");
        let scheme = if config.server.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let app = App::build(config).await.expect("app builds");
        let audit = app.state.audit.clone();
        let sns = std::sync::Arc::clone(&app.state.sns);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(reflex::serve(app, listener, async {
            let _ = rx.await;
        }));
        Self {
            base,
            audit,
            config_path,
            sns,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// POSTs `body` to `path` with an optional bearer token; returns status and parsed JSON body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("authorization", format!("Bearer {t}")))
            .into_iter()
            .collect();
        self.post_with_headers(path, &headers, body).await
    }

    /// POSTs `body` to `path` as JSON with these extra headers; returns status and parsed JSON body.
    pub async fn post_with_headers(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        answer(request).await
    }

    /// `POST /sns` as SNS delivers: the JSON body as `text/plain`.
    pub async fn post_sns(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let request = self
            .client
            .post(format!("{}/sns", self.base))
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body);
        answer(request).await
    }

    /// `POST /remediate` with the manual token.
    pub async fn remediate(&self, body: Value) -> (u16, Value) {
        self.post("/remediate", Some(MANUAL_TOKEN), body.to_string())
            .await
    }

    /// GETs `path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// How many times the SNS signing certificate was loaded (fetched or read).
    pub fn state_cert_loads(&self) -> u64 {
        self.sns.verifier.certs().loads()
    }

    /// GETs `path` and returns the body as text (for `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Every audit record, newest first.
    pub async fn audit_records(&self) -> Vec<reflex::audit::AuditRecord> {
        self.audit.list(1000).await.unwrap()
    }

    /// Waits up to 30 s for a record that `matches`; it (`what` names it if none comes).
    pub async fn record_where(
        &self,
        what: &str,
        matches: impl Fn(&reflex::audit::AuditRecord) -> bool,
    ) -> reflex::audit::AuditRecord {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(record) = self.audit_records().await.into_iter().find(&matches) {
                return record;
            }
            assert!(std::time::Instant::now() < deadline, "no record of {what}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 30 s for the check of the run `run_id` (a step's, or a replacement's).
    pub async fn check_of(&self, run_id: &str) -> reflex::audit::AuditRecord {
        self.record_where(&format!("the check of {run_id}"), |r| {
            r.source.as_str() == "recovery-check"
                && (r.detail["ladder"]["run"] == run_id || r.detail["recovery"]["run"] == run_id)
        })
        .await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends the request; returns the status and the JSON body, which every answer of reflex must have.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "answered non-JSON {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

/// A unique resource name for this test, so tests can share one moto server.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        ulid::Ulid::new().to_string().to_lowercase()[14..].to_owned()
    )
}

/// The SHA-256 of `token` in hex, as the config's `token_sha256` keys hold it.
pub fn sha256_hex(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
