//! Start-up validation: each section checks itself, and `Config::validate` adds the checks that span sections.
//! Every message names the key and says how to fix it.

use super::{
    AuditConfig, AwsConfig, CertificatesFrom, Config, ConfigError, NotifyConfig, NotifyEvent,
    NotifyFormat, RemediationConfig, Secret, ServerConfig, SnsConfig, TargetConfig, WebhookConfig,
};
use crate::target::{PairError, Place, TargetRef};

/// Shortest accepted token: long enough that guessing is hopeless.
pub(super) const MIN_TOKEN_LEN: usize = 16;

/// Whether `user` looks like a Slack user id (`U0123ABCD`).
pub(super) fn is_slack_user(user: &str) -> bool {
    user.len() >= 2
        && user
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

pub(super) fn invalid(
    key: impl Into<String>,
    problem: impl Into<String>,
) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    })
}

impl Config {
    /// Validates every section, then the references between them.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.aws.validate()?;
        self.audit.validate()?;
        self.remediation.validate()?;
        for (index, account) in self.accounts.iter().enumerate() {
            account.validate(&self.accounts[..index])?;
        }
        TargetConfig::validate_all(&self.targets, &self.aws.region, !self.rules.is_empty())?;
        for target in &self.targets {
            self.validate_place(target)?;
        }
        self.sns.validate()?;
        self.validate_windows()?;
        self.validate_sns_references()?;
        self.alertmanager.validate("alertmanager", self)?;
        self.grafana.validate("grafana", self)?;
        self.validate_scoped("alertmanager", &self.alertmanager)?;
        self.validate_scoped("grafana", &self.grafana)?;
        check_tokens("manual.tokens", &self.manual.tokens)?;
        check_tokens("admin.tokens", &self.admin.tokens)?;
        self.validate_digests()?;
        self.validate_approvals()?;
        if let Err(err) = super::actions::check_names(&self.actions) {
            return Err(ConfigError::Invalid {
                key: "actions.name".to_owned(),
                problem: err.to_string(),
            });
        }
        if let Some(url) = &self.server.public_url
            && !url::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
        {
            return invalid(
                "server.public_url",
                "must be an http(s) URL, e.g. \"https://reflex.example.com\"",
            );
        }
        for (index, notify) in self.notify.iter().enumerate() {
            notify.validate(index)?;
        }
        self.validate_retention()
    }

    /// A window names only configured targets and rules (or `*`).
    fn validate_windows(&self) -> Result<(), ConfigError> {
        for window in &self.windows {
            if let Some(name) = window.targets.iter().find(|name| {
                *name != "*"
                    && !self.targets.iter().any(|t| t.name() == *name)
                    && !self.rules.iter().any(|rule| rule.name == **name)
            }) {
                return invalid(
                    "windows.targets",
                    format!(
                        "window {:?} names {name:?}, which is not a configured target's load_balancer or \
                         target_group, nor a rule's name; fix the name, or use \"*\" for every target",
                        window.name
                    ),
                );
            }
        }
        Ok(())
    }

    /// A target's SNS topics are listed in `[sns]`, and certificates come from the endpoint only when it is
    /// an emulator on this host.
    fn validate_sns_references(&self) -> Result<(), ConfigError> {
        if let Some(arn) = self
            .targets
            .iter()
            .flat_map(|t| &t.sns_topic_arns)
            .find(|arn| !self.sns.topic_arns.contains(arn))
        {
            return invalid(
                "targets.sns_topic_arns",
                format!("names {arn:?}, which is not listed in sns.topic_arns; add it there"),
            );
        }
        if self.sns.certificates_from == CertificatesFrom::Endpoint {
            let loopback = self
                .aws
                .endpoint_url
                .as_deref()
                .and_then(|endpoint| url::Url::parse(endpoint).ok())
                .is_some_and(|url| is_loopback(&url));
            if !loopback {
                return invalid(
                    "sns.certificates_from",
                    "is \"endpoint\", which is for an AWS emulator on this host only: aws.endpoint_url must be \
                     a loopback address (e.g. \"http://127.0.0.1:5000\"); use \"aws\" everywhere else",
                );
            }
        }
        Ok(())
    }

    /// The audit records are kept at least as long as the rules that read them look back.
    fn validate_retention(&self) -> Result<(), ConfigError> {
        if self.audit.retain_days > 0
            && let Some(refusal) = self.lookback().refusal(self.audit.retain_days)
        {
            return invalid(
                "audit.retain_days",
                format!(
                    "is {}: {refusal} (or 0, which keeps every record)",
                    self.audit.retain_days
                ),
            );
        }
        Ok(())
    }
}

impl Config {
    /// Approver tokens are long and belong to no other door; a held decision waits a sane while and needs
    /// between one and five approvers; Slack's approvers need its signing secret.
    fn validate_approvals(&self) -> Result<(), ConfigError> {
        let approvals = &self.approvals;
        check_tokens("approvals.tokens", &approvals.tokens)?;
        let shared = approvals.tokens.iter().any(|token| {
            self.door_secrets()
                .into_iter()
                .any(|(door, secret)| door != "approvals.tokens" && secret == token)
        });
        if shared {
            return invalid(
                "approvals.tokens",
                "holds a token that [manual], [admin], [audit], [alertmanager] or [grafana] also accepts (as a \
                 token or a password): an approver's token must be its own, so that who approved is known",
            );
        }
        if !(1..=86_400).contains(&approvals.ttl_secs) {
            return invalid(
                "approvals.ttl_secs",
                format!(
                    "is {}: a held decision waits between 1 s and a day (default {})",
                    approvals.ttl_secs,
                    super::DEFAULT_TTL_SECS
                ),
            );
        }
        let required = std::iter::once(("approvals.required", approvals.required)).chain(
            self.targets
                .iter()
                .filter_map(|t| Some(("targets.approvals_required", t.approvals_required?)))
                .chain(
                    self.rules
                        .iter()
                        .filter_map(|r| Some(("rules.approvals_required", r.approvals_required?))),
                ),
        );
        for (key, required) in required {
            if !(1..=5).contains(&required) {
                return invalid(
                    key,
                    format!(
                        "is {required}: between 1 and 5 distinct approvers (2: the two-person rule)"
                    ),
                );
            }
        }
        let slack = &self.slack;
        let approvers = approvals.tokens.len() + slack.approvers.len() + approvals.approvers.len();
        for target in &self.targets {
            let required = self.approvals_required_of(target);
            if self.mode_of(target) == super::Mode::Approve && (required as usize) > approvers {
                return invalid(
                    "targets.mode",
                    format!(
                        "of {:?} is \"approve\", which needs {required} distinct approver(s), but [approvals] \
                         tokens, [slack] approvers and [[approvals.approvers]] name {approvers}: its decisions \
                         could only expire",
                        target.name()
                    ),
                );
            }
        }
        self.validate_rules(approvers)?;
        self.validate_slack_approvers()?;
        self.validate_named_approvers()
    }

    /// A rule's name is no target's (its pauses, breaker and records are keyed by name), and a rule whose runs
    /// are held (its mode is approve, or it matches a business metric's namespace without `allow_auto`) has
    /// enough approvers.
    fn validate_rules(&self, approvers: usize) -> Result<(), ConfigError> {
        let approvals = &self.approvals;
        for rule in &self.rules {
            if self.targets.iter().any(|target| target.name() == rule.name) {
                return invalid(
                    "rules.name",
                    format!(
                        "{:?} is also a target's name: pauses, breakers and records name each by its name, so \
                         give the rule another",
                        rule.name
                    ),
                );
            }
            self.validate_rule_place(rule)?;
            let required = rule.approvals_required.unwrap_or(approvals.required) as usize;
            let mode = rule.mode.unwrap_or(self.remediation.mode);
            // A `match.namespace` of "" is read the stricter way, as a business metric's.
            let business = !rule.allow_auto
                && rule.matches.namespace.as_deref().is_some_and(|namespace| {
                    namespace.is_empty() || super::is_business_namespace(namespace)
                });
            if (mode == super::Mode::Approve || business) && required > approvers {
                return invalid(
                    "rules.mode",
                    format!(
                        "of rule {:?} holds its runs for {required} distinct approver(s) ({}), but [approvals] \
                         tokens, [slack] approvers and [[approvals.approvers]] name {approvers}: its decisions \
                         could only expire",
                        rule.name,
                        if business {
                            "a business metric's alarm, without allow_auto = true"
                        } else {
                            "mode = \"approve\""
                        }
                    ),
                );
            }
        }
        Ok(())
    }

    /// A rule's account is `local` or listed under `[[accounts]]`, and its region one that account allows.
    fn validate_rule_place(&self, rule: &super::RuleConfig) -> Result<(), ConfigError> {
        let name = rule.account_name();
        let region = rule.region_or(&self.aws.region);
        if region.trim().is_empty() {
            return invalid(
                "rules.region",
                "must name an AWS region, e.g. \"eu-west-1\"",
            );
        }
        match self.account(name) {
            Some(account) if !account.allows(region, &self.aws.region) => invalid(
                "rules.region",
                format!(
                    "is {region:?} for rule {:?}, which account {name:?} does not list in its regions; add it \
                     to that [[accounts]] entry's regions",
                    rule.name
                ),
            ),
            None if name != super::LOCAL_ACCOUNT => invalid(
                "rules.account",
                format!(
                    "names {:?} for rule {:?}, which is neither \"local\" nor the name of an [[accounts]] \
                     entry",
                    crate::untrusted::bounded(name),
                    rule.name
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Slack's approvers need the app's signing secret, and are Slack user ids.
    fn validate_slack_approvers(&self) -> Result<(), ConfigError> {
        let slack = &self.slack;
        if !slack.approvers.is_empty() && !slack.enabled() {
            return invalid(
                "slack.approvers",
                "is set without slack.signing_secret_file: Slack's buttons cannot be trusted without the \
                 app's signing secret",
            );
        }
        if let Some(user) = slack.approvers.iter().find(|user| !is_slack_user(user)) {
            return invalid(
                "slack.approvers",
                format!("holds {user:?}, which is not a Slack user id (like \"U0123ABCD\")"),
            );
        }
        if let Some(secret) = &slack.signing_secret
            && secret.expose().len() < 16
        {
            return invalid(
                "slack.signing_secret",
                "is shorter than 16 characters: use the app's Signing Secret from its Basic Information page",
            );
        }
        Ok(())
    }

    /// A target's account is `local` or listed under `[[accounts]]`, its region one that account allows, and
    /// a target group given by ARN is in that region (and account, when its id is known).
    fn validate_place(&self, target: &TargetConfig) -> Result<(), ConfigError> {
        let name = target.account_name();
        let region = self.region_of(target);
        if region.trim().is_empty() {
            return invalid(
                "targets.region",
                "must name an AWS region, e.g. \"eu-west-1\"",
            );
        }
        let account_id = match self.account(name) {
            Some(account) if !account.allows(region, &self.aws.region) => {
                return invalid(
                    "targets.region",
                    format!(
                        "is {region:?} for target \"{}\", which account {name:?} does not list in its \
                         regions; add it to that [[accounts]] entry's regions",
                        target.name()
                    ),
                );
            }
            Some(account) => Some(account.account_id()),
            None if name == super::LOCAL_ACCOUNT => self.aws.account_id.as_deref(),
            None => {
                return invalid(
                    "targets.account",
                    format!(
                        "names {:?} for target \"{}\", which is neither \"local\" nor the name of an \
                         [[accounts]] entry",
                        crate::untrusted::bounded(name),
                        target.name()
                    ),
                );
            }
        };
        if let Some(arn) = target
            .target_group
            .as_deref()
            .filter(|group| crate::target::is_target_group_arn(group))
        {
            let mut parts = arn.split(':');
            let (arn_region, arn_account) = (parts.nth(3), parts.next());
            if arn_region != Some(region) {
                return invalid(
                    "targets.target_group",
                    format!(
                        "names {arn:?}, which is not in the target's region {region:?} (targets.region, \
                         else aws.region)"
                    ),
                );
            }
            if let Some(account_id) = account_id
                && arn_account != Some(account_id)
            {
                return invalid(
                    "targets.target_group",
                    format!(
                        "names {arn:?}, which is not in the target's account {account_id} ({name}); set \
                         targets.account to the account the group is in"
                    ),
                );
            }
        }
        Ok(())
    }
}

impl super::AccountConfig {
    /// A name of its own (not `local`), a role ARN in another account than the earlier entries, a session
    /// AWS accepts, and a refresh margin shorter than the session.
    fn validate(&self, earlier: &[Self]) -> Result<(), ConfigError> {
        let name = self.name.as_str();
        if name.trim().is_empty() || name == super::LOCAL_ACCOUNT {
            return invalid(
                "accounts.name",
                "must name the account (e.g. \"prod\"); \"local\" is the account reflex runs in, which needs \
                 no [[accounts]] entry",
            );
        }
        if earlier.iter().any(|other| other.name == name) {
            return invalid("accounts.name", format!("lists {name:?} twice"));
        }
        if !is_role_arn(&self.role_arn) {
            return invalid(
                "accounts.role_arn",
                format!(
                    "of account {name:?} holds {:?}, which is not an IAM role ARN \
                     (arn:aws:iam::123456789012:role/NAME)",
                    crate::untrusted::bounded(&self.role_arn)
                ),
            );
        }
        if let Some(other) = earlier
            .iter()
            .find(|other| other.account_id() == self.account_id())
        {
            return invalid(
                "accounts.role_arn",
                format!(
                    "of account {name:?} is in account {}, which account {:?} already names: one entry per \
                     AWS account",
                    self.account_id(),
                    other.name
                ),
            );
        }
        self.validate_session(name)?;
        if self
            .external_id
            .as_ref()
            .is_some_and(|id| id.expose().trim().is_empty())
        {
            return invalid(
                "accounts.external_id",
                format!("of account {name:?} is empty"),
            );
        }
        if self.regions.iter().any(|region| region.trim().is_empty()) {
            return invalid(
                "accounts.regions",
                format!("of account {name:?} lists an empty region"),
            );
        }
        check_topic_arns("accounts.sns_topic_arns", &self.sns_topic_arns)
    }

    /// A session AWS accepts, and a refresh margin shorter than it (`name`: the account's).
    fn validate_session(&self, name: &str) -> Result<(), ConfigError> {
        if !(900..=43_200).contains(&self.session_duration_secs) {
            return invalid(
                "accounts.session_duration_secs",
                format!(
                    "of account {name:?} must be between 900 and 43200 (AWS's bounds; 3600 is usual)"
                ),
            );
        }
        if self.refresh_before_expiry_secs >= self.session_duration_secs {
            return invalid(
                "accounts.refresh_before_expiry_secs",
                format!(
                    "of account {name:?} must be shorter than session_duration_secs ({}), or every call \
                     would assume the role again",
                    self.session_duration_secs
                ),
            );
        }
        Ok(())
    }
}

/// Whether `role_arn` is an IAM role's ARN: `arn:aws*:iam::<account id>:role/<name>`.
fn is_role_arn(role_arn: &str) -> bool {
    let mut parts = role_arn.splitn(6, ':');
    parts.next() == Some("arn")
        && parts
            .next()
            .is_some_and(|partition| partition.starts_with("aws"))
        && parts.next() == Some("iam")
        && parts.next() == Some("")
        && parts.next().is_some_and(crate::target::is_account_id)
        && parts
            .next()
            .is_some_and(|role| role.starts_with("role/") && role.len() > "role/".len())
}

impl NotifyConfig {
    /// A URL (https, or http to this host only), and at least one event.
    fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let key = |name: &str| format!("notify[{index}].{name}");
        let Some(url) = &self.url else {
            return invalid(key("url"), "is missing: set url or url_file");
        };
        let Ok(parsed) = url::Url::parse(url.expose()) else {
            return invalid(key("url"), "is not a URL");
        };
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && is_loopback(&parsed)) {
            return invalid(
                key("url"),
                "must be https:// (plain http only to a receiver on this host)",
            );
        }
        if self.format == NotifyFormat::Pagerduty {
            if self
                .routing_key
                .as_ref()
                .is_none_or(|k| k.expose().trim().is_empty())
            {
                return invalid(
                    key("routing_key"),
                    "is missing: a pagerduty entry needs its integration's routing key (routing_key_file)",
                );
            }
            if !self
                .events
                .iter()
                .any(|e| matches!(e, NotifyEvent::Escalated))
            {
                return invalid(
                    key("events"),
                    "must include \"escalated\": a pagerduty entry sends only escalated and resolved",
                );
            }
        } else if self.routing_key.is_some() {
            return invalid(key("routing_key"), "is only for format = \"pagerduty\"");
        }
        if self.events.is_empty() {
            return invalid(
                key("events"),
                "is empty: name some of \"acted\", \"refused\", \"breaker-tripped\", \"not-recovered\", \
                 \"escalated\", \"resolved\", or remove the entry",
            );
        }
        Ok(())
    }
}

impl ServerConfig {
    /// Body limit; TLS files come in pairs and must exist; every serving timeout must be positive.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return invalid(
                    "server.tls_cert / server.tls_key",
                    "must be set together (both for HTTPS, neither for plain HTTP behind a proxy)",
                );
            }
            (Some(cert), Some(key)) => {
                for (name, path) in [("server.tls_cert", cert), ("server.tls_key", key)] {
                    if !path.is_file() {
                        return invalid(
                            name,
                            format!("names {}, which is not a file", path.display()),
                        );
                    }
                }
            }
            (None, None) => {}
        }
        for (name, value) in [
            (
                "server.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("server.request_timeout_secs", self.request_timeout_secs),
            ("server.shutdown_grace_secs", self.shutdown_grace_secs),
            ("server.body_timeout_secs", self.body_timeout_secs),
            ("server.max_connections", self.max_connections as u64),
            ("server.max_in_flight", self.max_in_flight as u64),
            (
                "server.max_reads_in_flight",
                self.max_reads_in_flight as u64,
            ),
        ] {
            if value == 0 {
                return invalid(name, "must be greater than 0");
            }
        }
        Ok(())
    }
}

impl AwsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.region.trim().is_empty() {
            return invalid("aws.region", "must name an AWS region, e.g. \"us-east-1\"");
        }
        if let Some(endpoint) = &self.endpoint_url {
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    return invalid(
                        "aws.endpoint_url",
                        "must be an http(s) URL such as \"http://127.0.0.1:5000\"",
                    );
                }
            }
        }
        if let Some(account) = &self.account_id
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return invalid(
                "aws.account_id",
                "must be a 12-digit AWS account id, or unset to learn it with STS GetCallerIdentity",
            );
        }
        if self.connect_timeout_ms == 0 || self.operation_timeout_ms == 0 {
            return invalid(
                "aws.connect_timeout_ms / aws.operation_timeout_ms",
                "must be greater than 0",
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return invalid(
                "aws.access_key_id / aws.secret_access_key",
                "must be set together (or both left unset to use the standard AWS credentials chain)",
            );
        }
        if self.max_attempts == 0 {
            return invalid("aws.max_attempts", "must be at least 1");
        }
        Ok(())
    }
}

impl AuditConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if crate::audit::Backend::of(&self.url).is_none() {
            return invalid(
                "audit.url",
                "must be \"sqlite://\" followed by a file path (e.g. \"sqlite://reflex-audit.db\") or a \
                 PostgreSQL URL (\"postgres://user@host/database\")",
            );
        }
        check_tokens("audit.tokens", &self.tokens)
    }
}

impl RemediationConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_fraction(
            "remediation.max_unhealthy_fraction",
            self.max_unhealthy_fraction,
            "e.g. 0.5",
        )?;
        check_fraction(
            "remediation.max_removed_fraction_per_hour",
            self.max_removed_fraction_per_hour,
            REMOVED_FRACTION_HINT,
        )?;
        if self.max_terminations_per_run == 0 {
            return invalid(
                "remediation.max_terminations_per_run",
                "must be at least 1; use `dry_run = true` to stop all writes",
            );
        }
        if self.max_concurrent == 0 {
            return invalid("remediation.max_concurrent", "must be at least 1");
        }
        if self.protect_tag.trim().is_empty() {
            return invalid(
                "remediation.protect_tag",
                "must be a tag key, e.g. \"reflex:protect\"",
            );
        }
        for (name, value) in [
            ("remediation.max_acted_per_hour", self.max_acted_per_hour),
            ("remediation.max_acted_per_day", self.max_acted_per_day),
            (
                "remediation.max_acted_per_hour_all",
                self.max_acted_per_hour_all,
            ),
            (
                "remediation.max_acted_per_day_all",
                self.max_acted_per_day_all,
            ),
            (
                "remediation.breaker_after_failures",
                self.breaker_after_failures,
            ),
            ("remediation.relapse_limit", self.relapse_limit),
        ] {
            if value == 0 {
                return invalid(
                    name,
                    "must be at least 1; use `reflex pause` or `dry_run = true` to stop all writes",
                );
            }
        }
        if self.verify_after_secs == 0 {
            return invalid(
                "remediation.verify_after_secs",
                "must be at least 1 (seconds after a run that acted before its target is checked again)",
            );
        }
        if self.relapse_window_secs == 0 {
            return invalid(
                "remediation.relapse_window_secs",
                "must be at least 1 (how long after joining a replacement that breaks again is a relapse)",
            );
        }
        Ok(())
    }
}

impl TargetConfig {
    /// At least one target unless rules are configured; each names exactly one classic load balancer or
    /// target group, well formed and listed once in its account and region; topic ARNs well formed.
    fn validate_all(
        targets: &[Self],
        default_region: &str,
        has_rules: bool,
    ) -> Result<(), ConfigError> {
        let region = |target: &Self| {
            target
                .region
                .as_deref()
                .unwrap_or(default_region)
                .to_owned()
        };
        if targets.is_empty() && !has_rules {
            return invalid(
                "targets",
                "is empty: add at least one [[targets]] table with load_balancer = \"NAME\" or \
                 target_group = \"NAME or ARN\", or a [[rules]] entry",
            );
        }
        for (index, target) in targets.iter().enumerate() {
            target.validate()?;
            if let Some(earlier) = targets[..index].iter().find(|other| {
                (other.is(&target.reference()) || other.name() == target.name())
                    && other.account_name() == target.account_name()
                    && region(other) == region(target)
            }) {
                let key = match target.reference() {
                    TargetRef::LoadBalancer(_) => "targets.load_balancer",
                    TargetRef::TargetGroup(_) | TargetRef::Rule(_) => "targets.target_group",
                };
                return invalid(
                    key,
                    format!(
                        "lists \"{}\" twice (also as \"{}\")",
                        target.name(),
                        earlier.name()
                    ),
                );
            }
            check_topic_arns("targets.sns_topic_arns", &target.sns_topic_arns)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(ladder) = &self.ladder {
            check_ladder(ladder)?;
        }
        if let Some(fraction) = self.max_removed_fraction_per_hour {
            check_fraction(
                "targets.max_removed_fraction_per_hour",
                fraction,
                REMOVED_FRACTION_HINT,
            )?;
        }
        let pair = TargetRef::from_pair(self.load_balancer.clone(), self.target_group.clone());
        match (&self.load_balancer, &self.target_group) {
            _ if pair == Err(PairError::Both) => invalid(
                "targets.target_group",
                "is set together with load_balancer: a [[targets]] entry names one classic load balancer \
                 or one target group; use two entries for both",
            ),
            _ if pair == Err(PairError::Neither) => invalid(
                "targets.load_balancer",
                "is missing: each [[targets]] entry needs load_balancer = \"NAME\" (classic ELB) or \
                 target_group = \"NAME or ARN\" (ALB/NLB)",
            ),
            (Some(name), None) if !crate::target::is_target_group_name(name) => invalid(
                // Classic load balancer names follow the same rule as target group names.
                "targets.load_balancer",
                format!(
                    "holds {:?}, which is not a classic load balancer name (1 to 32 letters, digits and \
                     hyphens, not starting or ending with a hyphen)",
                    crate::untrusted::bounded(name)
                ),
            ),
            (None, Some(group))
                if !crate::target::is_target_group_arn(group)
                    && !crate::target::is_target_group_name(group) =>
            {
                invalid(
                    "targets.target_group",
                    format!(
                        "holds {:?}, which is neither a target group ARN \
                         (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID) nor a target group \
                         name (1 to 32 letters, digits and hyphens)",
                        crate::untrusted::bounded(group)
                    ),
                )
            }
            _ => Ok(()),
        }
    }
}

/// A ladder: not empty, each step once. (Which names are action kinds, and that only the last step takes the
/// instance out of service, the registered kinds check: `engine::action::Kinds::ladder`.)
fn check_ladder(ladder: &[String]) -> Result<(), ConfigError> {
    let repeated = ladder
        .iter()
        .enumerate()
        .find(|(n, step)| ladder[..*n].contains(step));
    match (ladder.is_empty(), repeated) {
        (true, _) => invalid(
            "targets.ladder",
            "is empty; use [\"replace\"] (the default), [\"reboot\", \"replace\"] (reboot first, replace what a \
             reboot did not fix) or [\"reboot\"] (reboot only, then escalate to a person)"
                .to_owned(),
        ),
        (false, Some((_, step))) => invalid(
            "targets.ladder",
            format!("names {step:?} twice; each step is tried once, in order"),
        ),
        (false, None) => Ok(()),
    }
}

/// What a speed limit means, for its error message: 0 would stop every action, which is what a pause is for.
const REMOVED_FRACTION_HINT: &str = "e.g. 0.34: at most a third of a target's instances acted on in any hour; \
                                     to stop all actions, pause instead";

/// A fraction of a fleet: above 0 and at most 1; `hint` says what a good value looks like.
fn check_fraction(key: &'static str, fraction: f64, hint: &str) -> Result<(), ConfigError> {
    if fraction > 0.0 && fraction <= 1.0 {
        return Ok(());
    }
    invalid(
        key,
        format!("is {fraction}; it must be greater than 0 and at most 1 ({hint})"),
    )
}

impl SnsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_topic_arns("sns.topic_arns", &self.topic_arns)?;
        if !(1..=2).contains(&self.min_signature_version) {
            return invalid(
                "sns.min_signature_version",
                "must be 1 (accept SHA-1 and SHA-256 signatures) or 2 (SHA-256 only)",
            );
        }
        if self.max_age_secs == 0 {
            return invalid("sns.max_age_secs", "must be greater than 0 (3600 is usual)");
        }
        if let Some(dir) = &self.cert_dir
            && !dir.is_dir()
        {
            return invalid(
                "sns.cert_dir",
                format!("names {}, which is not a folder", dir.display()),
            );
        }
        Ok(())
    }
}

impl WebhookConfig {
    /// `section` is `alertmanager` or `grafana`; `config` resolves `default_target`.
    fn validate(&self, section: &'static str, config: &Config) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{section}.{name}");
        check_tokens(key("tokens"), &self.tokens)?;
        check_tokens(key("passwords"), &self.passwords)?;
        if !self.passwords.is_empty() && self.username.as_deref().is_none_or(str::is_empty) {
            return invalid(
                key("username"),
                "must be set when passwords are (basic auth needs a user name)",
            );
        }
        for (name, label) in [
            ("target_label", &self.target_label),
            ("target_group_label", &self.target_group_label),
            ("account_label", &self.account_label),
            ("region_label", &self.region_label),
        ] {
            if label.trim().is_empty() {
                return invalid(key(name), "must name an alert label");
            }
        }
        if let Some(target) = &self.default_target
            && config.target(target).is_none()
        {
            let problem = match config.targets_named(target, &Place::ANYWHERE, "").len() {
                0 => format!("names {target:?}, which is not listed under [[targets]]"),
                several => format!(
                    "names {target:?}, which {several} targets (in several accounts or regions) share: a \
                     default target must be one only"
                ),
            };
            return invalid(key("default_target"), problem);
        }
        if self.hmac_secret.is_some() {
            for (name, header) in [
                ("signature_header", &self.signature_header),
                ("timestamp_header", &self.timestamp_header),
            ] {
                if header.trim().is_empty() {
                    return invalid(
                        key(name),
                        "must name a header: without it the HMAC would not cover a timestamp and a captured \
                         request could be replayed forever",
                    );
                }
            }
        }
        if section == "alertmanager" && self.hmac_secret.is_some() {
            return invalid(
                key("hmac_secret"),
                "is not supported: Alertmanager signs nothing; use tokens or basic auth",
            );
        }
        if self
            .hmac_secret
            .as_ref()
            .is_some_and(|s| s.expose().chars().count() < MIN_TOKEN_LEN)
        {
            return invalid(
                key("hmac_secret"),
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            );
        }
        Ok(())
    }
}

/// `arn:<partition>:sns:<region>:<account>:<name>`.
/// Whether `url` names this host (an emulator or a test receiver, never a remote service).
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_topic_arns(key: &str, arns: &[String]) -> Result<(), ConfigError> {
    for arn in arns {
        if !crate::sns::is_topic_arn(arn) {
            return invalid(
                key,
                format!(
                    "holds {arn:?}, which is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
                ),
            );
        }
    }
    Ok(())
}

fn check_tokens(key: impl Into<String>, tokens: &[Secret]) -> Result<(), ConfigError> {
    if tokens
        .iter()
        .any(|token| token.expose().chars().count() < MIN_TOKEN_LEN)
    {
        return invalid(
            key,
            format!(
                "holds a token shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"
            ),
        );
    }
    Ok(())
}
