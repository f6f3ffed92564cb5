//! The CEL context a rule's `when` reads: `alert`, the alert's facts as a read-only map, and `now`, Unix
//! seconds. Every name a `when` reads (`alert.name`, `alert.labels.job`, `now`) is resolved on the alert
//! itself when it is read: nothing is built for an alert that no rule's `when` reads, and a field read by
//! its full name (CEL looks the whole name up first) costs no map lookups. A map (`alert.labels`) or the
//! whole `alert`, read as such, is built once per alert, as the earlier context built it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use cel::common::types::{CelDouble, CelInt, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::{Key, Map};
use cel::{Context, Env, Value};

use super::alert::{AlertFacts, MAP_FIELDS, TEXT_FIELDS};

/// An alert at a moment, as CEL reads it: resolved name by name.
pub struct Facts<'a> {
    alert: &'a AlertFacts,
    now: i64,
    /// The whole `alert` map, once read as such.
    whole: OnceLock<Box<dyn Val>>,
    /// `alert.labels`, `alert.annotations` and `alert.dimensions` (in `MAP_FIELDS`' order), each once read
    /// as such.
    maps: [OnceLock<Box<dyn Val>>; 3],
}

impl<'a> Facts<'a> {
    /// The facts of `alert` at `now`.
    pub fn new(alert: &'a AlertFacts, now: i64) -> Self {
        Self {
            alert,
            now,
            whole: OnceLock::new(),
            maps: Default::default(),
        }
    }

    /// The CEL context that reads them, under `env`: cheap, since nothing is read until a `when` runs.
    pub fn context(&self, env: &Arc<Env>) -> Context<'_, '_> {
        let mut context = Context::with_env(Arc::clone(env));
        context.set_variable_resolver(self);
        context
    }

    /// `alert.FIELD`, or `alert.MAP.KEY` when `key` is given (`None` when there is no such field or entry:
    /// CEL then reads the shorter name and selects on it, and fails as it would have).
    fn field<'b>(&'b self, field: &str, key: Option<&str>) -> Option<CowVal<'b, 'b>> {
        let alert: &'a AlertFacts = self.alert;
        if let Some(map) = alert.map(field) {
            return match key {
                None => {
                    let index = MAP_FIELDS.iter().position(|name| *name == field)?;
                    let built = self.maps[index].get_or_init(|| boxed(map_value(map)));
                    Some(CowVal::Borrowed(built.as_ref()))
                }
                Some(key) => map
                    .get(key)
                    .map(|value| CowVal::owned(CelString::from(value.as_str()))),
            };
        }
        if key.is_some() {
            return None;
        }
        if let Some(text) = alert.text(field) {
            return Some(CowVal::owned(CelString::from(text)));
        }
        Some(alert.number(field)?.map_or_else(
            || CowVal::owned(CelNull),
            |number| CowVal::owned(CelDouble::from(number)),
        ))
    }
}

impl VariableResolver for Facts<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "now" => return Some(CowVal::owned(CelInt::from(self.now))),
            "alert" => {
                let built = self.whole.get_or_init(|| boxed(value_of(self.alert)));
                return Some(CowVal::Borrowed(built.as_ref()));
            }
            _ => {}
        }
        let path = variable.strip_prefix("alert.")?;
        match path.split_once('.') {
            None => self.field(path, None),
            // A key with a dot in it is not what `alert.labels.a.b` selects (that is `b` of label `a`).
            Some((field, key)) if !key.contains('.') => self.field(field, Some(key)),
            Some(_) => None,
        }
    }
}

/// `value` as the context holds it.
fn boxed(value: Value) -> Box<dyn Val> {
    value
        .try_into()
        .expect("maps and strings are values of the context")
}

/// A map of strings as CEL sees it.
fn map_value(entries: &BTreeMap<String, String>) -> Value {
    let entries: HashMap<Key, Value> = entries
        .iter()
        .map(|(key, value)| (Key::String(Arc::new(key.clone())), text(value)))
        .collect();
    Value::Map(Map {
        map: Arc::new(entries),
    })
}

fn text(value: &str) -> Value {
    Value::String(Arc::new(value.to_owned()))
}

/// `alert` as CEL sees it: every field present (an unknown value is null), maps of strings.
fn value_of(alert: &AlertFacts) -> Value {
    let texts = TEXT_FIELDS
        .iter()
        .map(|field| (*field, text(alert.text(field).unwrap_or_default())));
    let maps = MAP_FIELDS
        .iter()
        .filter_map(|field| Some((*field, map_value(alert.map(field)?))));
    let numbers = super::alert::NUMBER_FIELDS.iter().map(|field| {
        let number = alert.number(field).flatten();
        (*field, number.map_or(Value::Null, Value::Float))
    });
    let entries: HashMap<Key, Value> = texts
        .chain(maps)
        .chain(numbers)
        .map(|(key, value)| (Key::String(Arc::new(key.to_owned())), value))
        .collect();
    Value::Map(Map {
        map: Arc::new(entries),
    })
}

/// The context of `alert` at `now` as one map, every field built: what the resolved context must equal.
#[cfg(test)]
pub fn built(env: &Arc<Env>, alert: &AlertFacts, now: i64) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(env));
    context.add_variable_from_value("alert", value_of(alert));
    context.add_variable_from_value("now", Value::Int(now));
    context
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rules::expr;

    /// Reads of every kind: fields, entries present and missing, maps and the whole alert read as such,
    /// presence tests, comprehensions (one shadowing `now`), a key with a dot, types and nulls.
    const READS: &[&str] = &[
        "alert.name + '/' + alert.source + alert.state + alert.severity + alert.starts_at",
        "alert.namespace == 'CWAgent' && alert.metric.startsWith('disk') && alert.account + alert.region != ''",
        "alert.labels.job",
        "alert.labels.job.startsWith('ka') || alert.dimensions.path == '/'",
        "alert.annotations.summary",
        "has(alert.labels.job) && !has(alert.labels.nope)",
        "alert.labels.a.b",
        "alert.labels['a.b']",
        "alert['labels']['job'] == alert.labels.job",
        "size(alert.labels) + size(alert.dimensions) + size(alert)",
        "alert.labels.exists(k, k == 'job') && alert.labels.all(k, alert.labels[k] != '')",
        "alert.labels.exists(now, now == 'job') && now > 0",
        "'job' in alert.labels",
        "alert.value > 90.0",
        "alert.value == null || alert.threshold == null",
        "type(alert.value) == double",
        "alert.value > alert.threshold + 5.0",
        "alert.nope",
        "alert.labels",
        "alert",
    ];

    fn alert(
        job: Option<String>,
        dotted: bool,
        value: Option<f64>,
        threshold: Option<f64>,
    ) -> AlertFacts {
        let mut labels = BTreeMap::from([("instance".to_owned(), "i-0abc".to_owned())]);
        labels.extend(job.map(|job| ("job".to_owned(), job)));
        if dotted {
            labels.insert("a.b".into(), "dotted".into());
            labels.insert("a".into(), "plain".into());
        }
        AlertFacts {
            source: "sns".into(),
            name: "disk-used".into(),
            state: "firing".into(),
            namespace: "CWAgent".into(),
            metric: "disk_used_percent".into(),
            labels,
            dimensions: BTreeMap::from([("path".to_owned(), "/".to_owned())]),
            annotations: BTreeMap::from([("summary".to_owned(), "disk".to_owned())]),
            value,
            threshold,
            ..AlertFacts::default()
        }
    }

    proptest! {
        #[test]
        fn every_read_of_the_resolved_context_is_what_the_built_context_gives(
            which in 0..READS.len(),
            job in proptest::option::of("(kafka|web|)"),
            dotted in any::<bool>(),
            value in proptest::option::of(0.0f64..200.0),
            threshold in proptest::option::of(60.0f64..100.0),
            now in 0i64..2_000_000_000,
        ) {
            let env = expr::environment();
            let program = env.compile(READS[which]).unwrap();
            let alert = alert(job, dotted, value, threshold);
            let facts = Facts::new(&alert, now);
            let resolved = program.execute(&facts.context(&env));
            let built = program.execute(&built(&env, &alert, now));
            prop_assert_eq!(resolved, built);
        }
    }
}
