//! `reflex rules replay`: the alerts the trail kept of the last days (each with the rule it came to, the
//! record's `routed` note), tried again under a configuration, and what would differ, rule by rule: alerts
//! that would now come to another rule or to none, what the rule they would now come to acts on, and which of
//! its gates that can be told without AWS (its mode, a maintenance window at the alert's time) would hold the
//! run. It reads the trail and the config only: no AWS call, no write. An operator runs it before changing a
//! rule in production.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditRecord, AuditStore, Filter};
use crate::config::{Config, Mode, NO_INSTANCES, tag_selector};
use crate::rules::{ROUTED_NOTE, Routed, Rules};

/// The records read per page.
const PAGE: u32 = 500;

/// One alert that would now come to another rule (or to none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// The record that kept it.
    pub record: String,
    /// When it arrived (RFC 3339).
    pub at: String,
    /// The alert's name.
    pub alert: String,
    /// The rule it came to then (`None`: no rule).
    pub was: Option<String>,
    /// The rule it would come to now (`None`: no rule).
    pub now: Option<String>,
    /// What the rule it would come to now acts on: its instance (`i-...`) or tag (`tag:KEY=VALUE`).
    pub acts_on: Option<String>,
    /// Why that rule's run would be held now, when it would: observe mode, a maintenance window.
    pub held: Option<String>,
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replay {
    /// The records read that kept alerts.
    pub records: usize,
    /// The alerts tried again.
    pub alerts: usize,
    /// Those that would now come to another rule.
    pub moved: Vec<Moved>,
}

/// `reflex rules replay`: every alert the store `config` names kept since `since`, tried again under `config`'s
/// rules; the report as text, or JSON.
pub async fn replay_command(config: &Config, since: &str, json: bool) -> anyhow::Result<String> {
    let since = parse_since(since, OffsetDateTime::now_utc())?;
    let (store, writer) = AuditStore::open(&config.audit.url).await.with_context(|| {
        format!(
            "failed to open the audit store {}",
            crate::audit::redacted(&config.audit.url)
        )
    })?;
    let replayed = replay(&store, config, since).await;
    drop(store);
    writer.finish().await;
    let replayed = replayed?;
    if json {
        return Ok(serde_json::to_string_pretty(&replayed)? + "\n");
    }
    Ok(in_words(&replayed, since))
}

/// Reads the store's records since `since` page by page, newest first, and tries each kept alert again.
async fn replay(
    store: &AuditStore,
    config: &Config,
    since: OffsetDateTime,
) -> anyhow::Result<Replay> {
    // A rule's place is read as the store's home (the account reflex acts in) when it has one.
    let home = store
        .home()
        .await?
        .map(|home| home.account)
        .unwrap_or_default();
    let rules = Rules::for_config(config, &home)?;
    let mut filter = Filter {
        since: Some(since),
        runs_only: true,
        ..Filter::default()
    };
    let mut replayed = Replay::default();
    loop {
        let page = store.search(&filter, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        filter.before = Some(last.id.clone());
        for record in &page {
            let Some(routed) = routed_of(record) else {
                continue;
            };
            replayed.records += 1;
            replayed.alerts += routed.len();
            replayed.moved.extend(
                routed
                    .iter()
                    .filter_map(|r| moved(&rules, config, record, r)),
            );
        }
    }
    replayed.moved.reverse();
    Ok(replayed)
}

/// The alerts `record` kept, if any.
fn routed_of(record: &AuditRecord) -> Option<Vec<Routed>> {
    serde_json::from_value(record.detail.get(ROUTED_NOTE)?.clone()).ok()
}

/// `routed`, kept by `record`, when it would now come to another rule. Pure.
fn moved(rules: &Rules, config: &Config, record: &AuditRecord, routed: &Routed) -> Option<Moved> {
    let at = record.at;
    let now = rules
        .first_match(&routed.alert, at.unix_timestamp())
        .map(|rule| rule.name.clone());
    if now == routed.rule {
        return None;
    }
    let configured = now
        .as_ref()
        .and_then(|name| config.rules.iter().find(|rule| &rule.name == name));
    Some(Moved {
        record: record.id.clone(),
        at: at.format(&Rfc3339).unwrap_or_default(),
        alert: routed.alert.name.clone(),
        was: routed.rule.clone(),
        acts_on: configured.and_then(|rule| match tag_selector(&rule.instances) {
            Some((key, value)) => Some(format!("tag:{key}={value}")),
            None if rule.instances == NO_INSTANCES => {
                let named = crate::engine::named_by(&routed.alert);
                let bounded = crate::untrusted::bounded;
                let named: Vec<String> = named
                    .iter()
                    .map(|(k, v)| format!("{}={}", bounded(k), bounded(v)))
                    .collect();
                Some(format!("what the alert names ({})", named.join(", ")))
            }
            None => crate::engine::named_instance(&routed.alert),
        }),
        held: configured.and_then(|rule| {
            let mode = rule.mode.unwrap_or(config.remediation.mode);
            if mode == Mode::Observe {
                return Some("observe mode: it would act on nothing".to_owned());
            }
            crate::engine::window_refusal(&config.windows, &rule.name, at)
                .map(|refusal| refusal.sentence())
        }),
        now,
    })
}

/// The rule's name in a sentence, or "no rule".
fn named(rule: Option<&String>) -> String {
    rule.map_or_else(|| "no rule".to_owned(), |name| format!("rule {name:?}"))
}

/// `counts` as `3 to rule "a", 1 to no rule`.
fn listed(counts: &BTreeMap<String, usize>, word: &str) -> String {
    counts
        .iter()
        .map(|(name, count)| format!("{count} {word} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report in words: one paragraph per rule that would lose or gain alerts.
fn in_words(replay: &Replay, since: OffsetDateTime) -> String {
    let mut text = format!(
        "replayed {} alerts of {} records since {}: {} would now come to another rule\n",
        replay.alerts,
        replay.records,
        since.format(&Rfc3339).unwrap_or_default(),
        replay.moved.len()
    );
    let rules: BTreeSet<Option<&String>> = replay
        .moved
        .iter()
        .flat_map(|moved| [moved.was.as_ref(), moved.now.as_ref()])
        .collect();
    for rule in rules {
        text.push_str(&paragraph(replay, rule));
    }
    text
}

/// What `rule` would lose and gain, with what it would act on and what would hold it.
fn paragraph(replay: &Replay, rule: Option<&String>) -> String {
    let mut lost = BTreeMap::new();
    let mut gained = BTreeMap::new();
    let mut acts_on = BTreeSet::new();
    let mut held = BTreeMap::new();
    for moved in &replay.moved {
        if moved.was.as_ref() == rule {
            *lost.entry(named(moved.now.as_ref())).or_insert(0) += 1;
        }
        if moved.now.as_ref() == rule {
            *gained.entry(named(moved.was.as_ref())).or_insert(0) += 1;
            acts_on.extend(moved.acts_on.as_deref());
            if let Some(why) = &moved.held {
                *held.entry(why.as_str()).or_insert(0) += 1;
            }
        }
    }
    let mut text = format!("{}:\n", named(rule));
    if !lost.is_empty() {
        text.push_str(&format!(
            "  would no longer take: {}\n",
            listed(&lost, "to")
        ));
    }
    if !gained.is_empty() {
        text.push_str(&format!("  would now take: {}\n", listed(&gained, "from")));
    }
    if !acts_on.is_empty() {
        let acts_on: Vec<&str> = acts_on.into_iter().collect();
        text.push_str(&format!("  would act on: {}\n", acts_on.join(", ")));
    }
    for (why, count) in held {
        text.push_str(&format!("  {count} of them held: {why}\n"));
    }
    text
}

/// `--since`: a span back from `now` (`7d`, `36h`, `90m`) or an RFC 3339 time.
fn parse_since(since: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(since, &Rfc3339) {
        return Ok(at);
    }
    let bad = || {
        anyhow::anyhow!(
            "--since {since:?} is neither a span such as 7d, 36h or 90m nor an RFC 3339 time such as \
             2026-11-01T00:00:00Z"
        )
    };
    let split = since.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = since.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let span = match unit {
        "d" => time::Duration::days(number),
        "h" => time::Duration::hours(number),
        "m" => time::Duration::minutes(number),
        _ => return Err(bad()),
    };
    anyhow::ensure!(number > 0, "--since {since:?} is not a span back in time");
    Ok(now - span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, RequestMeta, Source};
    use crate::rules::AlertFacts;

    const CONFIG: &str = r#"
[[rules]]
name = "disk-full"
match = { metric = "disk_used_percent" }
when = "alert.value > 95.0"
ladder = ["reboot"]

[[rules]]
name = "disk-filling"
match = { metric = "disk_used_percent" }
ladder = ["reboot"]
mode = "observe"
"#;

    fn config() -> Config {
        crate::config::parse(CONFIG, []).unwrap()
    }

    fn record(value: f64, rule: Option<&str>) -> AuditRecord {
        let alert = AlertFacts {
            source: "sns".to_owned(),
            name: "disk".to_owned(),
            state: "firing".to_owned(),
            metric: "disk_used_percent".to_owned(),
            dimensions: [("InstanceId".to_owned(), "i-0123456789abcdef0".to_owned())].into(),
            value: Some(value),
            ..AlertFacts::default()
        };
        let routed = Routed {
            alert,
            rule: rule.map(str::to_owned),
        };
        let mut meta = RequestMeta::new(Source::Sns, None);
        meta.note(ROUTED_NOTE, [routed]);
        meta.into_record(Outcome::Completed, 200, None, 0)
    }

    #[test]
    fn an_alert_that_would_come_to_another_rule_is_listed_with_its_run_s_gate() {
        let config = config();
        let rules = Rules::for_config(&config, "").unwrap();
        let kept = record(97.0, Some("disk-full"));
        let routed = &routed_of(&kept).unwrap()[0];
        assert_eq!(moved(&rules, &config, &kept, routed), None, "same rule");
        let kept = record(90.0, Some("disk-full"));
        let routed = &routed_of(&kept).unwrap()[0];
        let found = moved(&rules, &config, &kept, routed).unwrap();
        assert_eq!(found.was.as_deref(), Some("disk-full"));
        assert_eq!(found.now.as_deref(), Some("disk-filling"));
        assert_eq!(found.acts_on.as_deref(), Some("i-0123456789abcdef0"));
        assert!(
            found.held.as_deref().unwrap().contains("observe"),
            "{found:?}"
        );
        let replay = Replay {
            records: 2,
            alerts: 2,
            moved: vec![found],
        };
        let text = in_words(&replay, OffsetDateTime::UNIX_EPOCH);
        assert!(
            text.starts_with("replayed 2 alerts of 2 records since 1970-01-01T00:00:00Z: 1 would"),
            "{text}"
        );
        assert!(
            text.contains(
                "rule \"disk-full\":\n  would no longer take: 1 to rule \"disk-filling\""
            ),
            "{text}"
        );
        assert!(text.contains("rule \"disk-filling\":\n  would now take: 1 from rule \"disk-full\"\n  would act on: i-0123456789abcdef0\n  1 of them held: observe mode"), "{text}");
    }

    #[test]
    fn since_is_a_span_back_or_a_time() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(30);
        assert_eq!(
            parse_since("7d", now).unwrap(),
            now - time::Duration::days(7)
        );
        assert_eq!(
            parse_since("36h", now).unwrap(),
            now - time::Duration::hours(36)
        );
        assert_eq!(
            parse_since("90m", now).unwrap(),
            now - time::Duration::minutes(90)
        );
        assert_eq!(
            parse_since("1970-01-02T00:00:00Z", now).unwrap(),
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(1)
        );
        for bad in ["", "d", "7w", "-1d", "0d", "yesterday"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
