//! Which rule an alert is for, and what that rule's run acts on: the first `[[rules]]` entry that matches,
//! with the instance its alert names (or the tag its `instances` selects), and whether the alert is a
//! business metric's, whose run waits for approvers unless the rule allows it to act on its own.

use time::OffsetDateTime;

use super::Engine;
use super::trigger::{AlertNames, Authenticated, Resources, Trigger};
use crate::config::{
    ALERT_INSTANCES, NO_INSTANCES, RuleConfig, is_business_namespace, tag_selector,
};
use crate::rules::AlertFacts;
use crate::target::{Place, TargetRef};

/// The rule an alert matched, and what its run acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The rule's name.
    pub rule: String,
    /// What it acts on, as resolved from the alert.
    pub resources: Resources,
    /// Why its run waits for approvers whatever its mode, when it does (a business metric's alarm).
    pub needs_approval: Option<String>,
    /// The identities of the webhook alerts it is for (their fingerprints): a rule verified by its alert
    /// waits for them resolved. Empty for a CloudWatch alarm.
    pub alerts: Vec<String>,
    /// What its alert names beside instances.
    pub named: AlertNames,
    /// Whether the rule acts on no instance (`instances = "none"`): on what `named` names alone.
    pub on_alert: bool,
}

impl Matched {
    /// Whether `other`, an alert of the same delivery, joins this one's run: one of the same rule, and for a
    /// rule on no instance, one that names the same things (another database is another run).
    pub fn joins(&self, other: &Matched) -> bool {
        self.rule == other.rule && (!self.on_alert || self.named == other.named)
    }

    /// Adds what another alert of the same rule selected: its instances to these, its reason to wait.
    pub fn merge(&mut self, other: Matched) {
        if let (Resources::Instances(mine), Resources::Instances(theirs)) =
            (&mut self.resources, other.resources)
        {
            for id in theirs {
                if !mine.contains(&id) {
                    mine.push(id);
                }
            }
        }
        if self.needs_approval.is_none() {
            self.needs_approval = other.needs_approval;
        }
        self.alerts.extend(other.alerts);
        // The first alert's names stand: another of the group adds only what it names alone.
        for (key, value) in other.named {
            self.named.entry(key).or_insert(value);
        }
    }
}

impl Trigger {
    /// A trigger for the rule `matched` names, acting on what it resolved from the alert.
    pub fn for_rule(
        proof: Authenticated,
        matched: Matched,
        message: String,
        dry_run: bool,
    ) -> Self {
        Self {
            resources: matched.resources,
            needs_approval: matched.needs_approval,
            alerts: matched.alerts,
            named: matched.named,
            ..Self::new(proof, TargetRef::Rule(matched.rule), message, dry_run)
        }
    }
}

impl Engine {
    /// Whether any rule is configured: then an alert that matches none and names no target is refused.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The first rule `alert` matches now, with what its run acts on; `None` when no rule matches.
    pub fn route(&self, alert: &AlertFacts) -> Option<Matched> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let rule = self.rules.first_match(alert, now)?;
        let config = self.config.rules.iter().find(|r| r.name == rule.name)?;
        Some(matched(config, alert))
    }

    /// The rule `name` for a manual request, acting on what the request (`alert`) selects; `None` when no
    /// rule of that name takes manual requests: only one that lists `manual` in its `sources` does (a rule
    /// for every source is not for people to start by hand).
    fn manual_rule(&self, name: &str, alert: &AlertFacts) -> Option<Matched> {
        let config = self.config.rules.iter().find(|rule| {
            rule.name == name && rule.sources.iter().any(|source| source == "manual")
        })?;
        // An account or region the request gives must be where the rule acts.
        let place = Place::new(Some(alert.account.clone()), Some(alert.region.clone()));
        let reference = TargetRef::Rule(config.name.clone());
        if self.targets.find(&reference, &place).is_empty() {
            return None;
        }
        Some(matched(config, alert))
    }

    /// The rule a manual request (`POST /remediate`, `reflex remediate`) runs: the one it names (`rule`),
    /// else the first it matches, acting on the instance it names (`instance_id`) or on what its `labels`
    /// select. `body` is the request as JSON, read as `AlertFacts::from_manual` reads it.
    pub fn manual(
        &self,
        rule: Option<&str>,
        instance_id: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Matched, ManualRefusal> {
        if let Some(id) = instance_id
            && !is_instance_id(id)
        {
            return Err(ManualRefusal::NotAnInstance(crate::untrusted::bounded(id)));
        }
        let alert = AlertFacts::from_manual(body);
        let matched = match rule {
            Some(name) => self
                .manual_rule(name, &alert)
                .ok_or_else(|| ManualRefusal::UnknownRule(crate::untrusted::bounded(name)))?,
            None => self.route(&alert).ok_or(ManualRefusal::NoRuleMatched)?,
        };
        if instance_id.is_some() && !matches!(matched.resources, Resources::Instances(_)) {
            return Err(ManualRefusal::SelectsByTag(matched.rule));
        }
        if instance_id.is_some() && matched.on_alert {
            return Err(ManualRefusal::ActsOnNoInstance(matched.rule));
        }
        Ok(matched)
    }
}

/// Why a manual request for a rule's run is refused, before anything is done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualRefusal {
    /// Its `instance_id` is no EC2 instance id.
    #[error("instance_id {0:?} is not an EC2 instance id (i-...)")]
    NotAnInstance(String),
    /// No rule of the name it gives takes manual requests (in the account and region it gives).
    #[error(
        "no rule {0:?} takes manual requests (one that lists \"manual\" in its sources), in the account and \
         region the request gives"
    )]
    UnknownRule(String),
    /// It names no rule and matches none that takes manual requests.
    #[error(
        "the request names no load_balancer, target_group or rule, and matches no rule that lists \"manual\" \
         in its sources"
    )]
    NoRuleMatched,
    /// It names an instance for a rule that selects its instances by tag.
    #[error("rule {0:?} selects its instances by tag: instance_id does not apply")]
    SelectsByTag(String),
    /// It names an instance for a rule on no instance (`instances = "none"`).
    #[error(
        "rule {0:?} acts on what its alert names, not on an instance (instances = \"none\"): instance_id does \
         not apply; give the names as labels"
    )]
    ActsOnNoInstance(String),
}

impl ManualRefusal {
    /// The HTTP status and error code it is answered and recorded with: a malformed request is 400
    /// `invalid-request`, an unknown rule 404 `unknown-rule`, a request no rule takes 422 `no-rule-matched`.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::NotAnInstance(_) | Self::SelectsByTag(_) | Self::ActsOnNoInstance(_) => {
                (400, "invalid-request")
            }
            Self::UnknownRule(_) => (404, "unknown-rule"),
            Self::NoRuleMatched => (422, "no-rule-matched"),
        }
    }
}

/// What `config`, the rule `alert` matched, acts on.
pub fn matched(config: &RuleConfig, alert: &AlertFacts) -> Matched {
    Matched {
        rule: config.name.clone(),
        resources: resources_of(&config.instances, alert),
        needs_approval: business_metric(alert).filter(|_| !config.allow_auto),
        alerts: Vec::new(),
        named: named_by(alert),
        on_alert: config.instances == NO_INSTANCES,
    }
}

/// What `alert` names: its labels, and its CloudWatch dimensions over them.
pub fn named_by(alert: &AlertFacts) -> AlertNames {
    let mut named = alert.labels.clone();
    named.extend(alert.dimensions.clone());
    named
}

/// What a rule's `instances` selects for `alert`: the instance the alert names (none when it names none),
/// or a tag. The setting's form is checked at start-up.
fn resources_of(instances: &str, alert: &AlertFacts) -> Resources {
    if let Some((key, value)) = tag_selector(instances) {
        return Resources::Tagged {
            key: key.to_owned(),
            value: value.to_owned(),
        };
    }
    if instances == NO_INSTANCES {
        // What the alert names is the steps' to read (`named`), not an instance.
        return Resources::Instances(Vec::new());
    }
    debug_assert_eq!(instances, ALERT_INSTANCES);
    Resources::Instances(named_instance(alert).into_iter().collect())
}

/// The instance an alert names: CloudWatch's `InstanceId` dimension, else the `instance_id` or `instance`
/// label (a Prometheus `instance` of `host:port` is read up to its port); only an EC2 instance id counts.
pub fn named_instance(alert: &AlertFacts) -> Option<String> {
    let candidates = [
        alert.dimensions.get("InstanceId"),
        alert.labels.get("instance_id"),
        alert.labels.get("instance"),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|value| value.split(':').next().unwrap_or_default())
        .find(|value| is_instance_id(value))
        .map(str::to_owned)
}

/// Whether `value` is an EC2 instance id (`i-` and 8 or 17 hexadecimal digits).
pub fn is_instance_id(value: &str) -> bool {
    value.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// When `alert` is a CloudWatch alarm on a business metric (a namespace outside `AWS/` and the agent's), its
/// metric, value and threshold in words.
fn business_metric(alert: &AlertFacts) -> Option<String> {
    let namespace = alert.namespace.as_str();
    if !is_business_namespace(namespace) {
        return None;
    }
    let number = |value: Option<f64>| value.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    Some(format!(
        "alarm {:?} is on the business metric {namespace} {} (value {}, threshold {}): approvers decide, \
         unless the rule says allow_auto = true",
        crate::untrusted::bounded(&alert.name),
        crate::untrusted::bounded(&alert.metric),
        number(alert.value),
        number(alert.threshold)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(instances: &str, allow_auto: bool) -> RuleConfig {
        let text = format!(
            "[[rules]]\nname = \"r\"\ninstances = {instances:?}\nallow_auto = {allow_auto}\nladder = [\"reboot\"]\n"
        );
        let config = crate::config::parse(&text, []).unwrap();
        config.rules[0].clone()
    }

    fn alarm(namespace: &str, dimensions: &[(&str, &str)]) -> AlertFacts {
        AlertFacts {
            source: "sns".into(),
            name: "a".into(),
            namespace: namespace.into(),
            metric: "m".into(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value: Some(3.0),
            threshold: Some(10.0),
            ..AlertFacts::default()
        }
    }

    #[test]
    fn the_alerts_instance_is_its_dimension_or_label_and_only_an_instance_id() {
        let disk = alarm("CWAgent", &[("InstanceId", "i-0123456789abcdef0")]);
        assert_eq!(
            matched(&rule("alert", false), &disk).resources,
            Resources::Instances(vec!["i-0123456789abcdef0".into()])
        );
        let mut kafka = AlertFacts::default();
        kafka
            .labels
            .insert("instance".into(), "i-0abc1234:9100".into());
        assert_eq!(named_instance(&kafka).as_deref(), Some("i-0abc1234"));
        kafka
            .labels
            .insert("instance".into(), "broker-1:9100".into());
        assert_eq!(named_instance(&kafka), None);
        assert_eq!(
            matched(&rule("alert", false), &kafka).resources,
            Resources::Instances(Vec::new())
        );
        assert!(!is_instance_id("i-0abc"));
        assert!(!is_instance_id("i-0123456789abcdefg"));
    }

    #[test]
    fn a_tag_selector_is_kept_for_the_run_to_resolve() {
        let orders = alarm("Shop/OrdersPerMinute", &[]);
        assert_eq!(
            matched(&rule("tag:role=checkout", true), &orders).resources,
            Resources::Tagged {
                key: "role".into(),
                value: "checkout".into()
            }
        );
    }

    #[test]
    fn a_business_metrics_alarm_waits_for_approvers_unless_the_rule_allows_it() {
        let orders = alarm("Shop/OrdersPerMinute", &[]);
        let held = matched(&rule("alert", false), &orders)
            .needs_approval
            .unwrap();
        assert!(
            held.contains("Shop/OrdersPerMinute m (value 3, threshold 10)"),
            "{held}"
        );
        assert_eq!(matched(&rule("alert", true), &orders).needs_approval, None);
        for system in ["AWS/EC2", "CWAgent", ""] {
            assert_eq!(
                matched(&rule("alert", false), &alarm(system, &[])).needs_approval,
                None,
                "{system}"
            );
        }
    }
}
