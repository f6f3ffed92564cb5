//! A rule's `when`: a CEL expression compiled once at start-up and checked before it is ever run: bounded in
//! length and nesting, naming only `alert` (and its fields) and `now`, with every error at its position.

use std::sync::Arc;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue,
};
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
    /// The comparisons its top-level `&&` requires, checked on the alert before the program runs.
    requirements: Vec<super::refute::Requirement>,
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
            in_comprehension: false,
        };
        check.walk(program.expression(), 1).map_err(error)?;
        let requirements = super::refute::requirements(program.expression());
        Ok(Self {
            program,
            source: source.to_owned(),
            requirements,
        })
    }

    /// Whether `alert` certainly makes it false, by a comparison it requires, without running it.
    pub fn refuted(&self, alert: &super::AlertFacts) -> bool {
        self.requirements
            .iter()
            .any(|requirement| requirement.refutes(alert))
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

/// The standard CEL environment every rule's `when` is compiled and run with, built once; without optional
/// syntax (`alert.?field`), whose reads of a missing field are not errors.
pub fn environment() -> Arc<Env> {
    Arc::new(Env::stdlib().with_optional_support(false))
}

/// The most elements a list or map written in a `when` may have.
pub const MAX_LITERAL_ELEMENTS: usize = 64;

/// CEL's type names, which a `when` may name (`type(alert.value) == double`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Walks a compiled expression: its depth, and every name it reads.
struct Check<'a> {
    source: &'a str,
    program: &'a Program,
    /// Names bound by the comprehensions (`exists`, `all`, `map`, ...) around the node walked.
    scope: Vec<String>,
    /// Whether the node walked is inside a comprehension.
    in_comprehension: bool,
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
            Expr::Select(select) if self.is_variable(&select.operand, "alert") => {
                self.field(&select.field, node)
            }
            Expr::Select(select) if self.is_variable(&select.operand, "now") => Err(format!(
                "reads now.{} at {}: now is a number (Unix seconds)",
                select.field,
                self.at(node)
            )),
            Expr::Select(select) => self.walk(&select.operand, under),
            Expr::Call(call) => self.call(call, node, under),
            Expr::Comprehension(comprehension) => self.comprehension(comprehension, node, under),
            Expr::List(list) => {
                self.literal_size(list.elements.len(), node)?;
                list.elements.iter().try_for_each(|e| self.walk(e, under))
            }
            Expr::Map(map) => self.entries(&map.entries, node, under),
            Expr::Struct(object) => self.entries(&object.entries, node, under),
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    /// Whether `node` is the variable `name` (not a comprehension's name shadowing it).
    fn is_variable(&self, node: &IdedExpr, name: &str) -> bool {
        matches!(&node.expr, Expr::Ident(ident) if ident == name)
            && !self.scope.iter().any(|bound| bound == name)
    }

    /// A call: `alert[...]` only with a field's name written out; a `matches` pattern written out must
    /// compile; then its target and arguments.
    fn call(&mut self, call: &CallExpr, node: &IdedExpr, depth: usize) -> Result<(), String> {
        if let ("_[_]", [operand, key]) = (call.func_name.as_str(), call.args.as_slice())
            && self.is_variable(operand, "alert")
        {
            return match &key.expr {
                Expr::Literal(LiteralValue::String(field)) => self.field(field.inner(), node),
                _ => Err(format!(
                    "reads alert[...] with a computed key at {}: name the field (alert.name, alert.labels, ...)",
                    self.at(node)
                )),
            };
        }
        if call.func_name == "matches"
            && let Some(IdedExpr {
                expr: Expr::Literal(LiteralValue::String(pattern)),
                ..
            }) = call.args.last()
            && let Err(err) = regex::Regex::new(pattern.inner())
        {
            return Err(format!(
                "matches a pattern at {} that is not a regular expression: {err}",
                self.at(node)
            ));
        }
        let children = call.target.iter().map(Box::as_ref).chain(&call.args);
        children
            .into_iter()
            .try_for_each(|child| self.walk(child, depth))
    }

    /// A comprehension (`exists`, `all`, `map`, ...), never inside another (their cost would multiply): its
    /// range, then its body with the names it binds.
    fn comprehension(
        &mut self,
        comprehension: &ComprehensionExpr,
        node: &IdedExpr,
        depth: usize,
    ) -> Result<(), String> {
        if self.in_comprehension {
            return Err(format!(
                "nests a comprehension (all, exists, exists_one, map, filter) inside another at {}: one \
                 level at most",
                self.at(node)
            ));
        }
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
        self.in_comprehension = true;
        let body = [
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ];
        let walked = body.into_iter().try_for_each(|part| self.walk(part, depth));
        self.in_comprehension = false;
        self.scope.truncate(before);
        walked
    }

    /// The keys and values of a map or message literal.
    fn entries(
        &mut self,
        entries: &[IdedEntryExpr],
        node: &IdedExpr,
        depth: usize,
    ) -> Result<(), String> {
        self.literal_size(entries.len(), node)?;
        entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(pair) => {
                self.walk(&pair.key, depth)?;
                self.walk(&pair.value, depth)
            }
            EntryExpr::StructField(field) => self.walk(&field.value, depth),
        })
    }

    /// A list or map written out is small.
    fn literal_size(&self, elements: usize, node: &IdedExpr) -> Result<(), String> {
        if elements > MAX_LITERAL_ELEMENTS {
            return Err(format!(
                "writes {elements} elements at {}: at most {MAX_LITERAL_ELEMENTS}",
                self.at(node)
            ));
        }
        Ok(())
    }

    /// `now`, a type's name, or a name a comprehension binds; `alert` is read field by field; anything else
    /// is refused where it is written.
    fn known(&self, name: &str, node: &IdedExpr) -> Result<(), String> {
        if self.scope.iter().any(|bound| bound == name)
            || name == "now"
            || TYPE_NAMES.contains(&name)
        {
            return Ok(());
        }
        if name == "alert" {
            return Err(format!(
                "reads alert whole at {}: read its fields (alert.name, alert.labels, ...)",
                self.at(node)
            ));
        }
        Err(format!(
            "reads {name:?} at {}, which is not a variable: a rule reads `alert` and `now`",
            self.at(node)
        ))
    }

    /// `alert.field`: a field an alert has.
    fn field(&self, field: &str, node: &IdedExpr) -> Result<(), String> {
        if FIELDS.contains(&field) {
            return Ok(());
        }
        Err(format!(
            "reads alert.{field} at {}, which is no field of an alert: {}",
            self.at(node),
            FIELDS.join(", ")
        ))
    }

    /// Where `node` is written, as `line:column` (from 1); the parser counts in bytes.
    fn at(&self, node: &IdedExpr) -> String {
        let offset = self
            .program
            .source_info()
            .offset_for(node.id)
            .map_or(0, |(start, _)| start as usize);
        let before = self.source.get(..offset).unwrap_or(self.source);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |text| text.chars().count())
            + 1;
        format!("{line}:{column}")
    }
}
