//! The monitoring files against a live reflex: `/metrics` after real activity passes `promtool check metrics`,
//! and every metric the Grafana dashboard and the alert rules query is one reflex exports.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{Fleet, Moto, PERMISSIVE, TestApp, unique};

const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");

/// The `reflex_*` metric names a PromQL text mentions, without the `_bucket` suffix of histogram series.
fn queried(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("reflex_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        names.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn live_metrics_pass_promtool_and_cover_every_metric_the_dashboard_and_rules_query() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("monitoring");
    fleet.balancer_with(&lb, 3, 1).await;
    let app = TestApp::spawn(&moto.endpoint, &[&lb], PERMISSIVE).await;
    let (status, _) = app.remediate(json!({"load_balancer": lb})).await;
    assert_eq!(status, 200);
    let (status, _) = app.remediate(json!({"load_balancer": "nope"})).await;
    assert_eq!(status, 422);
    let metrics = app.get_text("/metrics").await;

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/setup-test-deps)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A family appears on /metrics once it has counted something; what the process can export is its
    // registry's list, which must include what /metrics shows now.
    let registered: BTreeSet<String> =
        reflex::metrics::Metrics::with_audit_failures(Default::default())
            .names()
            .into_iter()
            .collect();
    for name in metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
    {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            registered.contains(family),
            "{name} is exported but not listed"
        );
    }
    let dashboard = std::fs::read_to_string(format!("{MONITORING}/reflex-dashboard.json")).unwrap();
    let rules = std::fs::read_to_string(format!("{MONITORING}/reflex-rules.yml")).unwrap();
    let from_dashboard = queried(&dashboard);
    assert!(from_dashboard.len() >= 15, "{from_dashboard:?}");
    for name in from_dashboard.iter().chain(&queried(&rules)) {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            registered.contains(family),
            "{name} is queried but reflex does not export it"
        );
    }
}
