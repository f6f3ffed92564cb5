//! Prometheus metrics as typed fields: each metric is a field of `Metrics`, each label set a struct, so a
//! misspelt metric or label does not compile. One registry per `Metrics` (one per app), so several apps in one
//! process (tests) keep separate counts. Every label value comes from a closed set (route templates, error
//! codes, outcomes, AWS operations), so the number of series stays bounded whatever callers send.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// `dry_run` of instances acted on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DryRunLabels {
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

/// Every metric reflex exports, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Rejected requests by source and error code.
    pub rejections: Family<RejectionLabels, Counter>,
    /// Remediation runs by outcome and dry-run.
    pub remediation_runs: Family<RunLabels, Counter>,
    /// Instances terminated (or that would have been, in dry-run).
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reflex");
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            http_requests.clone(),
        );
        let rejections = Family::default();
        registry.register(
            "rejections",
            "Rejected requests by source and error code (verification failures included)",
            rejections.clone(),
        );
        let remediation_runs = Family::default();
        registry.register(
            "remediation_runs",
            "Remediation runs by outcome (completed, refused) and dry-run",
            remediation_runs.clone(),
        );
        let instances_terminated = Family::default();
        registry.register(
            "instances_terminated",
            "Instances terminated (or that would have been, in dry-run)",
            instances_terminated.clone(),
        );
        let instances_marked_unhealthy = Family::default();
        registry.register(
            "instances_marked_unhealthy",
            "Instances handed to their Auto Scaling group as Unhealthy (or that would have been, in dry-run)",
            instances_marked_unhealthy.clone(),
        );
        let instances_skipped = Family::default();
        registry.register(
            "instances_skipped",
            "Unhealthy instances left alone, by reason",
            instances_skipped.clone(),
        );
        let aws_call_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "aws_call_duration_seconds",
            "AWS API call latency by operation",
            aws_call_duration.clone(),
        );
        let aws_call_errors = Family::default();
        registry.register(
            "aws_call_errors",
            "Failed AWS API calls by operation and kind (transient, permanent, not-found)",
            aws_call_errors.clone(),
        );
        let sns_certificate_cache = Family::default();
        registry.register(
            "sns_certificate_cache",
            "SNS signing certificate lookups by result (hit, load)",
            sns_certificate_cache.clone(),
        );
        let sns_unsubscribed = Family::default();
        registry.register(
            "sns_unsubscribed",
            "Verified SNS UnsubscribeConfirmations by topic: alarms of that topic no longer reach reflex",
            sns_unsubscribed.clone(),
        );
        Self {
            registry,
            sns_unsubscribed,
            http_requests,
            rejections,
            remediation_runs,
            instances_terminated,
            instances_marked_unhealthy,
            instances_skipped,
            aws_call_duration,
            aws_call_errors,
            sns_certificate_cache,
        }
    }
}

impl Metrics {
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

    /// A `dry_run` label value.
    pub fn flag(value: bool) -> &'static str {
        if value { "true" } else { "false" }
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "cannot render metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
