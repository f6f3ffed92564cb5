//! Prometheus metrics, kept in memory and rendered in the text exposition format for `GET /metrics`.
//! Every label value comes from a closed set (route templates, error codes, outcomes, AWS operations), so the
//! number of series stays bounded whatever callers send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the AWS call latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The registry: counters and histograms by name and labels.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

/// Help text of each metric, in the order they are rendered.
const HELP: &[(&str, &str, &str)] = &[
    (
        "reflex_http_requests_total",
        "counter",
        "HTTP requests by route template and status.",
    ),
    (
        "reflex_rejections_total",
        "counter",
        "Rejected requests by source and error code (verification failures included).",
    ),
    (
        "reflex_remediation_runs_total",
        "counter",
        "Remediation runs by outcome (completed, refused) and dry-run.",
    ),
    (
        "reflex_instances_terminated_total",
        "counter",
        "Instances terminated (or that would have been, in dry-run).",
    ),
    (
        "reflex_instances_skipped_total",
        "counter",
        "Unhealthy instances left alone, by reason.",
    ),
    (
        "reflex_aws_call_duration_seconds",
        "histogram",
        "AWS API call latency by operation.",
    ),
    (
        "reflex_aws_call_errors_total",
        "counter",
        "Failed AWS API calls by operation.",
    ),
    (
        "reflex_sns_certificate_cache_total",
        "counter",
        "SNS signing certificate lookups by result (hit, load).",
    ),
];

impl Metrics {
    /// Adds `by` to the counter `name{labels}`.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key = (name, own(labels));
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        *families.counters.entry(key).or_default() += by;
    }

    /// Counts one event.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Records one observation of an AWS call.
    pub fn observe_aws(&self, operation: &'static str, elapsed: Duration, failed: bool) {
        let seconds = elapsed.as_secs_f64();
        let key = (
            "reflex_aws_call_duration_seconds",
            own(&[("operation", operation)]),
        );
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = families.histograms.entry(key).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
        if failed {
            *families
                .counters
                .entry((
                    "reflex_aws_call_errors_total",
                    own(&[("operation", operation)]),
                ))
                .or_default() += 1;
        }
    }

    /// The current value of a counter (for tests and gauges derived from it).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families
            .counters
            .get(&(name, own(labels)))
            .copied()
            .unwrap_or(0)
    }

    /// Renders every metric in the Prometheus text format, with `extra` counters appended (values read from
    /// elsewhere at scrape time).
    pub fn render(&self, extra: &[(&'static str, Labels, u64)]) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((metric, labels), value) in &families.counters {
                if metric == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for (metric, labels, value) in extra {
                if metric == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for ((metric, labels), histogram) in &families.histograms {
                if metric != name {
                    continue;
                }
                for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                    let le = bound.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_text_format() {
        let metrics = Metrics::default();
        metrics.inc(
            "reflex_http_requests_total",
            &[("route", "/sns"), ("status", "200")],
        );
        metrics.inc(
            "reflex_http_requests_total",
            &[("route", "/sns"), ("status", "200")],
        );
        metrics.observe_aws("TerminateInstances", Duration::from_millis(30), true);
        let text = metrics.render(&[(
            "reflex_sns_certificate_cache_total",
            vec![("result", "hit".into())],
            7,
        )]);
        assert!(
            text.contains("reflex_http_requests_total{route=\"/sns\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("reflex_aws_call_duration_seconds_bucket{operation=\"TerminateInstances\",le=\"0.025\"} 0"));
        assert!(text.contains("reflex_aws_call_duration_seconds_bucket{operation=\"TerminateInstances\",le=\"0.05\"} 1"));
        assert!(text.contains(
            "reflex_aws_call_duration_seconds_count{operation=\"TerminateInstances\"} 1"
        ));
        assert!(text.contains("reflex_aws_call_errors_total{operation=\"TerminateInstances\"} 1"));
        assert!(text.contains("reflex_sns_certificate_cache_total{result=\"hit\"} 7"));
        assert!(text.contains("# TYPE reflex_aws_call_duration_seconds histogram"));
        assert_eq!(
            metrics.counter(
                "reflex_http_requests_total",
                &[("route", "/sns"), ("status", "200")]
            ),
            2
        );
    }
}
