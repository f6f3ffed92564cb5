//! Times rule matching, the part of `[[rules]]` on the path of every alert: RULES rules with a CEL `when`
//! (half of them with `match` shorthands too), none of which matches the alert, so that every rule is tried to
//! its end, and the alert read as each alert's is. Prints the microseconds matching adds to one
//! alert three times: for rules written as most are (each `when` requires a comparison of a field with a
//! literal, which the alert fails, so CEL need not run), for rules that require text methods with literals
//! (`startsWith`, likewise), and for rules whose `when` only CEL can decide (it runs for every rule).
//! Usage: `cargo run --release --example rule_match -- [RULES] [ALERTS]` (defaults 100 and 20000).

use std::collections::BTreeMap;
use std::time::Instant;

use reflex::config::{RuleConfig, RuleMatch};
use reflex::rules::{AlertFacts, Rules};

/// Rule `n`: half through shorthands and a numeric condition, half through labels and string functions.
fn rule(n: usize) -> RuleConfig {
    let (matches, when) = if n.is_multiple_of(2) {
        let matches = RuleMatch {
            namespace: Some("CWAgent".into()),
            alarm_name: Some("re:disk-used-.*".into()),
            ..RuleMatch::default()
        };
        (
            matches,
            format!("alert.value > {}.0 && alert.dimensions.path == '/'", n + 60),
        )
    } else {
        (
            RuleMatch::default(),
            format!(
                "alert.labels.instance.startsWith('i-') && alert.source != 'manual' && \
                 alert.labels.job == 'job-{n}'"
            ),
        )
    };
    RuleConfig {
        name: format!("rule-{n}"),
        matches,
        when: Some(when),
        ..RuleConfig::default()
    }
}

/// Rule `n` with only `when`, and no `match` shorthands.
fn when_rule(n: usize, when: String) -> RuleConfig {
    RuleConfig {
        name: format!("rule-{n}"),
        when: Some(when),
        ..RuleConfig::default()
    }
}

/// Rule `n` whose `when` requires text methods with literals (`startsWith`), which the alert fails.
fn text_method_rule(n: usize) -> RuleConfig {
    when_rule(
        n,
        format!("alert.labels.instance.startsWith('i-') && alert.labels.job.startsWith('job-{n}')"),
    )
}

/// Rule `n` whose `when` compares two fields of the alert: what it requires of one field alone holds, the
/// rest only CEL can decide, so CEL runs it for every alert.
fn cel_only_rule(n: usize) -> RuleConfig {
    when_rule(
        n,
        format!("alert.labels.instance.startsWith('i-') && alert.value > alert.threshold + {n}.0"),
    )
}

/// Matches `alert` against `configs` `alerts` times (after a warm-up); the microseconds per alert, and how
/// many matched.
fn time(configs: &[RuleConfig], alert: &AlertFacts, alerts: usize) -> (f64, usize) {
    let rules = Rules::compile(configs).expect("the rules compile");
    for _ in 0..1_000 {
        std::hint::black_box(rules.first_match(alert, 0));
    }
    let start = Instant::now();
    let mut matched = 0;
    for _ in 0..alerts {
        matched += usize::from(std::hint::black_box(rules.first_match(alert, 0)).is_some());
    }
    let per_alert = start.elapsed().as_secs_f64() * 1e6 / alerts as f64;
    (per_alert, matched)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map_or(100, |n| n.parse().expect("RULES is a number"));
    let alerts: usize = args
        .next()
        .map_or(20_000, |n| n.parse().expect("ALERTS is a number"));
    let alert = AlertFacts {
        source: "sns".into(),
        name: "disk-used-web-1".into(),
        state: "firing".into(),
        namespace: "CWAgent".into(),
        metric: "disk_used_percent".into(),
        dimensions: BTreeMap::from([
            ("InstanceId".into(), "i-0abc".into()),
            ("path".into(), "/".into()),
        ]),
        labels: BTreeMap::from([
            ("job".into(), "web".into()),
            ("instance".into(), "i-0abc".into()),
        ]),
        value: Some(50.0),
        threshold: Some(80.0),
        ..AlertFacts::default()
    };
    // Every rule's `when` is evaluated, and none holds: an even rule's shorthands hold and its condition
    // fails on the value; an odd rule's condition holds up to its last part, the job.
    let written: Vec<RuleConfig> = (0..count).map(rule).collect();
    let (per_alert, matched) = time(&written, &alert, alerts);
    println!("{count} rules, {alerts} alerts: {per_alert:.1} us per alert ({matched} matched)");
    let methods: Vec<RuleConfig> = (0..count).map(text_method_rule).collect();
    let (per_alert, matched) = time(&methods, &alert, alerts);
    println!(
        "{count} rules on text methods, {alerts} alerts: {per_alert:.1} us per alert ({matched} matched)"
    );
    let cel_only: Vec<RuleConfig> = (0..count).map(cel_only_rule).collect();
    let (per_alert, matched) = time(&cel_only, &alert, alerts);
    println!(
        "{count} rules only CEL decides, {alerts} alerts: {per_alert:.1} us per alert ({matched} matched)"
    );
}
