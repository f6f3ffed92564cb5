//! Parameters written as templates over the instance an act is on (MiniJinja): `{{ instance.id }}`,
//! `{{ instance.tags.Service }}`. Each is compiled and checked at start-up (its syntax, and that it reads only
//! the instance's fields), rendered once when a run is planned, and checked against its pattern. Undefined
//! values are errors, a render's work is bounded, there are no includes, and only the configured text is ever
//! a template: values read from AWS (a tag) are data, never rendered again.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;

use crate::engine::port::InstanceView;

/// The instance's fields a template may read.
pub const FIELDS: [&str; 6] = [
    "id",
    "zone",
    "state",
    "auto_scaling_group",
    "image_id",
    "tags",
];

/// The most a render may do (MiniJinja's fuel): far above any parameter's needs, far below a runaway loop.
const FUEL: u64 = 10_000;

/// The longest a rendered value may be.
const RENDERED_MAX: usize = 4_096;

/// One parameter: its templates (one per value) and the pattern each rendered value must match.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// The parameter's name, as the document declares it.
    pub name: String,
    /// Its values, each a template.
    pub values: Vec<String>,
    /// The pattern each rendered value must match as a whole, when one is configured.
    pub pattern: Option<Regex>,
}

/// Why a parameter cannot be used at start-up, or rendered for an instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse.
    #[error("parameter {name:?}: the template {source_text:?} does not parse: {why}")]
    Syntax {
        /// The parameter.
        name: String,
        /// The template.
        source_text: String,
        /// MiniJinja's message.
        why: String,
    },
    /// The template reads a variable that is not one of the instance's fields.
    #[error(
        "parameter {name:?}: the template reads {variable:?}, which is not a field of the instance; \
         a template may read instance.{}",
        FIELDS.join(", instance.")
    )]
    Unknown {
        /// The parameter.
        name: String,
        /// The variable read.
        variable: String,
    },
    /// The template reads the instance, but its parameter has no pattern to hold the value to.
    #[error(
        "parameter {name:?} reads the instance but has no pattern: whoever may tag or name an instance would \
         choose what is run; add `parameter_patterns = {{ {name} = \"...\" }}` matching every value you expect \
         (it reads {variable})"
    )]
    NoPattern {
        /// The parameter.
        name: String,
        /// A variable it reads.
        variable: String,
    },
    /// Rendering failed for this instance (an undefined value such as a missing tag, the work bound).
    #[error("parameter {name:?} cannot be rendered for {instance}: {why}")]
    Render {
        /// The parameter.
        name: String,
        /// The instance.
        instance: String,
        /// MiniJinja's message.
        why: String,
    },
    /// A rendered value does not match the parameter's pattern, or is too long.
    #[error("parameter {name:?} rendered for {instance} is {value:?}, which {why}")]
    Refused {
        /// The parameter.
        name: String,
        /// The instance.
        instance: String,
        /// The rendered value (cut to 200 characters).
        value: String,
        /// What it fails.
        why: String,
    },
}

/// What a template sees of an instance: absent facts are undefined, so a template that needs one fails
/// rather than rendering an empty value.
#[derive(Debug, Serialize)]
struct InstanceFacts<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_scaling_group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<&'a str>,
    tags: BTreeMap<&'a str, &'a str>,
}

/// The environment every template is compiled and rendered in: strict undefined, bounded work, no loader (a
/// webhook's body starts from it too).
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// Checks every template of `parameters` at start-up: it parses, reads only the instance's fields, and one that
/// reads any has a pattern (a tag is written by whoever may tag the instance).
pub fn check(parameters: &[Parameter]) -> Result<(), TemplateError> {
    let env = environment();
    for parameter in parameters {
        for source in &parameter.values {
            let template = env
                .template_from_str(source)
                .map_err(|err| TemplateError::Syntax {
                    name: parameter.name.clone(),
                    source_text: source.clone(),
                    why: err.to_string(),
                })?;
            let mut read: Vec<String> = template.undeclared_variables(true).into_iter().collect();
            read.sort();
            if let Some(variable) = read.iter().find(|variable| !is_field(variable)) {
                return Err(TemplateError::Unknown {
                    name: parameter.name.clone(),
                    variable: variable.clone(),
                });
            }
            if let (Some(variable), None) = (read.first(), &parameter.pattern) {
                return Err(TemplateError::NoPattern {
                    name: parameter.name.clone(),
                    variable: variable.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Whether `variable` (as MiniJinja names a nested read: `instance.tags.Service`) is the instance or one of
/// its fields.
fn is_field(variable: &str) -> bool {
    let mut parts = variable.split('.');
    parts.next() == Some("instance") && parts.next().is_none_or(|field| FIELDS.contains(&field))
}

/// Renders every parameter for `instance` and checks each value against its pattern.
pub fn render(
    parameters: &[Parameter],
    instance: &InstanceView,
) -> Result<BTreeMap<String, Vec<String>>, TemplateError> {
    let env = environment();
    let ec2 = instance.ec2.as_ref();
    let facts = InstanceFacts {
        id: &instance.instance_id,
        zone: ec2.and_then(|ec2| ec2.zone.as_deref()),
        state: ec2.map(|ec2| ec2.state.as_str()),
        auto_scaling_group: instance.auto_scaling_group.as_deref(),
        image_id: ec2.and_then(|ec2| ec2.image_id.as_deref()),
        tags: ec2
            .map(|ec2| {
                ec2.tags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let context = minijinja::context! { instance => facts };
    let mut rendered = BTreeMap::new();
    for parameter in parameters {
        let mut values = Vec::with_capacity(parameter.values.len());
        for source in &parameter.values {
            let value = env
                .render_str(source, &context)
                .map_err(|err| TemplateError::Render {
                    name: parameter.name.clone(),
                    instance: instance.instance_id.clone(),
                    why: err.to_string(),
                })?;
            allowed(parameter, &instance.instance_id, &value)?;
            values.push(value);
        }
        rendered.insert(parameter.name.clone(), values);
    }
    Ok(rendered)
}

/// Refuses a rendered value that is too long or does not match the parameter's pattern as a whole.
fn allowed(parameter: &Parameter, instance: &str, value: &str) -> Result<(), TemplateError> {
    let refused = |why: String| TemplateError::Refused {
        name: parameter.name.clone(),
        instance: instance.to_owned(),
        value: value.chars().take(200).collect(),
        why,
    };
    if value.len() > RENDERED_MAX {
        return Err(refused(format!("is longer than {RENDERED_MAX} bytes")));
    }
    match &parameter.pattern {
        Some(pattern) if !pattern.is_match(value) => Err(refused(format!(
            "does not match its pattern {:?} (parameter_patterns)",
            pattern.as_str()
        ))),
        _ => Ok(()),
    }
}

/// `pattern` compiled to match a whole value.
pub fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::port::{Ec2Facts, Health, HealthState};

    fn parameter(values: &[&str], pattern: Option<&str>) -> Parameter {
        Parameter {
            name: "commands".to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            pattern: pattern.map(|p| anchored(p).unwrap()),
        }
    }

    fn instance(tags: &[(&str, &str)]) -> InstanceView {
        InstanceView {
            instance_id: "i-0abc".to_owned(),
            health: Health {
                state: HealthState::OutOfService,
                reported: "OutOfService".to_owned(),
                reason_code: None,
                description: None,
            },
            ec2: Some(Ec2Facts {
                state: "running".to_owned(),
                launch_time: None,
                tags: tags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                zone: Some("us-east-1a".to_owned()),
                image_id: None,
            }),
            auto_scaling_group: None,
        }
    }

    #[test]
    fn a_template_renders_the_instance_s_fields_and_tags_as_data() {
        let parameters = [parameter(
            &[
                "systemctl restart {{ instance.tags.Service }} # {{ instance.id }} {{ instance.zone }}",
            ],
            Some(".+"),
        )];
        check(&parameters).unwrap();
        let rendered = render(&parameters, &instance(&[("Service", "{{ instance.id }}")])).unwrap();
        assert_eq!(
            rendered["commands"],
            ["systemctl restart {{ instance.id }} # i-0abc us-east-1a"]
        );
    }

    #[test]
    fn a_template_that_does_not_parse_or_reads_anything_but_the_instance_is_refused_at_start_up() {
        let err = check(&[parameter(&["{{ instance.id "], None)]).unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{err}");
        for (template, variable) in [
            ("{{ alert.name }}", "alert.name"),
            ("{{ instance.nmae }}", "instance.nmae"),
            ("{% for x in range(10) %}{% endfor %}", "range"),
            ("{% include 'x' %}", "include"),
        ] {
            let err = check(&[parameter(&[template], None)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(variable), "{template}: {err}");
        }
        let err = check(&[parameter(&["restart {{ instance.tags.Service }}"], None)]).unwrap_err();
        assert!(matches!(err, TemplateError::NoPattern { .. }), "{err}");
        check(&[parameter(&["systemctl restart app"], None)]).unwrap();
    }

    #[test]
    fn a_missing_value_or_a_value_outside_its_pattern_is_refused_for_the_instance() {
        let parameters = [parameter(
            &["restart {{ instance.tags.Service }}"],
            Some("restart [a-z-]+"),
        )];
        let err = render(&parameters, &instance(&[])).unwrap_err();
        assert!(matches!(err, TemplateError::Render { .. }), "{err}");
        let err = render(&parameters, &instance(&[("Service", "app; rm -rf /")])).unwrap_err();
        assert!(
            err.to_string().contains("does not match its pattern"),
            "{err}"
        );
        let rendered = render(&parameters, &instance(&[("Service", "app")])).unwrap();
        assert_eq!(rendered["commands"], ["restart app"]);
    }

    #[test]
    fn a_render_that_runs_away_is_stopped() {
        let parameters = [parameter(
            &["{% for a in instance.id * 1000 %}{{ a }}{% endfor %}"],
            Some(".*"),
        )];
        check(&parameters).unwrap();
        assert!(render(&parameters, &instance(&[])).is_err());
    }
}
