//! A real `moto_server` for the test process, started on a free loopback port by `moto_harness.py`.
//! It stops when the test process exits: the harness serves until its standard input closes.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

impl Moto {
    /// The moto server shared by every test of this process (tests use unique resource names).
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| Moto::start(&[]))
    }

    /// A moto server of its own, with extra environment settings (e.g. IAM enforcement).
    pub fn start(env: &[&str]) -> Moto {
        let harness = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/moto_harness.py");
        let mut child = Command::new("python3")
            .arg(harness)
            .args(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] is installed (run scripts/test)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("moto harness did not start: {line:?}"))
            .trim()
            .to_owned();
        let stdin = child.stdin.take().unwrap();
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }
}

impl Moto {
    /// Starts moto's own request recorder afresh: every request it receives from now on is recorded.
    pub async fn start_recording(&self) {
        let client = reqwest::Client::new();
        for step in ["reset-recording", "start-recording"] {
            client
                .post(format!("{}/moto-api/recorder/{step}", self.endpoint))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
    }

    /// How many requests of each AWS action moto recorded since `start_recording` (query-protocol actions
    /// are named by the `Action` form field of the request).
    pub async fn recorded_actions(&self) -> std::collections::HashMap<String, usize> {
        let mut actions = std::collections::HashMap::new();
        for form in self.recorded_forms().await {
            let action = form
                .iter()
                .find(|(key, _)| key == "Action")
                .map_or_else(|| "other".to_owned(), |(_, value)| value.clone());
            *actions.entry(action).or_default() += 1;
        }
        actions
    }

    /// The JSON bodies of the JSON-protocol requests moto recorded since `start_recording` whose
    /// `X-Amz-Target` is `target` (e.g. `AmazonSSM.SendCommand`), in order.
    pub async fn recorded_json(&self, target: &str) -> Vec<serde_json::Value> {
        self.recording()
            .await
            .into_iter()
            .filter(|entry| {
                entry["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(name, value)| {
                        name.eq_ignore_ascii_case("x-amz-target") && value == target
                    })
            })
            .map(|entry| serde_json::from_str(&body_of(&entry)).unwrap_or_default())
            .collect()
    }

    /// The AWS operation of every request moto recorded since `start_recording`, in order, whatever its
    /// protocol: a query request's `Action` field, a JSON request's operation in its `X-Amz-Target`.
    async fn recorded_operations(&self) -> Vec<String> {
        self.recording().await.iter().map(operation_of).collect()
    }

    /// The operations moto recorded since `start_recording` that change something: all but reads (`Describe`,
    /// `List`, `Get`), in order.
    pub async fn recorded_writes(&self) -> Vec<String> {
        let mut operations = self.recorded_operations().await;
        operations.retain(|operation| {
            !["Describe", "List", "Get"]
                .iter()
                .any(|read| operation.starts_with(read))
        });
        operations
    }

    /// How many requests of the write `operation` moto recorded since `start_recording`.
    pub async fn recorded_writes_of(&self, operation: &str) -> usize {
        let writes = self.recorded_writes().await;
        writes.iter().filter(|write| *write == operation).count()
    }

    /// Every request moto recorded since `start_recording`, as moto writes them.
    async fn recording(&self) -> Vec<serde_json::Value> {
        let text = reqwest::get(format!(
            "{}/moto-api/recorder/download-recording",
            self.endpoint
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The form fields of every request moto recorded since `start_recording`, in order (a request without a
    /// form body gives an empty list).
    pub async fn recorded_forms(&self) -> Vec<Vec<(String, String)>> {
        self.recording()
            .await
            .iter()
            .map(|entry| {
                url::form_urlencoded::parse(body_of(entry).as_bytes())
                    .into_owned()
                    .collect()
            })
            .collect()
    }
}

/// The AWS operation of a recorded request (`other` when it names none).
fn operation_of(entry: &serde_json::Value) -> String {
    let target = entry["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
        .and_then(|(_, value)| value.as_str());
    if let Some((_, operation)) = target.and_then(|target| target.rsplit_once('.')) {
        return operation.to_owned();
    }
    url::form_urlencoded::parse(body_of(entry).as_bytes())
        .find(|(key, _)| key == "Action")
        .map_or_else(|| "other".to_owned(), |(_, value)| value.into_owned())
}

/// The body of a recorded request, decoded when moto stored it base64-encoded.
fn body_of(entry: &serde_json::Value) -> String {
    use base64::Engine as _;
    let body = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool() == Some(true) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    }
}
