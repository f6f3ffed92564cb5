//! A rule's `match` shorthands, compiled once: each key set must hold, a text given as `re:PATTERN` matching
//! the whole value, any other text equal to it.

use regex::Regex;

use super::RuleError;
use super::alert::AlertFacts;
use crate::config::RuleMatch;

/// One text a shorthand compares with.
#[derive(Debug)]
enum Text {
    Exact(String),
    Pattern(Regex),
}

impl Text {
    fn compile(rule: &str, key: &str, value: &str) -> Result<Self, RuleError> {
        let Some(pattern) = value.strip_prefix("re:") else {
            return Ok(Self::Exact(value.to_owned()));
        };
        let refused = |err: regex::Error| RuleError::Match {
            rule: rule.to_owned(),
            key: key.to_owned(),
            problem: err.to_string(),
        };
        // The pattern alone first: one that closes the anchoring group (`a)|(b`) is refused, not unanchored.
        Regex::new(pattern).map_err(refused)?;
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Pattern)
            .map_err(refused)
    }

    fn holds(&self, value: &str) -> bool {
        match self {
            Self::Exact(text) => text == value,
            Self::Pattern(pattern) => pattern.is_match(value),
        }
    }
}

/// A rule's compiled shorthands: each a key (as written in the config) and the text it compares with.
#[derive(Debug, Default)]
pub struct Matcher {
    checks: Vec<(String, Text)>,
}

impl Matcher {
    /// Compiles the shorthands of `rule`.
    pub fn compile(rule: &str, matches: &RuleMatch) -> Result<Self, RuleError> {
        let mut checks = Vec::new();
        let scalars = [
            ("alarm_name", &matches.alarm_name),
            ("namespace", &matches.namespace),
            ("metric", &matches.metric),
            ("severity", &matches.severity),
        ];
        for (key, value) in scalars {
            if let Some(value) = value {
                checks.push((key.to_owned(), Text::compile(rule, key, value)?));
            }
        }
        for (map, entries) in [
            ("dimensions", &matches.dimensions),
            ("labels", &matches.labels),
        ] {
            for (name, value) in entries {
                let key = format!("{map}.{name}");
                let text = Text::compile(rule, &key, value)?;
                checks.push((key, text));
            }
        }
        Ok(Self { checks })
    }

    /// The first shorthand `alert` fails, in words (its key and the alert's value), or `None` when all hold.
    pub fn first_failed(&self, alert: &AlertFacts) -> Option<String> {
        let key = self.first_miss(alert)?;
        Some(match value_of(alert, key) {
            Some(value) => format!("match.{key}: the alert's is {value:?}"),
            None => format!("match.{key}: the alert has none"),
        })
    }

    /// The key of the first shorthand `alert` fails, in no words: on the path of every alert.
    pub fn first_miss(&self, alert: &AlertFacts) -> Option<&str> {
        self.checks
            .iter()
            .find(|(key, text)| value_of(alert, key).is_none_or(|value| !text.holds(value)))
            .map(|(key, _)| key.as_str())
    }
}

/// The alert's value for a shorthand's key; `None` for a dimension or label it does not have.
fn value_of<'a>(alert: &'a AlertFacts, key: &str) -> Option<&'a str> {
    match key {
        "alarm_name" => Some(&alert.name),
        "namespace" => Some(&alert.namespace),
        "metric" => Some(&alert.metric),
        "severity" => Some(&alert.severity),
        _ => match key.split_once('.') {
            Some(("dimensions", name)) => alert.dimensions.get(name).map(String::as_str),
            Some(("labels", name)) => alert.labels.get(name).map(String::as_str),
            _ => None,
        },
    }
}
