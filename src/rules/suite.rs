//! `reflex rules test --suite FILE`: an operator's own cases for their rules, run as a test in their CI. The
//! suite is TOML, one `[[cases]]` table per captured alert file with the rule it must come to (`"none"`: no
//! rule); every alert of the file must come to it. Reads the files only: no store, no AWS call.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use super::Rules;
use super::test_command::alerts_of;
use crate::config::Config;

/// The expected rule of a case whose alerts must match no rule.
const NONE: &str = "none";

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    cases: Vec<Case>,
}

/// One case: an alert file and the rule it must come to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The alert file, relative to the suite's own folder unless absolute.
    alert: PathBuf,
    /// The alert's source when the file's shape does not say.
    #[serde(default)]
    source: Option<String>,
    /// The rule's name, or `"none"`.
    rule: String,
}

/// What a suite came to: the report, and whether every case passed.
#[derive(Debug)]
pub struct SuiteReport {
    /// One line per alert, then a total.
    pub text: String,
    /// Whether every alert came to its case's rule.
    pub passed: bool,
}

/// Runs the suite at `path` against `config`'s rules at `now` (Unix seconds).
pub fn run_suite(config: &Config, path: &Path, now: i64) -> anyhow::Result<SuiteReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("suite {}", path.display()))?;
    let suite: Suite =
        toml::from_str(&text).with_context(|| format!("suite {}", path.display()))?;
    anyhow::ensure!(
        !suite.cases.is_empty(),
        "suite {}: no [[cases]]",
        path.display()
    );
    anyhow::ensure!(
        !config.rules.iter().any(|rule| rule.name == NONE),
        "the config has a rule named {NONE:?}, which a suite's `rule = \"none\"` means no rule: rename it"
    );
    let rules = Rules::for_config(config, "")?;
    if let Some(unknown) = suite
        .cases
        .iter()
        .find(|case| case.rule != NONE && !config.rules.iter().any(|rule| rule.name == case.rule))
    {
        anyhow::bail!(
            "suite {}: case {} expects rule {:?}, which the config does not have (write \"none\" for no rule)",
            path.display(),
            unknown.alert.display(),
            unknown.rule
        );
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    let (mut report, mut failed, mut alerts) = (String::new(), 0, 0);
    for case in &suite.cases {
        let file = folder.join(&case.alert);
        let alert_text = std::fs::read_to_string(&file)
            .with_context(|| format!("alert file {}", file.display()))?;
        let read = alerts_of(&alert_text, case.source.as_deref())
            .with_context(|| format!("alert file {}", file.display()))?;
        if read.is_empty() {
            failed += 1;
            report += &format!("FAIL  {}: the file holds no alert\n", case.alert.display());
        }
        for alert in read {
            alerts += 1;
            let got = rules
                .first_match(&alert, now)
                .map_or(NONE, |rule| rule.name.as_str());
            if got == case.rule {
                report += &format!(
                    "ok    {}: {:?} came to {got:?}\n",
                    case.alert.display(),
                    alert.name
                );
            } else {
                failed += 1;
                report += &format!(
                    "FAIL  {}: {:?} came to {got:?}, expected {:?}\n",
                    case.alert.display(),
                    alert.name,
                    case.rule
                );
            }
        }
    }
    report += &format!(
        "{} of {alerts} alerts came to the expected rule\n",
        alerts - failed
    );
    Ok(SuiteReport {
        text: report,
        passed: failed == 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[[targets]]\nload_balancer = \"web-elb\"\n\
                          [[rules]]\nname = \"disk-full\"\nmatch = { namespace = \"CWAgent\" }\n";

    fn suite(dir: &Path, cases: &str) -> PathBuf {
        let alarm = serde_json::json!({
            "AlarmName": "disk-used-web-1", "NewStateValue": "ALARM",
            "Trigger": {"Namespace": "CWAgent", "MetricName": "disk_used_percent", "Dimensions": []}
        });
        std::fs::write(dir.join("disk.json"), alarm.to_string()).unwrap();
        let other = serde_json::json!({"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "X"}}]});
        std::fs::write(dir.join("other.json"), other.to_string()).unwrap();
        let path = dir.join("suite.toml");
        std::fs::write(&path, cases).unwrap();
        path
    }

    #[test]
    fn every_alert_must_come_to_its_case_s_rule() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse(CONFIG, []).unwrap();
        let good = suite(
            dir.path(),
            "[[cases]]\nalert = \"disk.json\"\nrule = \"disk-full\"\n[[cases]]\nalert = \"other.json\"\nrule = \"none\"\n",
        );
        let report = run_suite(&config, &good, 0).unwrap();
        assert!(report.passed, "{}", report.text);
        assert!(
            report
                .text
                .ends_with("2 of 2 alerts came to the expected rule\n"),
            "{}",
            report.text
        );
        let bad = suite(
            dir.path(),
            "[[cases]]\nalert = \"disk.json\"\nrule = \"none\"\n[[cases]]\nalert = \"other.json\"\nrule = \"disk-full\"\n",
        );
        let report = run_suite(&config, &bad, 0).unwrap();
        assert!(!report.passed);
        assert!(
            report.text.contains(
                "FAIL  disk.json: \"disk-used-web-1\" came to \"disk-full\", expected \"none\""
            ),
            "{}",
            report.text
        );
        assert!(report.text.contains("0 of 2"), "{}", report.text);
        let empty = serde_json::json!({"version": "4", "status": "firing", "alerts": []});
        std::fs::write(dir.path().join("empty.json"), empty.to_string()).unwrap();
        let path = dir.path().join("suite.toml");
        std::fs::write(
            &path,
            "[[cases]]\nalert = \"empty.json\"\nrule = \"none\"\n",
        )
        .unwrap();
        let report = run_suite(&config, &path, 0).unwrap();
        assert!(
            !report.passed && report.text.contains("holds no alert"),
            "{}",
            report.text
        );
    }

    #[test]
    fn a_suite_that_names_an_unknown_rule_or_key_or_file_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse(CONFIG, []).unwrap();
        let err = |cases: &str| {
            format!(
                "{:#}",
                run_suite(&config, &suite(dir.path(), cases), 0).unwrap_err()
            )
        };
        assert!(
            err("[[cases]]\nalert = \"disk.json\"\nrule = \"disk-ful\"\n").contains("\"disk-ful\"")
        );
        assert!(
            err("[[cases]]\nalert = \"disk.json\"\nrule = \"none\"\nrul = \"x\"\n")
                .contains("unknown field `rul`")
        );
        assert!(err("[[cases]]\nalert = \"gone.json\"\nrule = \"none\"\n").contains("gone.json"));
        assert!(err("cases = []\n").contains("no [[cases]]"));
    }
}
