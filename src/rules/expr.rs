//! A rule's `when`: a CEL expression compiled once at start-up and checked before it is ever run: bounded in
//! length and nesting, naming only `alert` (and its fields) and `now`, with every error at its position.

use std::sync::Arc;

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};

use super::RuleError;
use super::alert::FIELDS;

/// The longest `when`, in characters.
pub const MAX_CHARS: usize = 1_024;
/// The deepest nesting of a `when`'s expression tree.
pub const MAX_DEPTH: usize = 24;

/// A compiled `when`.
#[derive(Debug)]
pub struct When {
    program: Program,
    /// The expression as written, for explanations.
    pub source: String,
}

impl When {
    /// Compiles `source` for the rule `rule` under `env`, refusing what could not be run safely.
    pub fn compile(env: &Env, rule: &str, source: &str) -> Result<Self, RuleError> {
        let error = |problem: String| RuleError::When {
            rule: rule.to_owned(),
            problem,
        };
        let chars = source.chars().count();
        if chars > MAX_CHARS {
            return Err(error(format!(
                "is {chars} characters long; at most {MAX_CHARS}"
            )));
        }
        let program = env.compile(source).map_err(|err| error(err.to_string()))?;
        let mut check = Check {
            source,
            program: &program,
            scope: Vec::new(),
        };
        check.walk(program.expression(), 1).map_err(error)?;
        Ok(Self {
            program,
            source: source.to_owned(),
        })
    }

    /// Whether the expression is true in `context`; an error (a missing label, a type mismatch) is the
    /// error's text, and the rule does not match.
    pub fn holds(&self, context: &Context) -> Result<bool, String> {
        match self.program.execute(context) {
            Ok(Value::Bool(holds)) => Ok(holds),
            Ok(other) => Err(format!("is {other:?}, not true or false")),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// The standard CEL environment every rule's `when` is compiled and run with, built once.
pub fn environment() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

/// Walks a compiled expression: its depth, and every name it reads.
struct Check<'a> {
    source: &'a str,
    program: &'a Program,
    /// Names bound by the comprehensions (`exists`, `all`, `map`, ...) around the node walked.
    scope: Vec<String>,
}

impl Check<'_> {
    /// Checks `node` at `depth` and everything under it.
    fn walk(&mut self, node: &IdedExpr, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "nests deeper than {MAX_DEPTH} levels at {}",
                self.at(node)
            ));
        }
        let under = depth + 1;
        match &node.expr {
            Expr::Ident(name) => self.known(name, node),
            Expr::Select(select) => {
                if self.is_alert(&select.operand) && !FIELDS.contains(&select.field.as_str()) {
                    return Err(self.unknown_field(&select.field, node));
                }
                self.walk(&select.operand, under)
            }
            Expr::Call(call) => {
                if let ("_[_]", [operand, key]) = (call.func_name.as_str(), call.args.as_slice())
                    && self.is_alert(operand)
                    && let Expr::Literal(LiteralValue::String(field)) = &key.expr
                    && !FIELDS.contains(&field.inner())
                {
                    return Err(self.unknown_field(field.inner(), node));
                }
                let children = call.target.iter().map(Box::as_ref).chain(&call.args);
                children
                    .into_iter()
                    .try_for_each(|child| self.walk(child, under))
            }
            Expr::Comprehension(comprehension) => self.comprehension(comprehension, under),
            Expr::List(list) => list.elements.iter().try_for_each(|e| self.walk(e, under)),
            Expr::Map(map) => self.entries(&map.entries, under),
            Expr::Struct(object) => self.entries(&object.entries, under),
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    /// Whether `node` is the variable `alert` (not a comprehension's name shadowing it).
    fn is_alert(&self, node: &IdedExpr) -> bool {
        matches!(&node.expr, Expr::Ident(name) if name == "alert")
            && !self.scope.iter().any(|bound| bound == "alert")
    }

    /// A comprehension (`exists`, `all`, `map`, ...): its range, then its body with the names it binds.
    fn comprehension(
        &mut self,
        comprehension: &ComprehensionExpr,
        depth: usize,
    ) -> Result<(), String> {
        self.walk(&comprehension.iter_range, depth)?;
        self.walk(&comprehension.accu_init, depth)?;
        let bound = [
            Some(&comprehension.iter_var),
            comprehension.iter_var2.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain([&comprehension.accu_var]);
        let before = self.scope.len();
        self.scope.extend(bound.cloned());
        let body = [
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ];
        let walked = body.into_iter().try_for_each(|part| self.walk(part, depth));
        self.scope.truncate(before);
        walked
    }

    /// The keys and values of a map or message literal.
    fn entries(&mut self, entries: &[IdedEntryExpr], depth: usize) -> Result<(), String> {
        entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(pair) => {
                self.walk(&pair.key, depth)?;
                self.walk(&pair.value, depth)
            }
            EntryExpr::StructField(field) => self.walk(&field.value, depth),
        })
    }

    /// `alert`, `now`, or a name a comprehension binds; anything else is refused where it is written.
    fn known(&self, name: &str, node: &IdedExpr) -> Result<(), String> {
        if matches!(name, "alert" | "now") || self.scope.iter().any(|bound| bound == name) {
            return Ok(());
        }
        Err(format!(
            "reads {name:?} at {}, which is not a variable: a rule reads `alert` and `now`",
            self.at(node)
        ))
    }

    fn unknown_field(&self, field: &str, node: &IdedExpr) -> String {
        format!(
            "reads alert.{field} at {}, which is no field of an alert: {}",
            self.at(node),
            FIELDS.join(", ")
        )
    }

    /// Where `node` is written, as `line:column` (from 1).
    fn at(&self, node: &IdedExpr) -> String {
        let offset = self
            .program
            .source_info()
            .offset_for(node.id)
            .map_or(0, |(start, _)| start as usize);
        let before: String = self.source.chars().take(offset).collect();
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |text| text.chars().count())
            + 1;
        format!("{line}:{column}")
    }
}
