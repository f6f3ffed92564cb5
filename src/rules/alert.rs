//! What a rule sees of an alert, whatever sent it: one typed, read-only shape (`alert` in a rule's `when`)
//! read from a CloudWatch alarm's SNS message, an Alertmanager or Grafana alert, or a manual request.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An alert as rules see it. Text the sender wrote is data here, never evaluated. It is kept in the trail with
/// the rule it came to (`Routed`), so that `reflex rules replay` can try it again under another config.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(default)]
pub struct AlertFacts {
    /// Where it came from: `sns`, `alertmanager`, `grafana` or `manual`.
    pub source: String,
    /// The alarm's name (`AlarmName`) or the alert's `alertname` label.
    pub name: String,
    /// `firing` or `resolved` (a CloudWatch `ALARM` is firing; `OK` and `INSUFFICIENT_DATA` are resolved).
    pub state: String,
    /// The `severity` label, when there is one.
    pub severity: String,
    /// The alert's labels (none for a CloudWatch alarm).
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations (a CloudWatch alarm's `AlarmDescription` as `description`).
    pub annotations: BTreeMap<String, String>,
    /// The CloudWatch namespace (empty for other sources).
    pub namespace: String,
    /// The CloudWatch metric name (empty for other sources).
    pub metric: String,
    /// The CloudWatch dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// The value that crossed the threshold, when the sender says (CloudWatch's `NewStateReason`).
    pub value: Option<f64>,
    /// The alarm's threshold, when the sender says.
    pub threshold: Option<f64>,
    /// The AWS account the alert names (a CloudWatch alarm's ARN, else its `AWSAccountId`; the `account` label).
    pub account: String,
    /// The AWS region the alert names (a CloudWatch alarm's ARN; the `region` label).
    pub region: String,
    /// When it started, as the sender wrote it (RFC 3339 for Alertmanager and Grafana, CloudWatch's
    /// `StateChangeTime`).
    pub starts_at: String,
}

/// What the trail keeps of each alert rules were tried on (the record's `routed` note): the alert as rules saw
/// it, and the rule it came to (`None`: no rule).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Routed {
    /// The alert.
    pub alert: AlertFacts,
    /// The first rule it matched, if any.
    pub rule: Option<String>,
}

/// The note of a record that holds its alerts' `Routed` entries.
pub const ROUTED_NOTE: &str = "routed";

/// Names of the fields of `alert` a rule may read: an expression naming any other is refused at start-up.
pub const FIELDS: &[&str] = &[
    "source",
    "name",
    "state",
    "severity",
    "labels",
    "annotations",
    "namespace",
    "metric",
    "dimensions",
    "value",
    "threshold",
    "account",
    "region",
    "starts_at",
];

/// The text fields of `FIELDS`, which `AlertFacts::text` reads.
pub const TEXT_FIELDS: &[&str] = &[
    "source",
    "name",
    "state",
    "severity",
    "namespace",
    "metric",
    "account",
    "region",
    "starts_at",
];
/// The number fields of `FIELDS` (null when not known), which `AlertFacts::number` reads.
pub const NUMBER_FIELDS: &[&str] = &["value", "threshold"];
/// The maps of strings of `FIELDS`, which `AlertFacts::map` reads.
pub const MAP_FIELDS: &[&str] = &["labels", "annotations", "dimensions"];

impl AlertFacts {
    /// The text field `field` (one of `TEXT_FIELDS`), read by name as CEL reads it.
    pub fn text(&self, field: &str) -> Option<&str> {
        Some(match field {
            "source" => &self.source,
            "name" => &self.name,
            "state" => &self.state,
            "severity" => &self.severity,
            "namespace" => &self.namespace,
            "metric" => &self.metric,
            "account" => &self.account,
            "region" => &self.region,
            "starts_at" => &self.starts_at,
            _ => return None,
        })
    }

    /// The number field `field` (one of `NUMBER_FIELDS`): `Some(None)` when its value is not known.
    pub fn number(&self, field: &str) -> Option<Option<f64>> {
        match field {
            "value" => Some(self.value),
            "threshold" => Some(self.threshold),
            _ => None,
        }
    }

    /// The map field `field` (one of `MAP_FIELDS`).
    pub fn map(&self, field: &str) -> Option<&BTreeMap<String, String>> {
        match field {
            "labels" => Some(&self.labels),
            "annotations" => Some(&self.annotations),
            "dimensions" => Some(&self.dimensions),
            _ => None,
        }
    }
}

/// A CloudWatch alarm message as rules read it: more of it than `crate::sns::alarm` reads on the path of every
/// SNS delivery (the reason, the description, the metric and every dimension).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AlarmWire {
    alarm_name: String,
    new_state_value: String,
    #[serde(default)]
    new_state_reason: String,
    #[serde(default)]
    alarm_description: Option<String>,
    #[serde(default)]
    state_change_time: String,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default, rename = "AWSAccountId")]
    aws_account_id: Option<String>,
    #[serde(default)]
    trigger: Option<TriggerWire>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct TriggerWire {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    dimensions: Vec<DimensionWire>,
}

#[derive(Deserialize)]
struct DimensionWire {
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Value")]
    value: String,
}

impl AlertFacts {
    /// A CloudWatch alarm's SNS `Message`; `None` when it is not one.
    pub fn from_cloudwatch(message: &str) -> Option<Self> {
        let wire: AlarmWire = serde_json::from_str(message).ok()?;
        let trigger = wire.trigger.unwrap_or_default();
        let (account, region) =
            crate::sns::alarm_place(wire.alarm_arn.as_deref(), wire.aws_account_id);
        let state = if wire.new_state_value == "ALARM" {
            "firing"
        } else {
            "resolved"
        };
        Some(Self {
            source: "sns".into(),
            name: wire.alarm_name,
            state: state.into(),
            annotations: wire
                .alarm_description
                .map(|text| BTreeMap::from([("description".to_owned(), text)]))
                .unwrap_or_default(),
            namespace: trigger.namespace.unwrap_or_default(),
            metric: trigger.metric_name.unwrap_or_default(),
            dimensions: trigger
                .dimensions
                .into_iter()
                .map(|d| (d.name, d.value))
                .collect(),
            value: reason_value(&wire.new_state_reason),
            threshold: trigger.threshold,
            account: account.unwrap_or_default(),
            region: region.unwrap_or_default(),
            starts_at: wire.state_change_time,
            ..Self::default()
        })
    }

    /// One Alertmanager or Grafana alert (`source`), its state read with its group's status.
    pub fn from_webhook(source: &str, alert: &crate::webhook::Alert, group_status: &str) -> Self {
        let label = |name: &str| alert.labels.get(name).cloned().unwrap_or_default();
        let state = if alert.is_firing(group_status) {
            "firing"
        } else {
            "resolved"
        };
        Self {
            source: source.into(),
            name: label("alertname"),
            state: state.into(),
            severity: label("severity"),
            account: label("account"),
            region: label("region"),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.starts_at.clone(),
            ..Self::default()
        }
    }
}

impl AlertFacts {
    /// A manual request's body (`POST /remediate`, `reflex remediate`): its text fields as labels (with those
    /// of its `labels` map, which never override a field of the body), its `reason` as its name, its
    /// `account` and `region` fields (never a label of those names) as its place.
    pub fn from_manual(body: &serde_json::Value) -> Self {
        let strings = |value: &serde_json::Value| -> Vec<(String, String)> {
            value
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        };
        let mut labels: BTreeMap<String, String> = strings(body).into_iter().collect();
        for (key, value) in strings(&body["labels"]) {
            labels.entry(key).or_insert(value);
        }
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        Self {
            source: "manual".into(),
            name: labels.get("reason").cloned().unwrap_or_default(),
            state: "firing".into(),
            account: field("account"),
            region: field("region"),
            labels,
            ..Self::default()
        }
    }
}

/// The value in a CloudWatch `NewStateReason` such as "Threshold Crossed: 1 datapoint [95.2 (06/12/26
/// 10:00:00)] was greater than the threshold (90.0)." — the first number inside brackets.
fn reason_value(reason: &str) -> Option<f64> {
    let start = reason.find('[')? + 1;
    let rest = &reason[start..];
    let end =
        rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloudwatch_agent_alarm_gives_its_metric_dimensions_value_and_place() {
        let message = serde_json::json!({
            "AlarmName": "disk-used-web-1",
            "AlarmDescription": "root volume nearly full",
            "AWSAccountId": "123456789012",
            "NewStateValue": "ALARM",
            "NewStateReason": "Threshold Crossed: 1 datapoint [95.25 (06/12/26 10:00:00)] was greater than the threshold (90.0).",
            "StateChangeTime": "2026-12-06T10:00:00.000+0000",
            "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:disk-used-web-1",
            "Trigger": {
                "MetricName": "disk_used_percent",
                "Namespace": "CWAgent",
                "Threshold": 90.0,
                "Dimensions": [{"value": "i-0abc", "name": "InstanceId"}, {"value": "/", "name": "path"}]
            }
        });
        let facts = AlertFacts::from_cloudwatch(&message.to_string()).unwrap();
        assert_eq!(facts.state, "firing");
        assert_eq!(
            (facts.namespace.as_str(), facts.metric.as_str()),
            ("CWAgent", "disk_used_percent")
        );
        assert_eq!(facts.dimensions["InstanceId"], "i-0abc");
        assert_eq!((facts.value, facts.threshold), (Some(95.25), Some(90.0)));
        assert_eq!(
            (facts.account.as_str(), facts.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        assert_eq!(facts.annotations["description"], "root volume nearly full");
        assert!(AlertFacts::from_cloudwatch("not json").is_none());
    }

    #[test]
    fn reason_values_are_read_or_left_unknown() {
        assert_eq!(reason_value("x [1.5e2 (t)] y"), Some(150.0));
        assert_eq!(reason_value("no brackets"), None);
        assert_eq!(reason_value("[not a number]"), None);
    }
}
