//! `[[actions]]` entries as the engine serves them: a kind under the entry's name, as the entry's keys set it.
//! A ladder names the entry as it names a kind; every call goes to the kind, so an entry adds no behaviour of
//! its own, only its name and settings.

use std::sync::Arc;

use super::action::{
    Action, Arguments, ArgumentsRefused, Effect, Kinds, LadderError, On, Polled, Started,
};
use super::keys::{KeyError, Keys};
use super::kinds_check::KindsError;
use super::port::{BoxFuture, Fleet, FleetError, InstanceView};
use super::refusal::SkipReason;
use crate::config::{ActionConfig, ActionLimits, Config};

/// An `[[actions]]` entry: `kind` as the entry's keys set it, under the entry's name.
#[derive(Debug)]
pub struct Named {
    name: String,
    kind: Arc<dyn Action>,
    limits: ActionLimits,
}

impl Kinds {
    /// These kinds with every `[[actions]]` entry of `config` registered under its name, each read by its
    /// kind (its keys over `[remediation]`'s); an entry of no registered kind, named as a kind is, with a key
    /// its kind does not read or a value it refuses, is refused by name.
    pub fn with_entries(self, config: &Config) -> Result<Self, KindsError> {
        let mut kinds = self.clone();
        for entry in &config.actions {
            let named = self
                .entry(entry, &config.remediation.kind_keys)
                .map_err(|source| KindsError {
                    place: format!("action {:?}", entry.name),
                    source,
                })?;
            kinds = kinds.with_arc(Arc::new(named));
        }
        Ok(kinds)
    }

    /// One entry, read by its kind.
    fn entry(&self, entry: &ActionConfig, defaults: &toml::Table) -> Result<Named, LadderError> {
        if self.get(&entry.name).is_some() {
            return Err(KeyError {
                key: "actions.name".to_owned(),
                problem: format!(
                    "is {:?}, the name of an action kind: give the entry a name of its own (e.g. \"{}-app\")",
                    entry.name, entry.name
                ),
            }
            .into());
        }
        let kind = self.get(&entry.kind).ok_or_else(|| KeyError {
            key: "actions.kind".to_owned(),
            problem: format!(
                "is {:?}, which is no action kind; the kinds are {}",
                entry.kind,
                self.known()
            ),
        })?;
        if let Some(key) = entry
            .keys
            .keys()
            .find(|key| !kind.entry_keys().contains(&key.as_str()))
        {
            let keys = match kind.entry_keys() {
                [] => "none".to_owned(),
                keys => keys.join(", "),
            };
            return Err(KeyError {
                key: format!("actions.{key}"),
                problem: format!(
                    "is not a key of kind {:?} (its keys: {keys}); check its spelling",
                    entry.kind
                ),
            }
            .into());
        }
        let keys = Keys::of_entry(&entry.keys, defaults);
        let kind = kind.with_entry(&keys)?.unwrap_or_else(|| Arc::clone(kind));
        Ok(Named {
            name: entry.name.clone(),
            kind,
            limits: entry.limits,
        })
    }
}

impl Action for Named {
    fn name(&self) -> &str {
        &self.name
    }

    fn verb(&self) -> &'static str {
        self.kind.verb()
    }

    fn effect(&self) -> Effect {
        self.kind.effect()
    }

    fn done(&self) -> &'static str {
        self.kind.done()
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        self.kind.iam_actions()
    }

    fn described(&self) -> String {
        format!("{} ({})", self.name, self.kind.described())
    }

    fn needs_groups(&self) -> bool {
        self.kind.needs_groups()
    }

    fn limits(&self) -> ActionLimits {
        self.limits
    }

    fn arguments(&self, instance: &InstanceView) -> Result<Arguments, ArgumentsRefused> {
        self.kind.arguments(instance)
    }

    fn named_arguments(
        &self,
        named: &super::trigger::AlertNames,
        alone: bool,
    ) -> Result<Arguments, ArgumentsRefused> {
        self.kind.named_arguments(named, alone)
    }

    fn whole_target_call(&self) -> Option<&'static str> {
        self.kind.whole_target_call()
    }

    fn probe<'a>(&'a self, fleet: &'a dyn Fleet) -> BoxFuture<'a, Result<(), FleetError>> {
        self.kind.probe(fleet)
    }

    fn choose(&self, instance: &InstanceView) -> Result<&'static str, SkipReason> {
        self.kind.choose(instance)
    }

    fn listed_as(&self, call: &str) -> &'static str {
        self.kind.listed_as(call)
    }

    fn lists(&self) -> &'static [&'static str] {
        self.kind.lists()
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        self.kind.start(on)
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        self.kind.poll(on, handle)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    fn checked(text: &str) -> Result<crate::engine::action::Kinds, String> {
        let config = crate::config::parse(text, []).map_err(|err| err.to_string())?;
        crate::actions::builtin()
            .check(&config)
            .map_err(|err| err.to_string())
    }

    const SSM: &str = "[[actions]]\nname = \"restart-app\"\nkind = \"ssm-command\"\n\
                       document = \"AWS-RunShellScript\"\ndocument_version = \"1\"\n";

    #[test]
    fn an_entry_is_its_kind_under_its_own_name_with_its_own_keys() {
        let kinds = checked(&format!(
            "[[targets]]\nload_balancer = \"web\"\nladder = [\"restart-app\", \"slow-reboot\", \"replace\"]\n\
             {SSM}[[actions]]\nname = \"slow-reboot\"\nkind = \"reboot\"\nreboot_verify_secs = 600\n"
        ))
        .unwrap();
        let restart = kinds.get("restart-app").unwrap();
        assert_eq!(restart.name(), "restart-app");
        assert_eq!(
            restart.described(),
            "restart-app (ssm-command AWS-RunShellScript version 1)"
        );
        assert_eq!(restart.verb(), "run the command on");
        let reboot = kinds.get("slow-reboot").unwrap();
        assert_eq!(
            reboot.effect().checked_after,
            Some(Duration::from_secs(600))
        );
        // The kind itself keeps its default.
        assert_eq!(
            kinds.get("reboot").unwrap().effect().checked_after,
            Some(Duration::from_secs(180))
        );
    }

    #[test]
    fn a_bad_entry_or_a_ladder_naming_a_kind_that_needs_one_is_refused_by_name() {
        let target = "[[targets]]\nload_balancer = \"web\"\n";
        for (text, says) in [
            (
                format!("{target}ladder = [\"ssm-command\"]\n"),
                "add an [[actions]] entry with `kind = \"ssm-command\"`",
            ),
            (
                format!("{target}[[actions]]\nname = \"reboot\"\nkind = \"reboot\"\n"),
                "action \"reboot\": `actions.name` is \"reboot\", the name of an action kind",
            ),
            (
                format!("{target}[[actions]]\nname = \"x\"\nkind = \"nuke\"\n"),
                "`actions.kind` is \"nuke\", which is no action kind; the kinds are asg-set-capacity, ecs-redeploy, isolate, rds-reboot, reboot",
            ),
            (
                format!("{target}{SSM}documnet = \"D\"\n"),
                "action \"restart-app\": `actions.documnet` is not a key of kind \"ssm-command\" (its keys: document,",
            ),
            (
                format!("{target}[[actions]]\nname = \"x\"\nkind = \"ssm-command\"\n"),
                "`actions.document` is required",
            ),
            (
                format!(
                    "{target}[[actions]]\nname = \"x\"\nkind = \"reboot\"\nreboot_verify_secs = 0\n"
                ),
                "`actions.reboot_verify_secs` is 0",
            ),
            (
                format!("{target}ladder = [\"restart-ap\"]\n{SSM}"),
                "\"restart-ap\", which is no action kind",
            ),
        ] {
            let err = checked(&text).unwrap_err();
            assert!(err.contains(says), "{text}\n{err}");
        }
    }
}
