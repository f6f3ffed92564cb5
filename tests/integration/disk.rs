//! A full disk under the audit store: reflex says it is not ready, answers what it cannot record with 503 (so
//! senders retry) and acknowledges nothing it did not record, and recovers by itself when space returns.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, config_text, unique};

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN)"
        );
        Self(at.to_owned())
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_makes_reflex_unready_and_it_recovers_by_itself() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("disk");
    fleet.balancer_with(&lb, 2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "1m");
    let text = config_text(&moto.endpoint, &disk.0.join("audit.db"), &[&lb], PERMISSIVE);
    let app = TestApp::spawn_with_config(dir, &text).await;
    let dry_run = json!({"load_balancer": lb, "dry_run": true});
    assert_eq!(app.get("/readyz", None).await.0, 200);
    assert_eq!(app.remediate(dry_run.clone()).await.0, 200);

    let filler = disk.fill();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for _ in 0..500 {
        let (status, answer) = app.remediate(dry_run.clone()).await;
        match status {
            200 => acknowledged.push(answer["audit-id"].as_str().unwrap().to_owned()),
            503 => {
                refused = Some(answer);
                break;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    let refused = refused.expect("a full disk must stop acknowledgements");
    assert_eq!(refused["error"], "audit-unavailable", "{refused}");
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, 503, "{ready}");

    std::fs::remove_file(filler).unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if app.get("/readyz", None).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "reflex must become ready again once space returns");
    let (status, answer) = app.remediate(dry_run).await;
    assert_eq!(status, 200, "{answer}");
    acknowledged.push(answer["audit-id"].as_str().unwrap().to_owned());

    let recorded: Vec<String> = app
        .audit_records()
        .await
        .into_iter()
        .map(|record| record.id)
        .collect();
    let missing: Vec<(usize, &String)> = acknowledged
        .iter()
        .enumerate()
        .filter(|(_, id)| !recorded.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "answered 200 but not recorded: {missing:?} of {} acknowledged, {} recorded",
        acknowledged.len(),
        recorded.len()
    );
}
