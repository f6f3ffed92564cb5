//! `[[rules]]`: which alerts, from any source, a response is for. A rule names what it matches (the `match`
//! shorthands and a CEL `when`); the rules themselves are compiled and checked by `crate::rules`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `[[rules]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name, unique, shown in records and by `reflex rules test`.
    pub name: String,
    /// The sources whose alerts it considers (`sns`, `alertmanager`, `grafana`, `manual`); empty: all.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The alert states it considers (`firing`, `resolved`); default: firing only.
    #[serde(default = "firing_only")]
    pub on: Vec<String>,
    /// Shorthands for the common cases, all of which must hold.
    #[serde(default, rename = "match")]
    pub matches: RuleMatch,
    /// A CEL expression over `alert` and `now` that must be true.
    #[serde(default)]
    pub when: Option<String>,
}

fn firing_only() -> Vec<String> {
    vec!["firing".to_owned()]
}

/// `[rules.match]`: each key set must hold; a text value starting `re:` is a regular expression that must
/// match the whole value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    /// The alarm's or alert's name (CloudWatch `AlarmName`, the `alertname` label).
    pub alarm_name: Option<String>,
    /// The CloudWatch namespace (`CWAgent`, `AWS/EC2`, `Shop/Orders`).
    pub namespace: Option<String>,
    /// The CloudWatch metric name.
    pub metric: Option<String>,
    /// CloudWatch dimensions that must be present with these values.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Alert labels that must be present with these values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The alert's severity (the `severity` label).
    pub severity: Option<String>,
}
