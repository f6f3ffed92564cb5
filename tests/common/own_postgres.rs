//! A PostgreSQL server of a test's own, for tests that stop and restart it: a fresh cluster made with the
//! server's own `initdb` in a temporary directory, listening on a free loopback port with trust auth, run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses to run as root). It is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server and its cluster directory.
pub struct OwnPostgres {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`, for `audit.url`.
    pub url: String,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Makes a cluster and starts its server.
    pub fn start() -> Self {
        let bin = server_bin();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_root = running_as_root();
        if as_root {
            // The postgres user must reach the directory and own the cluster.
            chmod(dir.path(), "0777");
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            data,
            _dir: dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                server.data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        server.resume();
        server
    }

    /// Stops the server (fast shutdown: every session is ended, as in a restart).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the stopped server again, waiting until it takes connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.to_str().unwrap()
        );
        let log = self.data.join("server.log");
        self.pg_ctl(&["start", "-w", "-o", &options, "-l", log.to_str().unwrap()]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|err| panic!("{}: {err}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            command
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .args(["-D", self.data.to_str().unwrap(), "stop", "-m", "immediate"])
            .output();
    }
}

/// The server's programs: `pg_config --bindir`, where Debian keeps `initdb` and `pg_ctl`.
fn server_bin() -> PathBuf {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config (PostgreSQL's server package)");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Whether the tests run as root (`id -u` is 0).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

fn chmod(path: &Path, mode: &str) {
    let status = Command::new("chmod").arg(mode).arg(path).status().unwrap();
    assert!(status.success());
}
