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
    /// The sources whose alerts it considers (`sns`, `alertmanager`, `grafana`, `manual`); empty: every alert
    /// source (`manual` only when listed).
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
    /// The actions it tries in order (kinds or `[[actions]]` names), as a target's ladder does; required,
    /// and no step may remove capacity (a rule's instances sit behind no balancer reflex watches).
    #[serde(default)]
    pub ladder: Vec<String>,
    /// What it acts on: `"alert"` (the instance the alert names: the `InstanceId` dimension or the
    /// `instance` label), `"tag:KEY=VALUE"` (the running instances with that tag: one stopped on purpose is left
    /// alone), or `"none"` (no instance: what the alert names beside instances, such as a database, an Auto
    /// Scaling group or an ECS service, acted on by steps that act on a whole target, and judged by its alarm).
    #[serde(default = "alert_instances")]
    pub instances: String,
    /// How far reflex may go on its own with it; default `[remediation] mode`.
    #[serde(default)]
    pub mode: Option<super::Mode>,
    /// Distinct approvers its held decisions need; default `[approvals] required`.
    #[serde(default)]
    pub approvals_required: Option<u32>,
    /// How long after it acted its alerts are refused `cooldown`; default `[remediation] cooldown_secs`.
    #[serde(default)]
    pub cooldown_secs: Option<u64>,
    /// Whether an alert on a business metric (a namespace outside `AWS/` and `CWAgent`) may run it without
    /// approval; otherwise such a run is held for approvers.
    #[serde(default)]
    pub allow_auto: bool,
    /// How a step's check judges it, beyond the instances it acted on: `"alarm-ok"` waits for the CloudWatch
    /// alarm that started the run to be OK again, or the webhook alerts that started it to be resolved.
    #[serde(default)]
    pub verify: Option<Verify>,
    /// How long after the action `verify` waits for the alarm before the step counts as not recovered.
    #[serde(default = "verify_within")]
    pub verify_within_secs: u64,
    /// The account it acts in (`local` or an `[[accounts]]` name), through that account's role; default
    /// `local`. An alert that names another account is not its.
    #[serde(default)]
    pub account: Option<String>,
    /// The region it acts in, one its account lists; default `aws.region`. An alert that names another
    /// region is not its.
    #[serde(default)]
    pub region: Option<String>,
}

/// `verify` on a rule: what besides its instances tells that a step worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    /// The CloudWatch alarm that started the run is OK, with a state change later than the action (the
    /// Alertmanager or Grafana alerts that started it: each resolved after the action).
    AlarmOk,
}

/// How long a rule's check waits for its alarm unless it says: ten minutes.
pub const VERIFY_WITHIN_SECS: u64 = 600;

fn verify_within() -> u64 {
    VERIFY_WITHIN_SECS
}

impl RuleConfig {
    /// The `[[accounts]]` name of the account it acts in (`local` unless set).
    pub fn account_name(&self) -> &str {
        self.account.as_deref().unwrap_or(super::LOCAL_ACCOUNT)
    }

    /// The region it acts in: its own, else `default` (`aws.region`).
    pub fn region_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.region.as_deref().unwrap_or(default)
    }

    /// Where it acts, as a `[[targets]]` entry with no balancer in that account and region: what serves a
    /// target's place (its fleet, its account's role) serves the rule's.
    pub fn place(&self) -> super::TargetConfig {
        super::TargetConfig {
            account: self.account.clone(),
            region: self.region.clone(),
            ..super::TargetConfig::default()
        }
    }

    /// A fingerprint of the rule and of the `[[actions]]` entries its ladder names, as configured (16 hex
    /// digits): its runs' records carry it, so that an approval or a takeover under a rule changed since is
    /// noticed rather than acted on.
    pub fn fingerprint(&self, actions: &[super::ActionConfig]) -> String {
        let named: Vec<&super::ActionConfig> = self
            .ladder
            .iter()
            .filter_map(|step| actions.iter().find(|action| &action.name == step))
            .collect();
        let mut rule = format!("{self:?}");
        // A rule that sets no place fingerprints as it did before rules had one, so that upgrading does not
        // hold its pending approvals again.
        if let Some(before) = rule.strip_suffix(", account: None, region: None }") {
            rule = format!("{before} }}");
        }
        let text = format!("{rule}\n{named:?}");
        crate::hex::encode(&super::digest::sha256(text.as_bytes())[..8])
    }
}

impl Default for RuleConfig {
    /// A nameless rule with every key at its configured default, for building rules in code.
    fn default() -> Self {
        Self {
            name: String::new(),
            sources: Vec::new(),
            on: firing_only(),
            matches: RuleMatch::default(),
            when: None,
            ladder: Vec::new(),
            instances: alert_instances(),
            mode: None,
            approvals_required: None,
            cooldown_secs: None,
            allow_auto: false,
            verify: None,
            verify_within_secs: VERIFY_WITHIN_SECS,
            account: None,
            region: None,
        }
    }
}

/// Namespaces of system metrics outside `AWS/`: their alarms are not a business metric's.
const SYSTEM_NAMESPACES: &[&str] = &["CWAgent"];

/// Whether a CloudWatch namespace is a business metric's: set, outside `AWS/` and the agent's. Such an
/// alarm's run waits for approvers unless its rule says `allow_auto = true`.
pub fn is_business_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && !namespace.starts_with("AWS/")
        && !SYSTEM_NAMESPACES.contains(&namespace)
}

/// The tag `KEY=VALUE` a rule's `instances = "tag:KEY=VALUE"` selects; `None` for any other value.
pub fn tag_selector(instances: &str) -> Option<(&str, &str)> {
    instances
        .strip_prefix("tag:")
        .and_then(|tag| tag.split_once('='))
}

/// What a rule acts on unless it says: the instance its alert names.
pub const ALERT_INSTANCES: &str = "alert";

/// A rule's `instances` for an alert that names no instance: its steps act on what the alert names beside
/// instances (its dimensions and labels), once for the whole alert.
pub const NO_INSTANCES: &str = "none";

fn alert_instances() -> String {
    ALERT_INSTANCES.to_owned()
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
