//! `reflex rules test`: for a captured alert, every rule in order, whether it matched and what failed, and
//! which rule the alert would be the response of. Reads the alert file and the config; no store, no AWS call,
//! no write anywhere.

use anyhow::Context as _;

use super::{AlertFacts, Rules, SOURCES, Verdict};
use crate::config::Config;
use crate::webhook::Payload;

/// What one alert of the file came to.
#[derive(Debug, serde::Serialize)]
struct Tested {
    source: String,
    name: String,
    state: String,
    /// The first rule that matched, if any.
    rule: Option<String>,
    verdicts: Vec<Verdict>,
}

/// Tests the alerts of `alert_text` (a CloudWatch alarm as SNS delivers it or as its `Message`, an
/// Alertmanager or Grafana webhook payload, or a manual request's body; `source` when the file does not
/// say) against `config`'s rules at `now` (Unix seconds): a report, as text or as JSON.
pub fn test_command(
    config: &Config,
    alert_text: &str,
    source: Option<&str>,
    now: i64,
    json: bool,
) -> anyhow::Result<String> {
    let rules = Rules::for_config(config, "")?;
    anyhow::ensure!(
        !rules.is_empty(),
        "the config has no [[rules]]: every alert runs the target it names"
    );
    let tested: Vec<Tested> = alerts_of(alert_text, source)?
        .into_iter()
        .map(|alert| {
            let verdicts = rules.explain(&alert, now);
            let rule = verdicts.iter().find(|v| v.matched).map(|v| v.rule.clone());
            Tested {
                source: alert.source,
                name: alert.name,
                state: alert.state,
                rule,
                verdicts,
            }
        })
        .collect();
    if json {
        return Ok(serde_json::to_string_pretty(&tested)? + "\n");
    }
    Ok(tested.iter().map(in_words).collect())
}

/// One tested alert, as lines of text.
fn in_words(tested: &Tested) -> String {
    let mut text = format!(
        "{} alert {:?} ({}): {}\n",
        tested.source,
        tested.name,
        tested.state,
        tested.rule.as_deref().map_or_else(
            || "no rule matches (an alert that names a configured target runs that target)"
                .to_owned(),
            |rule| format!("rule {rule:?}")
        )
    );
    for verdict in &tested.verdicts {
        match &verdict.failed {
            None => text += &format!("  matched  {}\n", verdict.rule),
            Some(failed) => text += &format!("  no       {}: {failed}\n", verdict.rule),
        }
    }
    text
}

/// The alerts of a captured file, read as `source` or as the file's shape says.
pub(super) fn alerts_of(text: &str, source: Option<&str>) -> anyhow::Result<Vec<AlertFacts>> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the alert file is not JSON")?;
    let source = match source {
        Some(source) => {
            anyhow::ensure!(
                SOURCES.contains(&source),
                "--source {source:?}: one of {}",
                SOURCES.join(", ")
            );
            source
        }
        None => detected(&value).context(
            "cannot tell the alert's source from the file: say --source sns, alertmanager, grafana or manual",
        )?,
    };
    match source {
        "sns" => {
            // An SNS delivery carries the alarm as its `Message`; a bare alarm message is read as it is.
            let message = value["Message"].as_str().unwrap_or(text);
            let alarm = AlertFacts::from_cloudwatch(message).context(
                "the SNS message is not a CloudWatch alarm (no AlarmName or NewStateValue)",
            )?;
            Ok(vec![alarm])
        }
        "manual" => Ok(vec![AlertFacts::from_manual(&value)]),
        webhook => {
            let payload: Payload = serde_json::from_value(value)
                .with_context(|| format!("the file is not a {webhook} webhook payload"))?;
            Ok(payload
                .alerts
                .iter()
                .map(|alert| AlertFacts::from_webhook(webhook, alert, &payload.status))
                .collect())
        }
    }
}

/// The source a captured file's shape says.
fn detected(value: &serde_json::Value) -> Option<&'static str> {
    if value.get("AlarmName").is_some() || value["Type"] == "Notification" {
        return Some("sns");
    }
    match value["version"].as_str() {
        Some("4") => Some("alertmanager"),
        Some("1") => Some("grafana"),
        _ if value.get("load_balancer").is_some() || value.get("target_group").is_some() => {
            Some("manual")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: &str) -> Config {
        let text = format!("[[targets]]\nload_balancer = \"web-elb\"\n{rules}");
        crate::config::parse(&text, []).unwrap()
    }

    const RULES: &str = "[[rules]]\nname = \"disk-full\"\nmatch = { namespace = \"CWAgent\" }\n\
                         when = \"alert.value > 90.0\"\n\
                         [[rules]]\nname = \"kafka\"\nmatch = { labels = { job = \"kafka\" } }\n";

    #[test]
    fn an_sns_delivery_and_an_alertmanager_payload_are_tested_rule_by_rule() {
        let alarm = serde_json::json!({
            "AlarmName": "disk-used-web-1",
            "NewStateValue": "ALARM",
            "NewStateReason": "Threshold Crossed: 1 datapoint [95.0 (06/12/26 10:00:00)]",
            "Trigger": {"Namespace": "CWAgent", "MetricName": "disk_used_percent", "Dimensions": []}
        });
        let delivery = serde_json::json!({"Type": "Notification", "Message": alarm.to_string()});
        let report = test_command(&config(RULES), &delivery.to_string(), None, 0, false).unwrap();
        assert!(
            report.starts_with("sns alert \"disk-used-web-1\" (firing): rule \"disk-full\""),
            "{report}"
        );
        assert!(
            report.contains("  no       kafka: match.labels.job"),
            "{report}"
        );

        let payload = serde_json::json!({
            "version": "4", "status": "firing",
            "alerts": [{"labels": {"alertname": "KafkaBrokerDown", "job": "kafka"}},
                       {"labels": {"alertname": "Other"}}]
        });
        let report = test_command(&config(RULES), &payload.to_string(), None, 0, true).unwrap();
        let tested: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(tested[0]["rule"], "kafka");
        assert_eq!(tested[1]["rule"], serde_json::Value::Null);
        assert_eq!(tested[0]["verdicts"][0]["matched"], false);
    }

    #[test]
    fn an_unreadable_file_or_a_config_without_rules_says_why() {
        let err = |text: &str, source: Option<&str>, rules: &str| {
            format!(
                "{:#}",
                test_command(&config(rules), text, source, 0, false).unwrap_err()
            )
        };
        assert!(err("{}", None, RULES).contains("--source"));
        assert!(err("[", None, RULES).contains("not JSON"));
        assert!(err("{}", Some("email"), RULES).contains("--source \"email\""));
        assert!(err("{\"x\": 1}", Some("sns"), RULES).contains("not a CloudWatch alarm"));
        assert!(err("{}", Some("sns"), "").contains("no [[rules]]"));
    }
}
