//! Rules: which alerts, from any source, a response is for. Each `[[rules]]` table is compiled once at
//! start-up (its `match` shorthands and its CEL `when`, checked for every name it reads), then matched against
//! an alert as `AlertFacts`, in order: the first rule that matches is the alert's. `reflex rules test` shows,
//! for every rule, whether it matched and what failed.

mod alert;
mod context;
mod expr;
mod matcher;
mod place;
mod refute;
mod suite;
mod test_command;

use std::sync::Arc;

use cel::Env;

pub use alert::{AlertFacts, FIELDS, ROUTED_NOTE, Routed};
pub use suite::{SuiteReport, run_suite};
pub use test_command::test_command;

use crate::config::RuleConfig;
use expr::When;
use matcher::Matcher;
use place::RulePlace;

/// The sources a rule may consider.
pub const SOURCES: &[&str] = &["sns", "alertmanager", "grafana", "manual"];
/// The alert states a rule may consider.
pub const STATES: &[&str] = &["firing", "resolved"];
/// The most rules a configuration may hold.
pub const MAX_RULES: usize = 1_000;

/// Why a rule cannot be compiled: each names the rule and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A setting of the rule is not valid.
    #[error("rule {rule:?}: {key} {problem}")]
    Invalid {
        /// The rule's name (or its position when the name is the problem).
        rule: String,
        /// The key at fault.
        key: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A `match` shorthand's `re:` pattern does not compile.
    #[error("rule {rule:?}: match.{key} is not a regular expression: {problem}")]
    Match {
        /// The rule's name.
        rule: String,
        /// The shorthand.
        key: String,
        /// The pattern's error.
        problem: String,
    },
    /// The rule's `when` does not compile, or reads what it may not.
    #[error("rule {rule:?}: its `when` {problem}")]
    When {
        /// The rule's name.
        rule: String,
        /// The error, with its position.
        problem: String,
    },
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    sources: Vec<String>,
    on: Vec<String>,
    matcher: Matcher,
    when: Option<When>,
    /// Where it acts, when placed (`Rules::for_config`): an alert naming another place is not its.
    place: Option<RulePlace>,
}

/// Whether one rule matched an alert, and if not, the first thing that failed: what `reflex rules test`
/// prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The rule's name.
    pub rule: String,
    /// Whether it matched.
    pub matched: bool,
    /// What failed, with the alert's value (none when it matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The configuration's rules, compiled, in order.
pub struct Rules {
    rules: Vec<Rule>,
    env: Arc<Env>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Rules {
    /// Compiles `configs`, refusing the first rule that could not be matched safely. The rules are not
    /// placed: they match an alert from any account and region (serving and `reflex rules test` use
    /// `for_config`, which places each where it acts).
    pub fn compile(configs: &[RuleConfig]) -> Result<Self, RuleError> {
        if configs.len() > MAX_RULES {
            return Err(RuleError::Invalid {
                rule: format!("#{}", MAX_RULES + 1),
                key: "rules",
                problem: format!("are {}: at most {MAX_RULES}", configs.len()),
            });
        }
        let env = expr::environment();
        let mut rules: Vec<Rule> = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            check_settings(index, config, &rules)?;
            let when = config
                .when
                .as_deref()
                .map(|source| When::compile(&env, &config.name, source))
                .transpose()?;
            rules.push(Rule {
                name: config.name.clone(),
                sources: config.sources.clone(),
                on: config.on.clone(),
                matcher: Matcher::compile(&config.name, &config.matches)?,
                when,
                place: None,
            });
        }
        Ok(Self { rules, env })
    }

    /// Compiles `config`'s rules, each placed where it acts (its `account` and `region`): an alert that names
    /// another account or region is not its. `home_account` is the local account's id, empty when not known
    /// (then `aws.account_id`, else any id no `[[accounts]]` entry has, is taken to be the local one).
    pub fn for_config(
        config: &crate::config::Config,
        home_account: &str,
    ) -> Result<Self, RuleError> {
        let mut rules = Self::compile(&config.rules)?;
        for (rule, configured) in rules.rules.iter_mut().zip(&config.rules) {
            rule.place = Some(RulePlace::of(config, configured, home_account));
        }
        Ok(rules)
    }

    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule `alert` matches at `now` (Unix seconds), if any.
    pub fn first_match(&self, alert: &AlertFacts, now: i64) -> Option<&Rule> {
        let facts = context::Facts::new(alert, now);
        let context = facts.context(&self.env);
        self.rules
            .iter()
            .find(|rule| rule.failure(alert, &context).is_none())
    }

    /// For every rule, in order, whether `alert` matches it at `now`, and what failed when not.
    pub fn explain(&self, alert: &AlertFacts, now: i64) -> Vec<Verdict> {
        let facts = context::Facts::new(alert, now);
        let context = facts.context(&self.env);
        self.rules
            .iter()
            .map(|rule| {
                let failed = rule
                    .failure(alert, &context)
                    .map(|failure| rule.described(failure, alert));
                Verdict {
                    rule: rule.name.clone(),
                    matched: failed.is_none(),
                    failed,
                }
            })
            .collect()
    }
}

/// The first condition of a rule an alert fails, put in words only when asked (`reflex rules test`): matching
/// an alert against many rules writes nothing.
#[derive(Debug)]
enum Failure {
    /// A manual request, and the rule does not list `manual`.
    ManualSource,
    /// Not one of its sources.
    Source,
    /// Not one of its states.
    On,
    /// Another account or region than the rule's.
    Place,
    /// A `match` shorthand.
    Match,
    /// Its `when` is false.
    WhenFalse,
    /// Its `when` failed: the error.
    WhenError(String),
}

impl Rule {
    /// The first of the rule's conditions `alert` fails; `None` when it matches.
    fn failure(&self, alert: &AlertFacts, context: &cel::Context<'_, '_>) -> Option<Failure> {
        // A rule for every source is for alerts: only one that lists `manual` takes a person's request.
        if alert.source == "manual" && !self.sources.contains(&alert.source) {
            return Some(Failure::ManualSource);
        }
        if !self.sources.is_empty() && !self.sources.contains(&alert.source) {
            return Some(Failure::Source);
        }
        if !self.on.contains(&alert.state) {
            return Some(Failure::On);
        }
        if self
            .place
            .as_ref()
            .and_then(|place| place.miss(alert))
            .is_some()
        {
            return Some(Failure::Place);
        }
        if self.matcher.first_miss(alert).is_some() {
            return Some(Failure::Match);
        }
        let when = self.when.as_ref()?;
        if when.refuted(alert) {
            return Some(Failure::WhenFalse);
        }
        match when.holds(context) {
            Ok(true) => None,
            Ok(false) => Some(Failure::WhenFalse),
            Err(err) => Some(Failure::WhenError(err)),
        }
    }

    /// `failure` of `alert`, in words, with the alert's value.
    fn described(&self, failure: Failure, alert: &AlertFacts) -> String {
        let when = self.when.as_ref().map_or("", |when| when.source.as_str());
        match failure {
            Failure::ManualSource => format!(
                "sources: a manual request runs only a rule that lists \"manual\", not {:?}",
                self.sources
            ),
            Failure::Source => format!(
                "sources: {:?} is not one of {:?}",
                alert.source, self.sources
            ),
            Failure::On => format!(
                "on: the alert is {:?}, not one of {:?}",
                alert.state, self.on
            ),
            Failure::Place => self
                .place
                .as_ref()
                .and_then(|place| place.failed(alert))
                .unwrap_or_default(),
            Failure::Match => self.matcher.first_failed(alert).unwrap_or_default(),
            Failure::WhenFalse => format!("when: `{when}` is false"),
            Failure::WhenError(err) => format!("when: `{when}` failed: {err}"),
        }
    }
}

/// A rule's name, sources and states are known and its name is its own.
fn check_settings(index: usize, config: &RuleConfig, earlier: &[Rule]) -> Result<(), RuleError> {
    let invalid = |key, problem: String| RuleError::Invalid {
        rule: if config.name.is_empty() {
            format!("#{}", index + 1)
        } else {
            config.name.clone()
        },
        key,
        problem,
    };
    let name = config.name.as_str();
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "must be 1 to 64 printable characters".into(),
        ));
    }
    if name
        .to_ascii_lowercase()
        .starts_with(crate::audit::INSTANCE_PREFIX)
    {
        return Err(invalid(
            "name",
            format!(
                "may not begin with {:?}: an instance's pauses and silences are kept under such names",
                crate::audit::INSTANCE_PREFIX
            ),
        ));
    }
    if earlier.iter().any(|rule| rule.name == name) {
        return Err(invalid(
            "name",
            "names two rules: each rule's name is its own".into(),
        ));
    }
    if let Some(source) = config
        .sources
        .iter()
        .find(|s| !SOURCES.contains(&s.as_str()))
    {
        return Err(invalid(
            "sources",
            format!("holds {source:?}: one of {}", SOURCES.join(", ")),
        ));
    }
    if config.on.is_empty() {
        return Err(invalid(
            "on",
            "is empty: \"firing\", \"resolved\" or both".into(),
        ));
    }
    if let Some(state) = config.on.iter().find(|s| !STATES.contains(&s.as_str())) {
        return Err(invalid(
            "on",
            format!("holds {state:?}: \"firing\" or \"resolved\""),
        ));
    }
    if let Some((key, problem)) = selection_problem(config) {
        return Err(invalid(key, problem));
    }
    if !(1..=MAX_VERIFY_WITHIN_SECS).contains(&config.verify_within_secs) {
        return Err(invalid(
            "verify_within_secs",
            format!(
                "is {}: 1 to {MAX_VERIFY_WITHIN_SECS} (a day)",
                config.verify_within_secs
            ),
        ));
    }
    let mut steps: Vec<&String> = config.ladder.iter().collect();
    steps.sort();
    if let Some(pair) = steps.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(invalid(
            "ladder",
            format!("names {:?} twice: each step once", pair[0]),
        ));
    }
    Ok(())
}

/// The longest a rule's check waits for its alarm to be OK again.
const MAX_VERIFY_WITHIN_SECS: u64 = 86_400;

/// What is wrong with what a rule acts on, if anything, and under which key: its `instances`, or a rule on no
/// instance without `verify`, which alone can say whether its action worked.
fn selection_problem(config: &RuleConfig) -> Option<(&'static str, String)> {
    if let Some(problem) = instances_problem(&config.instances) {
        return Some(("instances", problem));
    }
    (config.instances == crate::config::NO_INSTANCES && config.verify.is_none()).then(|| {
        let problem = "is required with instances = \"none\": with no instance to look at, only the alert can \
                       say whether the action worked (verify = \"alarm-ok\")";
        ("verify", problem.to_owned())
    })
}

/// What is wrong with a rule's `instances`, if anything: `"alert"`, `"none"` or `"tag:KEY=VALUE"`, neither
/// part empty.
fn instances_problem(instances: &str) -> Option<String> {
    if [crate::config::ALERT_INSTANCES, crate::config::NO_INSTANCES].contains(&instances) {
        return None;
    }
    match crate::config::tag_selector(instances) {
        Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => None,
        _ => Some(format!(
            "is {instances:?}: \"alert\" (the instance the alert names), \"tag:KEY=VALUE\" (the instances \
             with that tag) or \"none\" (what the alert names beside instances, for steps on a whole target)"
        )),
    }
}

#[cfg(test)]
mod tests;
