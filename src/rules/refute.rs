//! A `when`'s cheap refutations: the comparisons of an alert's field with a literal that its top-level `&&`
//! requires (`alert.labels.job == 'kafka'`, `alert.value > 90.0`, `alert.name.startsWith('disk-')`,
//! `alert.severity in ['page', 'critical']`), read once at start-up and checked on the alert itself. When
//! one of them is false, so is the whole `when` (CEL's `&&` is false once any side is false, whatever the
//! others give), and the rule fails without its program being run; in every other case CEL decides. This keeps matching many rules within the time of one alert.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};

use super::AlertFacts;
use super::alert::{MAP_FIELDS, NUMBER_FIELDS, TEXT_FIELDS};

/// A comparison a `when` requires to be true.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Requirement {
    field: Field,
    op: Op,
    literal: Literal,
}

/// What of the alert a requirement reads.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    /// `alert.name`, `alert.source`, ...: a text field.
    Text(&'static str),
    /// `alert.value` or `alert.threshold`: a number, or null when not known.
    Number(&'static str),
    /// `alert.labels.KEY`, `alert.annotations.KEY`, `alert.dimensions.KEY`: an entry of a map.
    Entry(&'static str, String),
}

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Equals,
    NotEquals,
    Less,
    LessEquals,
    Greater,
    GreaterEquals,
    /// `FIELD.startsWith(TEXT)`.
    StartsWith,
    /// `FIELD.endsWith(TEXT)`.
    EndsWith,
    /// `FIELD.contains(TEXT)`.
    Contains,
    /// `FIELD in [TEXT, ...]`.
    In,
}

/// The literal compared with.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
    /// A list of text literals only.
    Texts(Vec<String>),
}

/// The requirements of `expression`: its top-level `&&` operands that compare a field with a literal.
pub(super) fn requirements(expression: &IdedExpr) -> Vec<Requirement> {
    let mut found = Vec::new();
    collect(expression, &mut found);
    found
}

fn collect(node: &IdedExpr, found: &mut Vec<Requirement>) {
    let Expr::Call(call) = &node.expr else { return };
    if let Some(target) = &call.target {
        // A text method with a literal argument: `alert.name.startsWith('disk-')`.
        let requirement = match (method_of(&call.func_name), field_of(target), &call.args[..]) {
            (Some(op), Some(field), [argument]) => {
                literal_of(argument).map(|literal| Requirement { field, op, literal })
            }
            _ => None,
        };
        found.extend(requirement.filter(Requirement::is_well_typed));
        return;
    }
    if call.args.len() != 2 {
        return;
    }
    if call.func_name == operators::LOGICAL_AND {
        call.args.iter().for_each(|side| collect(side, found));
        return;
    }
    if call.func_name == operators::IN {
        let requirement = field_of(&call.args[0]).zip(texts_of(&call.args[1]));
        let requirement = requirement.map(|(field, literal)| Requirement {
            field,
            op: Op::In,
            literal,
        });
        found.extend(requirement.filter(Requirement::is_well_typed));
        return;
    }
    let Some(op) = op_of(&call.func_name) else {
        return;
    };
    let (left, right) = (&call.args[0], &call.args[1]);
    let requirement = match (
        field_of(left),
        literal_of(right),
        field_of(right),
        literal_of(left),
    ) {
        (Some(field), Some(literal), ..) => Requirement { field, op, literal },
        (_, _, Some(field), Some(literal)) => Requirement {
            field,
            op: op.flipped(),
            literal,
        },
        _ => return,
    };
    if requirement.is_well_typed() {
        found.push(requirement);
    }
}

fn op_of(name: &str) -> Option<Op> {
    Some(match name {
        operators::EQUALS => Op::Equals,
        operators::NOT_EQUALS => Op::NotEquals,
        operators::LESS => Op::Less,
        operators::LESS_EQUALS => Op::LessEquals,
        operators::GREATER => Op::Greater,
        operators::GREATER_EQUALS => Op::GreaterEquals,
        _ => return None,
    })
}

fn method_of(name: &str) -> Option<Op> {
    Some(match name {
        "startsWith" => Op::StartsWith,
        "endsWith" => Op::EndsWith,
        "contains" => Op::Contains,
        _ => return None,
    })
}

/// The list of text literals `node` is, if it is one.
fn texts_of(node: &IdedExpr) -> Option<Literal> {
    let Expr::List(list) = &node.expr else {
        return None;
    };
    if !list.optional_indices.is_empty() {
        return None;
    }
    let texts = list.elements.iter().map(|element| match &element.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(text.inner().to_owned()),
        _ => None,
    });
    texts.collect::<Option<Vec<String>>>().map(Literal::Texts)
}

/// The field `node` reads: `alert.FIELD` or `alert.MAP.KEY` (never a presence test, `has(...)`).
fn field_of(node: &IdedExpr) -> Option<Field> {
    let Expr::Select(select) = &node.expr else {
        return None;
    };
    if select.test {
        return None;
    }
    match &select.operand.expr {
        Expr::Ident(root) if root == "alert" => {
            let name = select.field.as_str();
            TEXT_FIELDS
                .iter()
                .find(|field| **field == name)
                .map(|field| Field::Text(field))
                .or_else(|| {
                    NUMBER_FIELDS
                        .iter()
                        .find(|field| **field == name)
                        .map(|field| Field::Number(field))
                })
        }
        Expr::Select(map)
            if !map.test && matches!(&map.operand.expr, Expr::Ident(root) if root == "alert") =>
        {
            MAP_FIELDS
                .iter()
                .find(|field| **field == map.field)
                .map(|field| Field::Entry(field, select.field.clone()))
        }
        _ => None,
    }
}

fn literal_of(node: &IdedExpr) -> Option<Literal> {
    match &node.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(Literal::Text(text.inner().to_owned())),
        Expr::Literal(LiteralValue::Double(number)) if number.inner().is_finite() => {
            Some(Literal::Number(*number.inner()))
        }
        _ => None,
    }
}

impl Op {
    /// The same comparison with its sides swapped (`90.0 < alert.value` is `alert.value > 90.0`).
    fn flipped(self) -> Self {
        match self {
            Self::Less => Self::Greater,
            Self::LessEquals => Self::GreaterEquals,
            Self::Greater => Self::Less,
            Self::GreaterEquals => Self::LessEquals,
            same => same,
        }
    }
}

impl Requirement {
    /// Only what is read the same way here as in CEL: text compared for equality with text, a number
    /// compared with a number.
    fn is_well_typed(&self) -> bool {
        match (&self.field, &self.literal) {
            (Field::Text(_) | Field::Entry(..), Literal::Text(_)) => matches!(
                self.op,
                Op::Equals | Op::NotEquals | Op::StartsWith | Op::EndsWith | Op::Contains
            ),
            (Field::Text(_) | Field::Entry(..), Literal::Texts(_)) => self.op == Op::In,
            (Field::Number(_), Literal::Number(_)) => !matches!(
                self.op,
                Op::StartsWith | Op::EndsWith | Op::Contains | Op::In
            ),
            _ => false,
        }
    }

    /// Whether `alert` certainly fails it; `false` when it holds or when only CEL can tell (a missing
    /// label, an unknown value: CEL's error is then the answer).
    pub fn refutes(&self, alert: &AlertFacts) -> bool {
        let text = match &self.field {
            Field::Text(field) => alert.text(field),
            Field::Entry(map, key) => alert
                .map(map)
                .and_then(|map| map.get(key))
                .map(String::as_str),
            Field::Number(field) => {
                let Literal::Number(literal) = self.literal else {
                    return false;
                };
                return alert
                    .number(field)
                    .flatten()
                    .is_some_and(|value| !self.number_holds(value, literal));
            }
        };
        text.is_some_and(|value| !self.text_holds(value))
    }

    /// Whether the text `value` meets the requirement (a number's literal: it does, as far as text goes).
    fn text_holds(&self, value: &str) -> bool {
        match (&self.literal, self.op) {
            (Literal::Text(literal), Op::Equals) => value == literal,
            (Literal::Text(literal), Op::NotEquals) => value != literal,
            (Literal::Text(literal), Op::StartsWith) => value.starts_with(literal.as_str()),
            (Literal::Text(literal), Op::EndsWith) => value.ends_with(literal.as_str()),
            (Literal::Text(literal), Op::Contains) => value.contains(literal.as_str()),
            (Literal::Texts(literals), Op::In) => literals.iter().any(|literal| literal == value),
            _ => true,
        }
    }

    fn number_holds(&self, value: f64, literal: f64) -> bool {
        if value.is_nan() {
            // Only CEL says how it compares.
            return true;
        }
        match self.op {
            Op::Equals => value == literal,
            Op::NotEquals => value != literal,
            Op::Less => value < literal,
            Op::LessEquals => value <= literal,
            Op::Greater => value > literal,
            Op::GreaterEquals => value >= literal,
            Op::StartsWith | Op::EndsWith | Op::Contains | Op::In => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::rules::{context, expr};

    /// `when`s with requirements of every form, and parts only CEL decides.
    const WHENS: &[&str] = &[
        "alert.value > 90.0",
        "90.0 <= alert.value && alert.labels.job == 'kafka'",
        "alert.labels.job != 'kafka' && alert.severity == 'page'",
        "alert.value < 50.0 && alert.labels.instance.startsWith('i-')",
        "alert.dimensions.path == '/' && alert.threshold >= 80.0",
        "(alert.value > 10.0 || alert.name == 'x') && alert.source == 'sns'",
        "alert.annotations.summary == 'disk' && alert.value != 75.5",
        "alert.labels.job.startsWith('ka') && alert.name.endsWith('a')",
        "alert.annotations.summary.contains('is') && alert.severity in ['page', 'info']",
        "alert.labels.job in ['web', 'db'] && !alert.labels.job.startsWith('w')",
        "alert.dimensions.path.endsWith('var') || alert.name.contains('b')",
        "alert.name.endsWith('é') && alert.name in []",
        "alert.name.contains('é') && alert.name in ['aé', 'a']",
    ];

    #[test]
    fn only_the_top_level_conjunction_s_comparisons_with_literals_are_required() {
        let env = expr::environment();
        let count = |source: &str| {
            let program = env.compile(source).unwrap();
            requirements(program.expression()).len()
        };
        assert_eq!(count("alert.value > 90.0"), 1);
        assert_eq!(
            count("alert.labels.job == 'kafka' && 90.0 < alert.value"),
            2
        );
        assert_eq!(count("alert.value > 90.0 || alert.severity == 'page'"), 0);
        assert_eq!(count("!(alert.value > 90.0)"), 0);
        assert_eq!(
            count("alert.value > 90"),
            0,
            "an int literal is CEL's to compare"
        );
        assert_eq!(count("alert.name < 'm'"), 0, "text ordering is CEL's");
        assert_eq!(count("has(alert.labels.job) && alert.labels.job == 'x'"), 1);
        assert_eq!(
            count("alert.name.startsWith('disk') && alert.labels.job.contains('k')"),
            2
        );
        assert_eq!(count("alert.severity in ['page', 'critical']"), 1);
        assert_eq!(
            count("alert.severity in ['page', alert.name]"),
            0,
            "a list of literals only"
        );
        assert_eq!(
            count("alert.name.startsWith(alert.labels.job)"),
            0,
            "a literal argument only"
        );
        assert_eq!(count("!alert.name.startsWith('disk')"), 0);
        assert_eq!(
            count("alert.value.startsWith('9')"),
            0,
            "text methods on text only"
        );
    }

    #[test]
    fn a_required_comparison_the_alert_fails_refutes_and_an_unknown_value_leaves_it_to_cel() {
        let env = expr::environment();
        let when = expr::When::compile(&env, "r", WHENS[1]).unwrap();
        let alert = |value: Option<f64>, job: Option<&str>| AlertFacts {
            value,
            labels: job
                .map(|job| ("job".to_owned(), job.to_owned()))
                .into_iter()
                .collect(),
            ..AlertFacts::default()
        };
        assert!(when.refuted(&alert(Some(50.0), Some("kafka"))));
        assert!(when.refuted(&alert(Some(95.0), Some("web"))));
        assert!(!when.refuted(&alert(Some(95.0), Some("kafka"))));
        assert!(
            !when.refuted(&alert(None, None)),
            "null and a missing label are CEL's"
        );
        let unknown_value = alert(None, Some("web"));
        assert!(when.refuted(&unknown_value), "false wins over CEL's error");
        // As it does in CEL: what the refutation relies on, should a new release of the crate change it.
        let facts = context::Facts::new(&unknown_value, 0);
        assert_eq!(when.holds(&facts.context(&env)), Ok(false));
    }

    proptest! {
        #[test]
        fn a_refuted_when_is_false_in_cel_too(
            which in 0..WHENS.len(),
            value in proptest::option::of(prop_oneof![Just(50.0), Just(75.5), Just(90.0), 0.0f64..200.0]),
            threshold in proptest::option::of(60.0f64..100.0),
            job in proptest::option::of("(kafka|web)"),
            severity in "(page|info|)",
            path in proptest::option::of("(/|/var)"),
            summary in proptest::option::of("(disk|cpu)"),
            name in "(a|ba|ab|é|aé)",
        ) {
            let env = expr::environment();
            let when = expr::When::compile(&env, "r", WHENS[which]).unwrap();
            let mut labels = BTreeMap::from([("instance".to_owned(), "i-0abc".to_owned())]);
            labels.extend(job.map(|job| ("job".to_owned(), job)));
            let alert = AlertFacts {
                source: "sns".into(),
                name,
                severity,
                value,
                threshold,
                labels,
                dimensions: path.map(|p| ("path".to_owned(), p)).into_iter().collect(),
                annotations: summary.map(|s| ("summary".to_owned(), s)).into_iter().collect(),
                ..AlertFacts::default()
            };
            if when.refuted(&alert) {
                let facts = context::Facts::new(&alert, 0);
                prop_assert_eq!(when.holds(&facts.context(&env)), Ok(false));
            }
        }
    }
}
