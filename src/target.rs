//! How alerts, the configuration and the fleet name what reflex heals: a classic load balancer by its name, or
//! an ELBv2 target group by its name, its ARN, or the `targetgroup/NAME/ID` form CloudWatch puts in an
//! alarm's `TargetGroup` dimension. Pure, so that every receiver and the engine match targets the same way.

use std::fmt;

/// A target as named by an alert, a request or the configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetRef {
    /// A classic ELB, by name.
    LoadBalancer(String),
    /// An ELBv2 (ALB/NLB) target group: name, ARN or `targetgroup/NAME/ID`.
    TargetGroup(String),
    /// A `[[rules]]` entry, by name: what it acts on comes with the alert that matched it.
    Rule(String),
}

/// Why a pair of `load_balancer` / `target_group` fields (a request, a `[[targets]]` entry, the command line)
/// names no single target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// Both are given.
    #[error("give either load_balancer or target_group, not both")]
    Both,
    /// Neither is given.
    #[error("give load_balancer (classic ELB name) or target_group (name or ARN)")]
    Neither,
}

impl TargetRef {
    /// The target a pair of fields names: exactly one of a classic load balancer and a target group.
    pub fn from_pair(
        load_balancer: Option<String>,
        target_group: Option<String>,
    ) -> Result<Self, PairError> {
        match (load_balancer, target_group) {
            (Some(name), None) => Ok(Self::LoadBalancer(name)),
            (None, Some(group)) => Ok(Self::TargetGroup(group)),
            (Some(_), Some(_)) => Err(PairError::Both),
            (None, None) => Err(PairError::Neither),
        }
    }

    /// The name or identifier as given.
    pub fn value(&self) -> &str {
        match self {
            Self::LoadBalancer(value) | Self::TargetGroup(value) | Self::Rule(value) => value,
        }
    }

    /// Which kind of target it names.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Self::LoadBalancer(_) => TargetKind::LoadBalancer,
            Self::TargetGroup(_) => TargetKind::TargetGroup,
            Self::Rule(_) => TargetKind::Rule,
        }
    }

    /// What kind of target this is, in words for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LoadBalancer(_) => "load balancer",
            Self::TargetGroup(_) => "target group",
            Self::Rule(_) => "rule",
        }
    }
}

/// Where an alert, a request or the command line says its target is: an account (an `[[accounts]]` name,
/// `local`, or a 12-digit account id) and a region, each when it says so. Together with a `TargetRef` it
/// picks one configured target out of several of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The account, as named; `None`: any.
    pub account: Option<String>,
    /// The region; `None`: any.
    pub region: Option<String>,
}

impl Place {
    /// A place that says nothing: any account, any region.
    pub const ANYWHERE: Place = Place {
        account: None,
        region: None,
    };

    /// The place named by optional `account` and `region` fields (empty strings say nothing).
    pub fn new(account: Option<String>, region: Option<String>) -> Self {
        let given = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        Self {
            account: given(account),
            region: given(region),
        }
    }

    /// Whether the place names an account or a region at all.
    pub fn is_given(&self) -> bool {
        self.account.is_some() || self.region.is_some()
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.account, &self.region) {
            (Some(account), Some(region)) => write!(f, "in account {account:?}, region {region:?}"),
            (Some(account), None) => write!(f, "in account {account:?}"),
            (None, Some(region)) => write!(f, "in region {region:?}"),
            (None, None) => write!(f, "anywhere"),
        }
    }
}

/// Whether `value` is a 12-digit AWS account id.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// What a target is: a balancer, a rule, or one instance (a resource whose own pause or silence holds it
/// back from every run in its account and region).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A classic ELB.
    LoadBalancer,
    /// An ELBv2 (ALB/NLB) target group.
    TargetGroup,
    /// A `[[rules]]` entry: its pauses, silences, breaker, cooldown and budgets are its own.
    Rule,
    /// One EC2 instance, a resource runs act on: paused or silenced, every target's and rule's run in its
    /// account and region leaves it alone (skipped `paused`, `silenced`).
    Instance,
}

/// Where a target lives and what it is: the one identity of a target from the configuration to every table of
/// the store (its breaker, pause, leases, cooldown and budgets, its records). The same balancer name in two
/// accounts or two regions is two targets.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TargetId {
    /// The AWS account id (12 digits) the target is in.
    pub account: String,
    /// The AWS region.
    pub region: String,
    /// Classic ELB, target group, rule or instance.
    pub kind: TargetKind,
    /// The name it goes by in the configuration and the audit trail: the load balancer's name or the target
    /// group as configured, the rule's name, the instance's id.
    pub name: String,
}

impl TargetId {
    /// The identity of `name`, of `kind`, in `account` and `region`.
    pub fn new(
        account: impl Into<String>,
        region: impl Into<String>,
        kind: TargetKind,
        name: impl Into<String>,
    ) -> Self {
        Self {
            account: account.into(),
            region: region.into(),
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TargetKind::LoadBalancer => "load balancer",
            TargetKind::TargetGroup => "target group",
            TargetKind::Rule => "rule",
            TargetKind::Instance => "instance",
        };
        write!(
            f,
            "{kind} {:?} in {}/{}",
            self.name, self.account, self.region
        )
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.value())
    }
}

/// The ARN marker of a target group resource.
const RESOURCE: &str = "targetgroup/";

/// Whether `value` is a target group ARN.
pub fn is_target_group_arn(value: &str) -> bool {
    value.starts_with("arn:") && value.contains(":targetgroup/")
}

/// The `targetgroup/NAME/ID` part of an ARN or dimension value, when it has one.
fn resource_of(value: &str) -> Option<&str> {
    let at = value.find(RESOURCE)?;
    (at == 0 || value[..at].ends_with(':')).then(|| &value[at..])
}

/// The target group name in a name, an ARN or a `targetgroup/NAME/ID` value.
pub fn target_group_name(value: &str) -> &str {
    match resource_of(value) {
        Some(resource) => resource[RESOURCE.len()..]
            .split('/')
            .next()
            .unwrap_or_default(),
        None => value,
    }
}

/// Whether `reference` (from an alert, a request or the configuration) names the target `own`: a load balancer
/// by its name, a target group by its name, its ARN or the `targetgroup/NAME/ID` of a CloudWatch dimension.
/// The one way every receiver, the configuration and the engine match targets.
pub fn names(reference: &TargetRef, own: &TargetRef) -> bool {
    match (reference, own) {
        (TargetRef::LoadBalancer(name), TargetRef::LoadBalancer(own)) => name == own,
        (TargetRef::TargetGroup(value), TargetRef::TargetGroup(own)) => {
            same_target_group(own, value)
        }
        (TargetRef::Rule(name), TargetRef::Rule(own)) => name == own,
        _ => false,
    }
}

/// Whether two ways of naming a target group name the same one. When both carry the group's id (ARNs or
/// dimension values) the ids must agree too; otherwise the names decide (names are unique in an account
/// and region, which is all reflex ever sees).
pub fn same_target_group(a: &str, b: &str) -> bool {
    match (resource_of(a), resource_of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => target_group_name(a) == target_group_name(b),
    }
}

/// Whether `value` is a valid target group name: 1 to 32 letters, digits and hyphens, not starting or ending
/// with a hyphen (AWS's rule).
pub fn is_target_group_name(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/73e2d6bc24d8a067";

    #[test]
    fn names_arns_and_dimensions_of_one_group_match() {
        assert_eq!(target_group_name(ARN), "web-tg");
        assert_eq!(
            target_group_name("targetgroup/web-tg/73e2d6bc24d8a067"),
            "web-tg"
        );
        assert_eq!(target_group_name("web-tg"), "web-tg");
        assert!(same_target_group(
            ARN,
            "targetgroup/web-tg/73e2d6bc24d8a067"
        ));
        assert!(same_target_group(
            "web-tg",
            "targetgroup/web-tg/73e2d6bc24d8a067"
        ));
        assert!(same_target_group(ARN, "web-tg"));
        assert!(!same_target_group(
            ARN,
            "targetgroup/web-tg/0000000000000000"
        ));
        assert!(!same_target_group("web-tg", "api-tg"));
        assert!(!same_target_group(
            "web-tg",
            "targetgroup/web-tg-2/73e2d6bc24d8a067"
        ));
        // "targetgroup/" inside a name is not a resource marker.
        assert_eq!(target_group_name("xtargetgroup/a/b"), "xtargetgroup/a/b");
    }

    #[test]
    fn arns_and_names_are_told_apart() {
        assert!(is_target_group_arn(ARN));
        assert!(!is_target_group_arn("web-tg"));
        assert!(is_target_group_name("web-tg"));
        assert!(!is_target_group_name("-web"));
        assert!(!is_target_group_name(&"a".repeat(33)));
        assert!(!is_target_group_name("web_tg"));
    }

    #[test]
    fn a_target_id_says_where_the_target_lives() {
        let web = TargetId::new("111111111111", "eu-west-1", TargetKind::LoadBalancer, "web");
        assert_eq!(
            web.to_string(),
            "load balancer \"web\" in 111111111111/eu-west-1"
        );
        let elsewhere = TargetId::new("222222222222", "eu-west-1", TargetKind::LoadBalancer, "web");
        assert_ne!(
            web, elsewhere,
            "the same name in another account is another target"
        );
    }

    #[test]
    fn a_pair_of_fields_names_exactly_one_target() {
        let name = || Some("web".to_owned());
        assert_eq!(
            TargetRef::from_pair(name(), None),
            Ok(TargetRef::LoadBalancer("web".into()))
        );
        assert_eq!(
            TargetRef::from_pair(None, name()),
            Ok(TargetRef::TargetGroup("web".into()))
        );
        assert_eq!(TargetRef::from_pair(name(), name()), Err(PairError::Both));
        assert_eq!(TargetRef::from_pair(None, None), Err(PairError::Neither));
    }

    #[test]
    fn display_says_the_kind() {
        assert_eq!(
            TargetRef::TargetGroup("tg".into()).to_string(),
            "target group \"tg\""
        );
        assert_eq!(
            TargetRef::LoadBalancer("web".into()).to_string(),
            "load balancer \"web\""
        );
    }
}
