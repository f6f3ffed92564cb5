//! `ssm-command`: a command run on the instance through SSM (SendCommand), say restarting a service before the
//! ladder reboots or replaces anything. It needs an `[[actions]]` entry: the document, its pinned version, and
//! parameters written as templates over the instance, each rendered when the run plans and checked against its
//! pattern (required for a template that reads the instance; a value that fails is `bad-parameter`: nothing is
//! sent). The command's `Comment` names the run, so that a takeover after a crash finds the command a dead
//! attempt sent (ListCommands) instead of sending a second. The act is pending until the command's invocation
//! ends (GetCommandInvocation); its status and the first lines of its output are in the check's record. It
//! keeps the instance and removes no capacity; it is judged, as a reboot is, by the instance being InService
//! again after `verify_secs`.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ssm::types::CommandInvocationStatus;

use super::template::{self, Parameter};
use crate::aws::AwsFleet;
use crate::engine::action::{
    Action, ActsOn, Arguments, ArgumentsRefused, Effect, Judged, On, Polled, Started,
};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FailureKind, FleetError, InstanceView};

/// The `ssm-command` action kind: unset until an `[[actions]]` entry sets it.
#[derive(Debug, Clone, Default)]
pub struct SsmCommand {
    settings: Option<Arc<Settings>>,
}

/// What an `[[actions]]` entry of the kind sets.
#[derive(Debug)]
struct Settings {
    document: String,
    version: String,
    parameters: Vec<Parameter>,
    timeout_secs: Option<i32>,
    verify_after: Duration,
}

/// The name, and the call it makes.
const NAME: &str = "ssm-command";
const CALL: &str = "send-command";
/// How long after sending the instance is checked, unless `verify_secs` says otherwise.
const VERIFY_AFTER: Duration = Duration::from_secs(60);
/// The longest delivery timeout: the step's check follows a command for about ten minutes.
const TIMEOUT_MAX: i32 = 600;
/// The most pages of the instance's commands a takeover reads (50 commands each).
const PAGES: usize = 10;
/// The most lines, and characters per line, of a command's output kept in the record.
const OUTPUT_LINES: usize = 5;
const OUTPUT_LINE_CHARS: usize = 200;

/// The keys an entry may set.
const KEYS: &[&str] = &[
    "document",
    "document_version",
    "parameters",
    "parameter_patterns",
    "timeout_secs",
    "verify_secs",
];

/// A value written as one string or a list of them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The `Comment` of a command sent for run `run`: how a takeover finds it.
fn comment(run: &str) -> String {
    format!("reflex run {run}")
}

impl SsmCommand {
    fn settings(&self) -> Result<&Settings, FleetError> {
        self.settings.as_deref().ok_or_else(|| {
            FleetError::new(
                FailureKind::Permanent,
                "SendCommand",
                None,
                "ssm-command runs only as an [[actions]] entry with its document",
            )
        })
    }
}

impl Action for SsmCommand {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verb(&self) -> &'static str {
        "run the command on"
    }

    fn done(&self) -> &'static str {
        "ran the command on"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: true,
            removes_capacity: false,
            adds_capacity: false,
            judged: Judged::InstancesBack,
            checked_after: Some(
                self.settings
                    .as_ref()
                    .map_or(VERIFY_AFTER, |settings| settings.verify_after),
            ),
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "ssm:SendCommand",
            "ssm:GetCommandInvocation",
            "ssm:ListCommands",
        ]
    }

    fn described(&self) -> String {
        match &self.settings {
            Some(settings) => format!("{NAME} {} version {}", settings.document, settings.version),
            None => NAME.to_owned(),
        }
    }

    fn needs_entry(&self) -> bool {
        true
    }

    fn entry_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn with_entry(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        let settings = read(keys)?;
        Ok(Some(Arc::new(Self {
            settings: Some(Arc::new(settings)),
        })))
    }

    fn arguments(&self, instance: &InstanceView) -> Result<Arguments, ArgumentsRefused> {
        let Some(settings) = &self.settings else {
            return Ok(Arguments::new());
        };
        template::render(&settings.parameters, instance).map_err(|err| {
            tracing::warn!(instance = instance.instance_id, error = %err, "not sent");
            ArgumentsRefused {
                reason: SkipReason::BadParameter,
                why: err.to_string(),
            }
        })
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok(CALL)
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "commanded-instance-ids"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["commanded-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            let aws = aws_of(on)?;
            let instance = on.act.subject.id();
            if !on.resumes.is_empty()
                && let Some(sent) = sent_by(aws, instance, on.resumes).await?
            {
                tracing::warn!(
                    instance,
                    command = sent,
                    "the dead attempt's command was sent: following it"
                );
                return Ok(Started::Pending(sent));
            }
            send(aws, settings, instance, &on.act.arguments)
                .await
                .map(Started::Pending)
        })
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        Box::pin(async move {
            let aws = aws_of(on)?;
            let call = aws
                .ssm()
                .get_command_invocation()
                .command_id(handle)
                .instance_id(on.act.subject.id())
                .send();
            let invocation = aws.call("GetCommandInvocation", call).await?;
            let output = |text: Option<&str>| excerpt(text.unwrap_or_default());
            let status = invocation
                .status()
                .cloned()
                .unwrap_or(CommandInvocationStatus::Pending);
            Ok(match status {
                CommandInvocationStatus::Success => Polled::Done(with_output(
                    "Success",
                    &output(invocation.standard_output_content()),
                )),
                CommandInvocationStatus::Pending
                | CommandInvocationStatus::InProgress
                | CommandInvocationStatus::Delayed
                | CommandInvocationStatus::Cancelling => Polled::Pending,
                other => {
                    let errors = output(invocation.standard_error_content());
                    let shown = if errors.is_empty() {
                        output(invocation.standard_output_content())
                    } else {
                        errors
                    };
                    Polled::Failed(with_output(other.as_str(), &shown))
                }
            })
        })
    }
}

/// The fleet's SDK clients, which the kind calls SSM through.
fn aws_of(on: On<'_>) -> Result<&AwsFleet, FleetError> {
    super::aws_of(on, NAME, "SendCommand")
}

/// Sends the command to `instance` with the parameters rendered when the run was planned; its id.
async fn send(
    aws: &AwsFleet,
    settings: &Settings,
    instance: &str,
    arguments: &Arguments,
) -> Result<String, FleetError> {
    // A command no takeover could find is never sent.
    let run = super::recorded_run("SendCommand")?;
    let mut call = aws
        .ssm()
        .send_command()
        .document_name(&settings.document)
        .document_version(&settings.version)
        .instance_ids(instance)
        .comment(comment(&run))
        .set_timeout_seconds(settings.timeout_secs);
    for (name, values) in arguments {
        call = call.parameters(name, values.clone());
    }
    let sent = aws.call("SendCommand", call.send()).await?;
    sent.command()
        .and_then(|command| command.command_id())
        .map(str::to_owned)
        .ok_or_else(|| {
            FleetError::new(
                FailureKind::Transient,
                "SendCommand",
                None,
                "SSM answered without a command id",
            )
        })
}

/// The command one of the dead attempts `previous` sent to `instance`, if one did (found by its `Comment`
/// among the instance's latest commands).
async fn sent_by(
    aws: &AwsFleet,
    instance: &str,
    previous: &[String],
) -> Result<Option<String>, FleetError> {
    let wanted: Vec<String> = previous.iter().map(|run| comment(run)).collect();
    let mut token = None;
    for _ in 0..PAGES {
        let call = aws
            .ssm()
            .list_commands()
            .instance_id(instance)
            .set_next_token(token)
            .send();
        let listed = aws.call("ListCommands", call).await?;
        let found = listed.commands().iter().find(|command| {
            command
                .comment()
                .is_some_and(|comment| wanted.iter().any(|w| w == comment))
        });
        if let Some(command) = found {
            return Ok(command.command_id().map(str::to_owned));
        }
        token = listed.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(None)
}

/// A status with the output that goes with it, when there is any.
fn with_output(status: &str, output: &str) -> String {
    if output.is_empty() {
        status.to_owned()
    } else {
        format!("{status}; output: {output}")
    }
}

/// The first lines of a command's output, each cut short, joined with ` | `.
fn excerpt(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .take(OUTPUT_LINES)
        .map(|line| line.chars().take(OUTPUT_LINE_CHARS).collect::<String>())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Reads and checks an entry's keys.
fn read(keys: &Keys<'_>) -> Result<Settings, KeyError> {
    let required = |key: &str, example: &str| KeyError {
        key: format!("actions.{key}"),
        problem: format!("is required for an ssm-command entry, e.g. {example}"),
    };
    let document = keys
        .get::<String>("document", |document| non_empty(document))?
        .ok_or_else(|| required("document", "document = \"AWS-RunShellScript\""))?;
    let version = keys
        .get::<toml::Value>("document_version", |_| Ok(()))?
        .ok_or_else(|| {
            required(
                "document_version",
                "document_version = \"1\" (a pinned version)",
            )
        })?;
    let version = pinned(&version).map_err(|problem| KeyError {
        key: "actions.document_version".to_owned(),
        problem,
    })?;
    let verify_after =
        super::verify_secs(keys, VERIFY_AFTER, "the command needs time to take effect")?;
    Ok(Settings {
        document,
        version,
        parameters: parameters(keys)?,
        timeout_secs: keys.get::<i32>("timeout_secs", |secs| {
            if (30..=TIMEOUT_MAX).contains(secs) {
                Ok(())
            } else {
                Err(format!(
                    "is {secs}: write 30 to {TIMEOUT_MAX} seconds (SSM takes at least 30; the step's check \
                     follows a command for about ten minutes)"
                ))
            }
        })?,
        verify_after,
    })
}

/// The parameters with their patterns, every template checked.
fn parameters(keys: &Keys<'_>) -> Result<Vec<Parameter>, KeyError> {
    let written = keys
        .get::<std::collections::BTreeMap<String, OneOrMany>>("parameters", |_| Ok(()))?
        .unwrap_or_default();
    let patterns = keys
        .get::<std::collections::BTreeMap<String, String>>("parameter_patterns", |_| Ok(()))?
        .unwrap_or_default();
    let bad = |key: &str, problem: String| KeyError {
        key: format!("actions.{key}"),
        problem,
    };
    if let Some(name) = patterns.keys().find(|name| !written.contains_key(*name)) {
        return Err(bad(
            "parameter_patterns",
            format!("names {name:?}, which is not one of the entry's `parameters`"),
        ));
    }
    let mut parameters = Vec::with_capacity(written.len());
    for (name, values) in written {
        let pattern = match patterns.get(&name) {
            Some(pattern) => Some(template::anchored(pattern).map_err(|err| {
                bad(
                    "parameter_patterns",
                    format!("has a pattern for {name:?} that does not compile: {err}"),
                )
            })?),
            None => None,
        };
        let values = match values {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        };
        parameters.push(Parameter {
            name,
            values,
            pattern,
        });
    }
    template::check(&parameters).map_err(|err| bad("parameters", format!("is refused: {err}")))?;
    Ok(parameters)
}

/// A document version pinned to a number: `$LATEST` and `$DEFAULT` change under a running configuration.
fn pinned(version: &toml::Value) -> Result<String, String> {
    let text = match version {
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::String(text) => text.clone(),
        other => return Err(format!("is {other}; write the version number, e.g. \"1\"")),
    };
    if !text.is_empty()
        && text.len() <= 8
        && text.chars().all(|c| c.is_ascii_digit())
        && text != "0"
    {
        Ok(text)
    } else {
        Err(format!(
            "is {text:?}: pin a version number (e.g. \"1\"); $LATEST and $DEFAULT may change what runs \
             without a change to this configuration"
        ))
    }
}

fn non_empty(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err("is empty".to_owned())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keys: &str) -> Result<Arc<dyn Action>, String> {
        let own: toml::Table = keys.parse().unwrap();
        let defaults = toml::Table::new();
        SsmCommand::default()
            .with_entry(&Keys::of_entry(&own, &defaults))
            .map(|kind| kind.unwrap())
            .map_err(|err| err.to_string())
    }

    const GOOD: &str = "document = \"AWS-RunShellScript\"\ndocument_version = \"1\"\n";

    #[test]
    fn an_entry_is_read_with_its_document_pinned_and_its_checks_wait() {
        let kind = entry(&format!("{GOOD}verify_secs = 20\ntimeout_secs = 60\n")).unwrap();
        assert_eq!(kind.described(), "ssm-command AWS-RunShellScript version 1");
        assert_eq!(kind.effect().checked_after, Some(Duration::from_secs(20)));
        assert!(kind.effect().keeps_instance && !kind.effect().removes_capacity);
        let kind = entry("document = \"D\"\ndocument_version = 3\n").unwrap();
        assert_eq!(kind.described(), "ssm-command D version 3");
    }

    #[test]
    fn every_bad_key_is_refused_by_name_with_the_fix() {
        for (keys, says) in [
            (
                "document_version = \"1\"\n",
                "`actions.document` is required",
            ),
            (
                "document = \"D\"\n",
                "`actions.document_version` is required",
            ),
            (
                "document = \"D\"\ndocument_version = \"$LATEST\"\n",
                "pin a version number",
            ),
            (
                "document = \"\"\ndocument_version = \"1\"\n",
                "`actions.document` is empty",
            ),
            (&format!("{GOOD}timeout_secs = 5\n"), "30 to 600 seconds"),
            (&format!("{GOOD}timeout_secs = 3600\n"), "30 to 600 seconds"),
            (
                &format!("{GOOD}verify_secs = 0\n"),
                "`actions.verify_secs` is 0",
            ),
            (
                &format!(
                    "{GOOD}parameters = {{ commands = \"restart {{{{ instance.tags.Service }}}}\" }}\n"
                ),
                "reads the instance but has no pattern",
            ),
            (
                &format!("{GOOD}parameters = {{ commands = \"{{{{ alert.name }}}}\" }}\n"),
                "reads \"alert.name\"",
            ),
            (
                &format!(
                    "{GOOD}parameters = {{ commands = \"x\" }}\nparameter_patterns = {{ command = \"x\" }}\n"
                ),
                "names \"command\", which is not one",
            ),
            (
                &format!(
                    "{GOOD}parameters = {{ commands = \"x\" }}\nparameter_patterns = {{ commands = \"(\" }}\n"
                ),
                "does not compile",
            ),
        ] {
            let err = entry(keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }

    #[test]
    fn output_is_kept_to_its_first_lines() {
        let text = "one\n\ntwo\nthree\nfour\nfive\nsix\n";
        assert_eq!(excerpt(text), "one | two | three | four | five");
        assert_eq!(with_output("Success", ""), "Success");
        assert_eq!(excerpt(&"x".repeat(500)).len(), OUTPUT_LINE_CHARS);
        assert_eq!(comment("01J"), "reflex run 01J");
    }
}
