//! The CEL context a rule's `when` reads: `alert`, the alert's facts as a read-only map, and `now`, Unix
//! seconds. Built once per alert and shared by every rule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Env, Value};

use super::alert::AlertFacts;

/// The context of `alert` at `now`, under `env`.
pub fn of(env: &Arc<Env>, alert: &AlertFacts, now: i64) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(env));
    context.add_variable_from_value("alert", value_of(alert));
    context.add_variable_from_value("now", Value::Int(now));
    context
}

/// `alert` as CEL sees it: every field present (an unknown value is null), maps of strings.
fn value_of(alert: &AlertFacts) -> Value {
    let text = |value: &str| Value::String(Arc::new(value.to_owned()));
    let number = |value: Option<f64>| value.map_or(Value::Null, Value::Float);
    let map = |entries: &BTreeMap<String, String>| {
        let entries: HashMap<Key, Value> = entries
            .iter()
            .map(|(key, value)| (Key::String(Arc::new(key.clone())), text(value)))
            .collect();
        Value::Map(Map {
            map: Arc::new(entries),
        })
    };
    let fields = [
        ("source", text(&alert.source)),
        ("name", text(&alert.name)),
        ("state", text(&alert.state)),
        ("severity", text(&alert.severity)),
        ("labels", map(&alert.labels)),
        ("annotations", map(&alert.annotations)),
        ("namespace", text(&alert.namespace)),
        ("metric", text(&alert.metric)),
        ("dimensions", map(&alert.dimensions)),
        ("value", number(alert.value)),
        ("threshold", number(alert.threshold)),
        ("account", text(&alert.account)),
        ("region", text(&alert.region)),
        ("starts_at", text(&alert.starts_at)),
    ];
    let entries: HashMap<Key, Value> = fields
        .into_iter()
        .map(|(key, value)| (Key::String(Arc::new(key.to_owned())), value))
        .collect();
    Value::Map(Map {
        map: Arc::new(entries),
    })
}
