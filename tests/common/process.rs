//! reflex as its own process (`reflex serve`), for what only a real process shows: signals, `kill -9`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `POST /remediate` for `lb` with the manual token to a server process at `base`; the status and answer.
pub async fn remediate_at(
    client: &reqwest::Client,
    base: &str,
    lb: &str,
) -> (u16, serde_json::Value) {
    let response = client
        .post(format!("{base}/remediate"))
        .bearer_auth(super::MANUAL_TOKEN)
        .json(&serde_json::json!({"load_balancer": lb}))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Runs the `reflex` binary to its end with `args` (a config path from the environment ignored).
pub fn reflex<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .env_remove("REFLEX_CONFIG")
        .output()
        .expect("reflex binary runs")
}

/// `reflex remediate --config CONFIG --load-balancer LB`, on a blocking thread, to run at the same moment as
/// requests to servers.
pub fn remediate_in_background(config: &Path, lb: &str) -> tokio::task::JoinHandle<Output> {
    let (config, lb) = (config.to_owned(), lb.to_owned());
    tokio::task::spawn_blocking(move || {
        reflex([
            OsStr::new("remediate"),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--load-balancer"),
            OsStr::new(&lb),
        ])
    })
}

/// A running `reflex serve`; killed when dropped.
pub struct ReflexProcess {
    /// The process.
    pub child: Child,
    /// `http(s)://127.0.0.1:PORT`.
    pub base: String,
    /// The config file it was started with.
    pub config: PathBuf,
}

impl ReflexProcess {
    /// Writes `text` (whose `listen` is `127.0.0.1:0`) to `dir/reflex.toml` with a free port, starts the
    /// binary on it, and waits until `client` gets an answer from `/readyz`.
    pub async fn start(dir: &Path, text: &str, client: &reqwest::Client) -> Self {
        Self::start_with_clock(dir, text, client, None).await
    }

    /// Like `start`, with everything the process logs written to `dir/reflex.log`.
    pub async fn start_logged(dir: &Path, text: &str, client: &reqwest::Client) -> Self {
        let log = std::fs::File::create(dir.join("reflex.log")).unwrap();
        Self::spawn(dir, text, client, None, Stdio::from(log)).await
    }

    /// Like `start`, with the process's clock moved by `offset` (libfaketime, e.g. `"+30s"`).
    pub async fn start_with_clock(
        dir: &Path,
        text: &str,
        client: &reqwest::Client,
        offset: Option<&str>,
    ) -> Self {
        Self::spawn(dir, text, client, offset, Stdio::null()).await
    }

    async fn spawn(
        dir: &Path,
        text: &str,
        client: &reqwest::Client,
        offset: Option<&str>,
        log: Stdio,
    ) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config = dir.join("reflex.toml");
        let text = text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        std::fs::write(&config, &text).unwrap();
        let binary = env!("CARGO_BIN_EXE_reflex");
        let mut command = Command::new(binary);
        if let Some(offset) = offset {
            // libfaketime preloaded into reflex itself (the `faketime` wrapper would fork, and killing the
            // wrapper would leave reflex running). Wall-clock time only: timers and timeouts keep running at
            // the real pace.
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let child = command
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let scheme = if text.contains("tls_cert") {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(format!("{base}/readyz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "reflex did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            base,
            config,
        }
    }

    /// Sends `signal` (e.g. `"TERM"`, `"HUP"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit status.
    pub async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "reflex did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ReflexProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's libfaketime (package faketime, which scripts/setup-test-deps installs).
fn libfaketime() -> &'static str {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|path| Path::new(path).exists())
    .expect("libfaketime (apt-get install faketime; scripts/setup-test-deps does)")
}
