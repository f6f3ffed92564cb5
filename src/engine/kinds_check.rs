//! A configuration checked against the registered action kinds, at start-up: every key beside reflex's own is
//! some kind's, every kind reads its `[remediation]` defaults and each target's keys (named in a ladder or not), and each target's ladder is
//! made of kinds with only its last step taking the instance out of service.

use super::action::{Kinds, LadderError};
use super::keys::Keys;
use crate::config::Config;

/// Why the registered kinds cannot serve a configuration: where (a target, or `[remediation]`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {source}")]
pub struct KindsError {
    /// `target "NAME"`, or `[remediation]`.
    pub place: String,
    /// What is wrong.
    pub source: LadderError,
}

impl Kinds {
    /// Checks `config` against these kinds with its `[[actions]]` entries (see the module's doc): the kinds
    /// that serve it.
    pub fn check(&self, config: &Config) -> Result<Kinds, KindsError> {
        let kinds = self.clone().with_entries(config)?;
        kinds.check_targets(config)?;
        kinds.check_rules(config)?;
        Ok(kinds)
    }

    /// Checks every rule's ladder: not empty, made of kinds, each keeping the instance.
    fn check_rules(&self, config: &Config) -> Result<(), KindsError> {
        for rule in &config.rules {
            let at = |source| KindsError {
                place: format!("rule {:?}", rule.name),
                source,
            };
            let no_instances = rule.instances == crate::config::NO_INSTANCES;
            for step in self.rule_ladder(config, &rule.ladder).map_err(at)? {
                if !step.effect().keeps_instance {
                    let step = step.name().to_owned();
                    return Err(at(LadderError::RuleRemoves { step }));
                }
                if no_instances && step.whole_target_call().is_none() {
                    let step = step.name().to_owned();
                    return Err(at(LadderError::RuleOnNoInstance { step }));
                }
            }
        }
        Ok(())
    }

    /// The kinds of a rule's `ladder`, read with `[remediation]`'s keys.
    pub fn rule_ladder(
        &self,
        config: &Config,
        ladder: &[String],
    ) -> Result<Vec<std::sync::Arc<dyn super::action::Action>>, LadderError> {
        if ladder.is_empty() {
            return Err(LadderError::RuleWithoutLadder);
        }
        let no_target = toml::Table::new();
        self.ladder(
            ladder,
            &Keys::new(&no_target, &config.remediation.kind_keys),
        )
    }

    /// Checks `[remediation]` and every target's keys and ladder against these kinds.
    fn check_targets(&self, config: &Config) -> Result<(), KindsError> {
        let at = |place: &str| {
            let place = place.to_owned();
            move |source: LadderError| KindsError { place, source }
        };
        let defaults = &config.remediation.kind_keys;
        let remediation = at("[remediation]");
        self.known_keys(defaults, "remediation")
            .map_err(|err| remediation(err.into()))?;
        // Every kind reads its defaults, whether or not a ladder names it yet.
        let no_target = toml::Table::new();
        for kind in self.all() {
            kind.with_keys(&Keys::new(&no_target, defaults))
                .map_err(|err| at("[remediation]")(err.into()))?;
        }
        for target in &config.targets {
            let place = format!("target {:?}", target.name());
            self.known_keys(&target.kind_keys, "targets")
                .map_err(|err| at(&place)(err.into()))?;
            // Every kind reads the target's keys, whether or not its ladder names it yet.
            let keys = config.kind_keys_of(target);
            for kind in self.all() {
                kind.with_keys(&keys)
                    .map_err(|err| at(&place)(err.into()))?;
            }
            let ladder = self
                .ladder(&config.ladder_of(target), &config.kind_keys_of(target))
                .map_err(at(&place))?;
            // A balancer's alert names nothing beside it: a step that needs a name from the alert never acts.
            for step in ladder {
                if let Err(refused) =
                    step.named_arguments(&super::trigger::AlertNames::new(), false)
                {
                    let step = step.name().to_owned();
                    let why = refused.why;
                    return Err(at(&place)(LadderError::NeedsAlertNames { step, why }));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::action::{Action, Effect, On, Started};
    use crate::engine::keys::KeyError;
    use crate::engine::plan::SkipReason;
    use crate::engine::port::{BoxFuture, FleetError, InstanceView};

    /// A kind with a key of its own, `drain_secs`, registered only here.
    #[derive(Debug)]
    struct Drain;

    impl Action for Drain {
        fn name(&self) -> &'static str {
            "drain"
        }
        fn verb(&self) -> &'static str {
            "drain"
        }
        fn effect(&self) -> Effect {
            crate::actions::isolate::Isolate.effect()
        }
        fn done(&self) -> &'static str {
            "drained"
        }
        fn iam_actions(&self) -> &'static [&'static str] {
            &[]
        }
        fn keys(&self) -> &'static [&'static str] {
            &["drain_secs"]
        }
        fn with_keys(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
            keys.get::<u64>("drain_secs", |_| Ok(()))?;
            Ok(None)
        }
        fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
            Ok("drain")
        }
        fn listed_as(&self, _: &str) -> &'static str {
            "drained-instance-ids"
        }
        fn lists(&self) -> &'static [&'static str] {
            &["drained-instance-ids"]
        }
        fn start<'a>(&'a self, _: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
            Box::pin(async { Ok(Started::Done("drained".to_owned())) })
        }
    }

    fn check(kinds: &Kinds, text: &str) -> Result<(), String> {
        let config = crate::config::parse(text, []).unwrap();
        kinds
            .check(&config)
            .map(drop)
            .map_err(|err| err.to_string())
    }

    const TARGET: &str = "[[targets]]\nload_balancer = \"web\"\n";

    #[test]
    fn a_key_is_accepted_only_when_a_registered_kind_reads_it() {
        let builtin = crate::actions::builtin();
        let with_drain = crate::actions::builtin().with(Drain);
        let text = format!("{TARGET}drain_secs = 5\n");
        let err = check(&builtin, &text).unwrap_err();
        assert!(err.contains("`targets.drain_secs` is neither"), "{err}");
        check(&with_drain, &text).unwrap();
        let err = check(&with_drain, &format!("{TARGET}drain_secs = \"soon\"\n")).unwrap_err();
        assert!(
            err.starts_with("target \"web\": `targets.drain_secs` is invalid"),
            "{err}"
        );
    }

    #[test]
    fn every_kind_reads_its_defaults_even_when_no_ladder_names_it() {
        let kinds = crate::actions::builtin();
        for (defaults, says) in [
            (
                "reboot_verify_secs = 0",
                "`remediation.reboot_verify_secs` is 0",
            ),
            ("action = \"nuke\"", "`remediation.action` is invalid"),
        ] {
            let err = check(&kinds, &format!("[remediation]\n{defaults}\n{TARGET}")).unwrap_err();
            assert!(
                err.starts_with("[remediation]: ") && err.contains(says),
                "{err}"
            );
        }
        check(
            &kinds,
            &format!("[remediation]\naction = \"auto\"\n{TARGET}"),
        )
        .unwrap();
    }
}
