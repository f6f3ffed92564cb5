//! Prometheus metrics as typed fields: each metric is a field of `Metrics`, each label set a struct, so a
//! misspelt metric or label does not compile. One registry per `Metrics` (one per app), so several apps in one
//! process (tests) keep separate counts. Every label value comes from a closed set (route templates, error
//! codes, outcomes, AWS operations), so the number of series stays bounded whatever callers send.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the AWS call latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// `route` and `status` of an answered HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route template, or `unmatched`.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// `source` and `code` of a rejected request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// The receiver (`sns`, `manual`, ...).
    pub source: &'static str,
    /// The error code answered.
    pub code: &'static str,
}

/// `outcome` and `dry_run` of a remediation run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// `completed` or `refused`.
    pub outcome: &'static str,
    /// `true` when the run wrote nothing.
    pub dry_run: &'static str,
}

/// The `rule` (a `[[rules]]` name: as many as the configuration has) and `outcome` of a rule's run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleRunLabels {
    /// The rule's name.
    pub rule: String,
    /// `completed`, `would-act`, `held` or `refused`.
    pub outcome: &'static str,
}

/// `dry_run` of instances acted on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DryRunLabels {
    /// `true` when the instance was only planned for.
    pub dry_run: &'static str,
}

/// The `action` (its kind's call) and `dry_run` of an instance acted on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActedLabels {
    /// The call (`terminate`, `asg-unhealthy`, `reboot`, `start`, `isolate`, ...): a registered kind's.
    pub action: String,
    /// `true` when the instance was only planned for.
    pub dry_run: &'static str,
}

/// `reason` an unhealthy instance was left alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// The skip reason, as in summaries.
    pub reason: &'static str,
}

/// The AWS `operation` of a call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// e.g. `DescribeInstanceHealth`.
    pub operation: &'static str,
}

/// A failed AWS call: its `operation` and `kind` (transient, permanent, not-found).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsErrorLabels {
    /// e.g. `TerminateInstances`.
    pub operation: &'static str,
    /// How the failure is classified: `transient` (retry), `permanent` (permissions, validation) or
    /// `not-found`.
    pub kind: &'static str,
}

/// An STS AssumeRole into a configured account: the account's `[[accounts]]` name and the `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AssumeRoleLabels {
    /// The `[[accounts]]` name (a closed set: only configured accounts are assumed).
    pub account: String,
    /// `assumed`, or how it failed: `denied` (AccessDenied, a wrong external id, a missing role) or
    /// `unavailable`.
    pub outcome: &'static str,
}

/// The `topic_arn` of an allowed topic (a closed set: only verified messages of allowed topics count).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// The topic.
    pub topic_arn: String,
}

/// `result` of a certificate lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `load`.
    pub result: &'static str,
}

/// Why a breaker opened (`budget`, `aws-errors`, `escalated`, `relapsing`), or why a target escalated.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TripLabels {
    /// What tripped it.
    pub reason: &'static str,
}

/// A step of a target's ladder: `reboot` or `replace`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The step (an action kind, or an `[[actions]]` entry: the configuration bounds them).
    pub step: String,
}

/// A finished step with an `outcome` from a closed set (recovery checks, notifications, refusals).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// e.g. `recovered`, `delivered`, `cooldown`.
    pub outcome: &'static str,
}

/// A configured target by its name, account and region (or `target="*"` with empty account and region for
/// every target): a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// The target's configured name.
    pub target: String,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
}

/// Every metric reflex exports, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Described,
    /// HTTP requests by route template and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Rejected requests by source and error code.
    pub rejections: Family<RejectionLabels, Counter>,
    /// Remediation runs by outcome and dry-run.
    pub remediation_runs: Family<RunLabels, Counter>,
    /// Runs of `[[rules]]` by rule and outcome.
    pub rule_runs: Family<RuleRunLabels, Counter>,
    /// Instances acted on, by action and dry-run (in dry-run: that would have been).
    pub instances_acted: Family<ActedLabels, Counter>,
    /// Instances terminated (or that would have been, in dry-run); kept beside `instances_acted` one release
    /// for the shipped dashboard and rules.
    pub instances_terminated: Family<DryRunLabels, Counter>,
    /// Instances marked Unhealthy in their Auto Scaling group (or that would have been, in dry-run).
    pub instances_marked_unhealthy: Family<DryRunLabels, Counter>,
    /// Unhealthy instances left alone, by reason.
    pub instances_skipped: Family<SkipLabels, Counter>,
    /// AWS API call latency by operation.
    pub aws_call_duration: Family<OperationLabels, Histogram>,
    /// Failed AWS API calls by operation and kind.
    pub aws_call_errors: Family<AwsErrorLabels, Counter>,
    /// SNS signing certificate lookups by result.
    pub sns_certificate_cache: Family<CacheLabels, Counter>,
    /// Verified UnsubscribeConfirmations by topic: reflex no longer receives that topic's alarms.
    pub sns_unsubscribed: Family<TopicLabels, Counter>,
    /// Refused runs by the rule that refused them (cooldown, paused, breaker-open, ...).
    pub refusals: Family<OutcomeLabels, Counter>,
    /// Breakers opened by this process, by what tripped them.
    pub breaker_trips: Family<TripLabels, Counter>,
    /// Breakers closed by an operator through this process.
    pub breaker_resets: Counter,
    /// Instances acted on by each step of the ladders (reboot, replace), by this process.
    pub ladder_steps: Family<StepLabels, Counter>,
    /// Replacements found broken again within the relapse window, by this process's runs.
    pub relapses: Counter,
    /// Targets escalated to a person, by why (escalated: the last step did not fix it; relapsing).
    pub escalations: Family<TripLabels, Counter>,
    /// Recovery checks run by this process, by outcome (recovered, not-recovered, failed).
    pub recovery_checks: Family<OutcomeLabels, Counter>,
    /// Notifications by outcome (delivered, failed, dropped).
    pub notifications: Family<OutcomeLabels, Counter>,
    /// 1 while a target's breaker is open, as the store says (refreshed every few seconds).
    pub breaker_open: Family<TargetLabels, Gauge>,
    /// 1 while a target (or `*`, everything) is paused, as the store says (refreshed every few seconds).
    pub paused: Family<TargetLabels, Gauge>,
    /// 1 while a target (or `*`, everything) is silenced, as the store says (refreshed every few seconds).
    pub silenced: Family<TargetLabels, Gauge>,
    /// STS AssumeRole calls into configured accounts, by account and outcome.
    pub assume_role: Family<AssumeRoleLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self::unregistered();
        metrics.register_requests();
        metrics.register_aws();
        metrics.register_runs();
        metrics.register_state();
        metrics
    }
}

impl Metrics {
    /// The metrics, none of them registered yet.
    fn unregistered() -> Self {
        Self {
            registry: Described {
                registry: Registry::with_prefix("reflex"),
                names: Vec::new(),
            },
            http_requests: Family::default(),
            rejections: Family::default(),
            remediation_runs: Family::default(),
            rule_runs: Family::default(),
            instances_acted: Family::default(),
            instances_terminated: Family::default(),
            instances_marked_unhealthy: Family::default(),
            instances_skipped: Family::default(),
            aws_call_duration: Family::<OperationLabels, Histogram>::new_with_constructor(
                (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
            ),
            aws_call_errors: Family::default(),
            sns_certificate_cache: Family::default(),
            sns_unsubscribed: Family::default(),
            refusals: Family::default(),
            breaker_trips: Family::default(),
            breaker_resets: Counter::default(),
            ladder_steps: Family::default(),
            relapses: Counter::default(),
            escalations: Family::default(),
            recovery_checks: Family::default(),
            notifications: Family::default(),
            breaker_open: Family::default(),
            paused: Family::default(),
            silenced: Family::default(),
            assume_role: Family::default(),
        }
    }

    /// Registers the requests and what the runs did to instances.
    fn register_requests(&mut self) {
        self.registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            self.http_requests.clone(),
        );
        self.registry.register(
            "rejections",
            "Rejected requests by source and error code (verification failures included)",
            self.rejections.clone(),
        );
        self.registry.register(
            "remediation_runs",
            "Remediation runs by outcome (completed, would-act, refused) and dry-run",
            self.remediation_runs.clone(),
        );
        self.registry.register(
            "rule_runs",
            "Runs of [[rules]] by rule and outcome (completed, would-act, held, refused)",
            self.rule_runs.clone(),
        );
        self.registry.register(
            "instances_acted",
            "Instances acted on by action (terminate, asg-unhealthy, reboot, start, isolate, ...) and dry-run",
            self.instances_acted.clone(),
        );
        self.registry.register(
            "instances_terminated",
            "Instances terminated (or that would have been, in dry-run)",
            self.instances_terminated.clone(),
        );
        self.registry.register(
            "instances_marked_unhealthy",
            "Instances handed to their Auto Scaling group as Unhealthy (or that would have been, in dry-run)",
            self.instances_marked_unhealthy.clone(),
        );
        self.registry.register(
            "instances_skipped",
            "Unhealthy instances left alone, by reason",
            self.instances_skipped.clone(),
        );
    }

    /// Registers the calls to AWS and SNS.
    fn register_aws(&mut self) {
        self.registry.register(
            "aws_call_duration_seconds",
            "AWS API call latency by operation",
            self.aws_call_duration.clone(),
        );
        self.registry.register(
            "aws_call_errors",
            "Failed AWS API calls by operation and kind (transient, permanent, not-found)",
            self.aws_call_errors.clone(),
        );
        self.registry.register(
            "sns_certificate_cache",
            "SNS signing certificate lookups by result (hit, load)",
            self.sns_certificate_cache.clone(),
        );
        self.registry.register(
            "sns_unsubscribed",
            "Verified SNS UnsubscribeConfirmations by topic: alarms of that topic no longer reach reflex",
            self.sns_unsubscribed.clone(),
        );
    }

    /// Registers why runs were refused or stepped up, and what came of them.
    fn register_runs(&mut self) {
        self.registry.register(
            "refusals",
            "Refused runs by rule (the refused-rule of the summary: paused, silenced, breaker-open, maintenance-window, cooldown, too-many-unhealthy, zonal-failure, below-min-in-service, change-in-progress, change-unknown, relapsing, rule-changed)",
            self.refusals.clone(),
        );
        self.registry.register(
            "breaker_trips",
            "Breakers opened, by what tripped them (budget, aws-errors, escalated, relapsing)",
            self.breaker_trips.clone(),
        );
        self.registry.register(
            "breaker_resets",
            "Breakers closed by an operator",
            self.breaker_resets.clone(),
        );
        self.registry.register(
            "ladder_steps",
            "Instances acted on by each step of the targets' ladders (reboot, replace)",
            self.ladder_steps.clone(),
        );
        self.registry.register(
            "relapses",
            "Instances that replaced broken ones and broke again within remediation.relapse_window_secs",
            self.relapses.clone(),
        );
        self.registry.register(
            "escalations",
            "Targets escalated to a person, by reason (escalated: the last step of the ladder did not fix it; relapsing)",
            self.escalations.clone(),
        );
        self.registry.register(
            "recovery_checks",
            "Recovery checks after runs that acted, by outcome (recovered, not-recovered, failed)",
            self.recovery_checks.clone(),
        );
        self.registry.register(
            "notifications",
            "Notifications to [[notify]] webhooks by outcome (delivered, failed, dropped)",
            self.notifications.clone(),
        );
    }

    /// Registers what the store says of the targets, and the roles assumed.
    fn register_state(&mut self) {
        self.registry.register(
            "breaker_open",
            "1 while the target's breaker is open (shared by every replica: read from the audit store)",
            self.breaker_open.clone(),
        );
        self.registry.register(
            "paused",
            "1 while the target (or \"*\", every target) is paused (read from the audit store)",
            self.paused.clone(),
        );
        self.registry.register(
            "silenced",
            "1 while the target (or \"*\", every target) is silenced: a pause with an end (read from the audit store)",
            self.silenced.clone(),
        );
        self.registry.register(
            "assume_role",
            "STS AssumeRole calls into [[accounts]] roles, by account and outcome (assumed, denied, unavailable)",
            self.assume_role.clone(),
        );
    }
}

impl Metrics {
    /// The metrics of a serving process, with the audit store's count of failed writes.
    pub fn with_audit_failures(write_failures: Counter) -> Self {
        let mut metrics = Self::default();
        metrics.registry.register(
            "audit_write_failures",
            "Audit writes that failed to commit (the requests waiting for them were answered 503)",
            write_failures,
        );
        metrics
    }

    /// Counts one rejected request from `source` answered with `code`.
    pub fn count_rejection(&self, source: &'static str, code: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabels { source, code })
            .inc();
    }

    /// Records one AWS call: its latency, and its failure kind when it failed.
    pub fn observe_aws(
        &self,
        operation: &'static str,
        elapsed: Duration,
        failed: Option<&'static str>,
    ) {
        self.aws_call_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = failed {
            self.aws_call_errors
                .get_or_create(&AwsErrorLabels { operation, kind })
                .inc();
        }
    }

    /// Counts a target escalated to a person, for `reason` (`escalated`, `relapsing`).
    pub fn count_escalation(&self, reason: &'static str) {
        self.escalations.get_or_create(&TripLabels { reason }).inc();
    }

    /// Counts one step of a closed-set `outcome` in `family`.
    pub fn count(family: &Family<OutcomeLabels, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A `dry_run` label value.
    pub fn flag(value: bool) -> &'static str {
        if value { "true" } else { "false" }
    }

    /// The name of every metric family this process can export (`reflex_` + name; counters' samples add
    /// `_total`), whether or not it has counted anything yet: what dashboards and alert rules may query.
    pub fn names(&self) -> Vec<String> {
        self.registry
            .names
            .iter()
            .map(|name| format!("reflex_{name}"))
            .collect()
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) =
            prometheus_client::encoding::text::encode(&mut out, &self.registry.registry)
        {
            tracing::error!(error = %err, "cannot render metrics");
        }
        out
    }
}

/// A registry that also keeps the names registered in it.
#[derive(Debug)]
struct Described {
    registry: Registry,
    /// Every registered family's name, without the `reflex_` prefix.
    names: Vec<&'static str>,
}

impl Described {
    fn register(
        &mut self,
        name: &'static str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.names.push(name);
        self.registry.register(name, help, metric);
    }
}

/// The OpenMetrics text `open_metrics` in the classic Prometheus text format (version 0.0.4): counter
/// families are named with their `_total` suffix in `# HELP` and `# TYPE`, and the OpenMetrics-only `# UNIT`
/// and `# EOF` lines go. Samples are the same in both.
pub fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_with_total_and_drops_eof() {
        let open = "# HELP reflex_runs Runs.\n# TYPE reflex_runs counter\nreflex_runs_total 2\n\
                    # HELP reflex_open Open.\n# TYPE reflex_open gauge\nreflex_open 1\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP reflex_runs_total Runs.\n# TYPE reflex_runs_total counter\nreflex_runs_total 2\n\
             # HELP reflex_open Open.\n# TYPE reflex_open gauge\nreflex_open 1\n"
        );
    }

    #[test]
    fn renders_counters_and_histograms_in_text_format() {
        let metrics = Metrics::default();
        let sns_ok = RequestLabels {
            route: "/sns".into(),
            status: 200,
        };
        metrics.http_requests.get_or_create(&sns_ok).inc();
        metrics.http_requests.get_or_create(&sns_ok).inc();
        metrics.observe_aws(
            "TerminateInstances",
            Duration::from_millis(30),
            Some("permanent"),
        );
        metrics
            .sns_certificate_cache
            .get_or_create(&CacheLabels { result: "hit" })
            .inc_by(7);
        let text = metrics.render();
        assert!(
            text.contains("reflex_http_requests_total{route=\"/sns\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("reflex_aws_call_duration_seconds_bucket{le=\"0.025\",operation=\"TerminateInstances\"} 0")
            || text.contains("reflex_aws_call_duration_seconds_bucket{operation=\"TerminateInstances\",le=\"0.025\"} 0"), "{text}");
        assert!(text.contains(
            "reflex_aws_call_duration_seconds_count{operation=\"TerminateInstances\"} 1"
        ));
        assert!(text.contains(
            "reflex_aws_call_errors_total{operation=\"TerminateInstances\",kind=\"permanent\"} 1"
        ));
        assert!(text.contains("reflex_sns_certificate_cache_total{result=\"hit\"} 7"));
        assert!(text.contains("# TYPE reflex_aws_call_duration_seconds histogram"));
    }

    #[test]
    fn two_apps_in_one_process_count_separately() {
        let (one, two) = (Metrics::default(), Metrics::default());
        one.remediation_runs
            .get_or_create(&RunLabels {
                outcome: "completed",
                dry_run: "false",
            })
            .inc();
        assert!(
            one.render().contains(
                "reflex_remediation_runs_total{outcome=\"completed\",dry_run=\"false\"} 1"
            )
        );
        assert!(!two.render().contains("outcome=\"completed\""));
    }
}
