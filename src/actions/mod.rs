//! The action kinds reflex ships: each one file, registered by one line in `builtin`. A kind implements the
//! engine's `Action` port (its calls and its declared effect); every gate, the record, the check, the metrics
//! and the UI come from the engine. A kind may name SDK types, as `aws/` does: it reaches AWS through the
//! target's fleet, or through the SDK clients behind it (`crate::aws::clients_of`).

pub mod asg_set_capacity;
pub mod ecs_redeploy;
pub mod isolate;
pub mod rds_reboot;
pub mod reboot;
pub mod replace;
pub mod ssm_command;
mod template;
pub mod webhook;

use std::time::Duration;

use crate::aws::{AwsFleet, clients_of};
use crate::config::Config;
use crate::engine::AlertNames;
use crate::engine::action::{Act, Arguments, ArgumentsRefused, Kinds, On};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::kinds_check::KindsError;
use crate::engine::plan::SkipReason;
use crate::engine::port::{FailureKind, FleetError, current_run};

/// Every built-in action kind.
pub fn builtin() -> Kinds {
    Kinds::default()
        .with(replace::Replace::default())
        .with(reboot::Reboot::default())
        .with(isolate::Isolate)
        .with(ssm_command::SsmCommand::default())
        .with(asg_set_capacity::AsgSetCapacity::default())
        .with(webhook::Webhook::default())
        .with(ecs_redeploy::EcsRedeploy::default())
        .with(rds_reboot::RdsReboot::default())
}

/// The SDK clients behind the act's fleet, which a kind calls AWS through (`operation` names the call an
/// error is for): a fleet without them (a test's) cannot serve the kind `kind`.
fn aws_of<'a>(on: On<'a>, kind: &str, operation: &'static str) -> Result<&'a AwsFleet, FleetError> {
    clients_of(on.fleet).ok_or_else(|| {
        FleetError::new(
            FailureKind::Permanent,
            operation,
            None,
            format!("{kind} acts through AWS's own clients; this fleet has none"),
        )
    })
}

/// The run an act is made for: a kind whose write names its run (a command's comment, a tag a takeover reads)
/// makes it only inside a recorded run.
fn recorded_run(operation: &'static str) -> Result<String, FleetError> {
    current_run().ok_or_else(|| {
        FleetError::new(
            FailureKind::Permanent,
            operation,
            None,
            "this act is made only for a recorded run, which it names",
        )
    })
}

/// The kind's own refusal of an act before any write (`code`: `at-max`, `recent-change`, ...), which the
/// breaker does not count as an AWS error.
fn refused(operation: &'static str, code: &str, why: String) -> FleetError {
    FleetError::new(FailureKind::Refused, operation, Some(code.to_owned()), why)
}

/// A kind's `verify_secs` (how long after acting its check runs): `default` unless set, never 0 (`wait` says
/// what needs the time).
fn verify_secs(keys: &Keys<'_>, default: Duration, wait: &str) -> Result<Duration, KeyError> {
    Ok(keys
        .get::<u64>("verify_secs", |secs| {
            if *secs == 0 {
                Err(format!(
                    "is 0; {wait} (the default is {} seconds)",
                    default.as_secs()
                ))
            } else {
                Ok(())
            }
        })?
        .map_or(default, Duration::from_secs))
}

/// Checks a resource's name written in a kind's key (a group, a cluster, a service): 1 to 255 characters,
/// not blank.
fn resource_name(what: &'static str) -> impl Fn(&String) -> Result<(), String> {
    move |name| {
        if name.trim().is_empty() || name.len() > 255 {
            Err(format!("is not {what} name (1 to 255 characters)"))
        } else {
            Ok(())
        }
    }
}

/// The arguments of a whole-target act that names, as `argument`, the resource the run's alert names under
/// `key` (a dimension or label), checked by `valid`; refused (the act is skipped, saying why) when the alert
/// names none or one that fails the check: an alert's text is never sent to AWS unchecked.
fn named_argument(
    named: &AlertNames,
    key: &str,
    argument: &str,
    valid: impl Fn(&String) -> Result<(), String>,
) -> Result<Arguments, ArgumentsRefused> {
    let refused = |why: String| ArgumentsRefused {
        reason: SkipReason::BadParameter,
        why,
    };
    let value = named
        .get(key)
        .ok_or_else(|| refused(format!("the alert names no {key} (a dimension or label)")))?;
    valid(value).map_err(|problem| {
        refused(format!(
            "the alert's {key} {problem}: {:?}",
            crate::untrusted::bounded(value)
        ))
    })?;
    Ok(Arguments::from([(
        argument.to_owned(),
        vec![value.clone()],
    )]))
}

/// The resource an act names as `argument` (from the run's alert), if it does.
fn argument<'a>(act: &'a Act, argument: &str) -> Option<&'a str> {
    act.arguments.get(argument)?.first().map(String::as_str)
}

/// Whether a kind's tag value (`<run><separator>...`) names one of the dead attempts `resumes`, with what
/// follows the run.
fn tagged_by<'a>(value: &'a str, separator: char, resumes: &[String]) -> Option<&'a str> {
    let (run, rest) = value.split_once(separator).unwrap_or((value, ""));
    resumes.iter().any(|resumed| resumed == run).then_some(rest)
}

/// Checks `config` against the built-in kinds at start-up (`Kinds::check`).
pub fn check(config: &Config) -> Result<(), KindsError> {
    builtin().check(config).map(drop)
}

#[cfg(test)]
mod tests {
    use crate::engine::action::LadderError;

    fn ladder(steps: &[&str]) -> Result<Vec<String>, LadderError> {
        let steps: Vec<String> = steps.iter().map(|step| (*step).to_owned()).collect();
        let kinds = super::builtin().ladder(&steps, &crate::engine::keys::Keys::none())?;
        Ok(kinds.iter().map(|kind| kind.name().to_owned()).collect())
    }

    #[test]
    fn only_the_last_step_of_a_ladder_takes_the_instance_out_of_service() {
        for fine in [
            &["replace"][..],
            &["reboot"],
            &["isolate"],
            &["reboot", "replace"],
            &["reboot", "isolate"],
        ] {
            assert_eq!(ladder(fine).unwrap(), fine);
        }
        for (wrong, step) in [
            (&["replace", "reboot"][..], "replace"),
            (&["isolate", "reboot"], "isolate"),
            (&["isolate", "replace"], "isolate"),
        ] {
            let err = ladder(wrong).unwrap_err();
            assert!(
                matches!(&err, LadderError::RemovesBeforeLast { step: s, .. } if s == step),
                "{err}"
            );
        }
        let err = ladder(&["pray"]).unwrap_err().to_string();
        assert!(
            err.contains("\"pray\"")
                && err.contains(
                    "asg-set-capacity, ecs-redeploy, isolate, rds-reboot, reboot, replace, ssm-command, webhook"
                ),
            "{err}"
        );
    }

    fn checked(text: &str) -> Result<crate::config::Config, String> {
        let config = crate::config::parse(text, []).map_err(|err| err.to_string())?;
        super::check(&config).map_err(|err| err.to_string())?;
        Ok(config)
    }

    fn ladder_of(
        config: &crate::config::Config,
    ) -> Vec<std::sync::Arc<dyn crate::engine::action::Action>> {
        let target = &config.targets[0];
        super::builtin()
            .ladder(&config.ladder_of(target), &config.kind_keys_of(target))
            .unwrap()
    }

    const TARGET: &str =
        "[[targets]]\nload_balancer = \"web-elb\"\nladder = [\"reboot\", \"replace\"]\n";

    #[test]
    fn each_kind_reads_its_own_keys_a_target_s_over_the_default() {
        use std::time::Duration;
        let waits = |config| {
            ladder_of(&config)
                .iter()
                .map(|kind| kind.effect().checked_after)
                .collect::<Vec<_>>()
        };
        let groups = |config| ladder_of(&config)[1].needs_groups();
        let config = checked(TARGET).unwrap();
        assert_eq!(
            waits(config.clone()),
            [Some(Duration::from_secs(180)), None]
        );
        assert!(!groups(config));
        let defaults = "[remediation]\nreboot_verify_secs = 60\naction = \"auto\"\n";
        let config = checked(&format!("{defaults}{TARGET}")).unwrap();
        assert_eq!(waits(config.clone()), [Some(Duration::from_secs(60)), None]);
        assert!(groups(config));
        let config = checked(&format!(
            "{defaults}{TARGET}reboot_verify_secs = 30\naction = \"terminate\"\n"
        ))
        .unwrap();
        assert_eq!(waits(config.clone()), [Some(Duration::from_secs(30)), None]);
        assert!(!groups(config));
    }

    #[test]
    fn a_bad_kind_key_or_one_no_kind_reads_is_refused_by_name() {
        for (text, says) in [
            (
                format!("[remediation]\nreboot_verify_secs = 0\n{TARGET}"),
                "`remediation.reboot_verify_secs` is 0",
            ),
            (
                format!("{TARGET}reboot_verify_secs = 0\n"),
                "target \"web-elb\": `targets.reboot_verify_secs` is 0",
            ),
            (
                format!("{TARGET}action = \"nuke\"\n"),
                "`targets.action` is invalid",
            ),
            (
                format!("[remediation]\ndry_rnu = true\n{TARGET}"),
                "[remediation]: `remediation.dry_rnu` is neither",
            ),
            (
                format!("{TARGET}acton = \"auto\"\n"),
                "`targets.acton` is neither",
            ),
        ] {
            let err = checked(&text).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        let err = checked(&format!("{TARGET}action = \"nuke\"\n")).unwrap_err();
        assert!(err.contains("asg-unhealthy"), "{err}");
        let err = checked(&format!("{TARGET}acton = 1\n")).unwrap_err();
        assert!(err.contains("action, reboot_verify_secs"), "{err}");
    }

    #[test]
    fn every_kind_s_iam_actions_are_granted_by_both_templates() {
        let templates = [
            include_str!("../../deploy/cloudformation/reflex.yaml"),
            include_str!("../../deploy/cloudformation/member-role.yaml"),
        ];
        for kind in super::builtin().all() {
            for action in kind.iam_actions() {
                for template in templates {
                    assert!(
                        template.contains(&format!(" {action}\n")),
                        "{} needs {action}",
                        kind.name()
                    );
                }
            }
        }
    }
}
