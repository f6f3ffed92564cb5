//! Which load balancer or target group each alert is about: firing alerts grouped by the target labels.

use std::collections::BTreeMap;

use super::payload::{Alert, Payload};
use crate::target::{Place, TargetRef};

/// The alert labels that name a target.
#[derive(Debug, Clone, Copy)]
pub struct TargetLabels<'a> {
    /// The label naming a classic load balancer.
    pub load_balancer: &'a str,
    /// The label naming a target group; wins when an alert carries both.
    pub target_group: &'a str,
    /// The label naming the target's account.
    pub account: &'a str,
    /// The label naming the target's region.
    pub region: &'a str,
}

/// The plan for one webhook: one group per target, plus what is not acted on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Target and where it is → the texts of its firing alerts.
    pub groups: BTreeMap<(TargetRef, Place), Vec<String>>,
    /// Firing alerts naming no balancer, with no default target: (alert text, reason).
    pub unusable: Vec<(String, String)>,
    /// Texts of resolved alerts (audited, never acted on).
    pub resolved: Vec<String>,
}

/// Groups the payload's firing alerts by the value of their target labels (and account and region labels),
/// falling back to `default_target`.
pub fn group(
    payload: &Payload,
    labels: TargetLabels<'_>,
    default_target: Option<&(TargetRef, Place)>,
) -> Grouping {
    let mut grouping = Grouping::default();
    for alert in &payload.alerts {
        if !alert.is_firing(&payload.status) {
            grouping.resolved.push(alert.text());
            continue;
        }
        match target_of(alert, labels, default_target) {
            Some(target) => grouping
                .groups
                .entry(target)
                .or_default()
                .push(alert.text()),
            None => grouping.unusable.push((
                alert.text(),
                format!(
                    "the alert has neither a {:?} nor a {:?} label and no default_target is configured",
                    labels.load_balancer, labels.target_group
                ),
            )),
        }
    }
    grouping
}

fn target_of(
    alert: &Alert,
    labels: TargetLabels<'_>,
    default_target: Option<&(TargetRef, Place)>,
) -> Option<(TargetRef, Place)> {
    let label = |name: &str| {
        alert
            .labels
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    };
    let place = Place::new(label(labels.account), label(labels.region));
    label(labels.target_group)
        .map(TargetRef::TargetGroup)
        .or_else(|| label(labels.load_balancer).map(TargetRef::LoadBalancer))
        .map(|target| (target, place))
        .or_else(|| default_target.cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: TargetLabels<'static> = TargetLabels {
        load_balancer: "load_balancer",
        target_group: "target_group",
        account: "account",
        region: "region",
    };

    fn lb(name: &str) -> (TargetRef, Place) {
        (TargetRef::LoadBalancer(name.into()), Place::default())
    }

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
        let grouping = group(&p, LABELS, None);
        assert_eq!(grouping.groups[&lb("web")], vec!["s0", "s2"]);
        assert_eq!(grouping.groups[&lb("api")], vec!["s1"]);
        assert_eq!(grouping.resolved, vec!["s3"]);
        assert_eq!(grouping.unusable.len(), 1);
        assert!(grouping.unusable[0].1.contains("load_balancer"));
    }

    #[test]
    fn the_default_target_takes_unlabelled_alerts() {
        let grouping = group(&payload(&[("firing", None)]), LABELS, Some(&lb("web")));
        assert_eq!(grouping.groups[&lb("web")], vec!["s0"]);
        assert!(grouping.unusable.is_empty());
    }

    #[test]
    fn the_target_group_label_names_a_target_group_and_wins() {
        let p: Payload = serde_json::from_value(serde_json::json!({"version": "4", "alerts": [
            {"status": "firing", "labels": {"target_group": "web-tg"}, "annotations": {"summary": "a"}},
            {"status": "firing", "labels": {"target_group": "web-tg", "load_balancer": "web"},
             "annotations": {"summary": "b"}},
        ]}))
        .unwrap();
        let grouping = group(&p, LABELS, None);
        assert_eq!(
            grouping.groups[&(TargetRef::TargetGroup("web-tg".into()), Place::default())],
            vec!["a", "b"]
        );
        assert_eq!(grouping.groups.len(), 1);
    }

    #[test]
    fn the_account_and_region_labels_tell_targets_of_one_name_apart() {
        let p: Payload = serde_json::from_value(serde_json::json!({"version": "4", "alerts": [
            {"status": "firing", "labels": {"load_balancer": "web", "account": "prod", "region": "eu-west-1"},
             "annotations": {"summary": "a"}},
            {"status": "firing", "labels": {"load_balancer": "web", "account": "staging"},
             "annotations": {"summary": "b"}},
            {"status": "firing", "labels": {"load_balancer": "web"}, "annotations": {"summary": "c"}},
        ]}))
        .unwrap();
        let grouping = group(&p, LABELS, None);
        let web = || TargetRef::LoadBalancer("web".into());
        let place = |account: &str, region: Option<&str>| {
            Place::new(Some(account.into()), region.map(str::to_owned))
        };
        assert_eq!(grouping.groups.len(), 3);
        assert_eq!(
            grouping.groups[&(web(), place("prod", Some("eu-west-1")))],
            vec!["a"]
        );
        assert_eq!(grouping.groups[&(web(), place("staging", None))], vec!["b"]);
        assert_eq!(grouping.groups[&(web(), Place::default())], vec!["c"]);
    }
}
