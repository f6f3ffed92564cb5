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
