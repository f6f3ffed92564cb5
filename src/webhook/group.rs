//! Which load balancer each alert is about: firing alerts grouped by the target label.

use std::collections::BTreeMap;

use super::payload::{Alert, Payload};

/// The plan for one webhook: one group per balancer, plus what is not acted on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Balancer name → the texts of its firing alerts.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Firing alerts naming no balancer, with no default target: (alert text, reason).
    pub unusable: Vec<(String, String)>,
    /// Texts of resolved alerts (audited, never acted on).
    pub resolved: Vec<String>,
}

/// Groups the payload's firing alerts by the value of `label`, falling back to `default_target`.
pub fn group(payload: &Payload, label: &str, default_target: Option<&str>) -> Grouping {
    let mut grouping = Grouping::default();
    for alert in &payload.alerts {
        if !alert.is_firing(&payload.status) {
            grouping.resolved.push(alert.text());
            continue;
        }
        match target_of(alert, label, default_target) {
            Some(target) => grouping
                .groups
                .entry(target)
                .or_default()
                .push(alert.text()),
            None => grouping.unusable.push((
                alert.text(),
                format!("the alert has no {label:?} label and no default_target is configured"),
            )),
        }
    }
    grouping
}

fn target_of(alert: &Alert, label: &str, default_target: Option<&str>) -> Option<String> {
    alert
        .labels
        .get(label)
        .filter(|value| !value.is_empty())
        .cloned()
        .or_else(|| default_target.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(alerts: &[(&str, Option<&str>)]) -> Payload {
        let alerts: Vec<serde_json::Value> = alerts
            .iter()
            .enumerate()
            .map(|(n, (status, lb))| {
                let mut labels = serde_json::json!({"alertname": format!("a{n}")});
                if let Some(lb) = lb {
                    labels["load_balancer"] = serde_json::json!(lb);
                }
                serde_json::json!({"status": status, "labels": labels, "annotations": {"summary": format!("s{n}")}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"version": "4", "alerts": alerts})).unwrap()
    }

    #[test]
    fn firing_alerts_group_by_label_and_resolved_ones_are_kept_apart() {
        let p = payload(&[
            ("firing", Some("web")),
            ("firing", Some("api")),
            ("firing", Some("web")),
            ("resolved", Some("web")),
            ("firing", None),
        ]);
        let grouping = group(&p, "load_balancer", None);
        assert_eq!(grouping.groups["web"], vec!["s0", "s2"]);
        assert_eq!(grouping.groups["api"], vec!["s1"]);
        assert_eq!(grouping.resolved, vec!["s3"]);
        assert_eq!(grouping.unusable.len(), 1);
        assert!(grouping.unusable[0].1.contains("load_balancer"));
    }

    #[test]
    fn the_default_target_takes_unlabelled_alerts() {
        let grouping = group(&payload(&[("firing", None)]), "load_balancer", Some("web"));
        assert_eq!(grouping.groups["web"], vec!["s0"]);
        assert!(grouping.unusable.is_empty());
    }
}
