//! An action kind's own config keys. A target's table (`[[targets]]`) and `[remediation]` hold, beside the
//! keys every target has, the keys of the action kinds (`action` for `replace`, `reboot_verify_secs` for
//! `reboot`): a kind reads its own, the target's value over `[remediation]`'s default, and says what is wrong
//! with a bad one; a key no registered kind reads is refused at start-up.

use serde::de::DeserializeOwned;

/// The keys one target's kinds read: its own table's, over `[remediation]`'s defaults.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    own: &'a toml::Table,
    defaults: &'a toml::Table,
    /// Where `own` was written: `targets`, or `actions` for an `[[actions]]` entry.
    section: &'static str,
}

/// Why a kind's key cannot be used: the key where it was written and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` {problem}")]
pub struct KeyError {
    /// The dotted key, e.g. `targets.reboot_verify_secs`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl<'a> Keys<'a> {
    /// A target's kind keys (`own`) over the defaults under `[remediation]`.
    pub fn new(own: &'a toml::Table, defaults: &'a toml::Table) -> Self {
        Self {
            own,
            defaults,
            section: "targets",
        }
    }

    /// An `[[actions]]` entry's keys (`own`) over the defaults under `[remediation]`.
    pub fn of_entry(own: &'a toml::Table, defaults: &'a toml::Table) -> Self {
        Self {
            own,
            defaults,
            section: "actions",
        }
    }

    /// No keys at all: every kind as registered.
    #[cfg(test)]
    pub fn none() -> Keys<'static> {
        static EMPTY: std::sync::LazyLock<toml::Table> = std::sync::LazyLock::new(toml::Table::new);
        Keys {
            own: &EMPTY,
            defaults: &EMPTY,
            section: "targets",
        }
    }

    /// The value of `key`, the target's own else `[remediation]`'s, when either is set; `check` says what is
    /// wrong with a value of the right type. An error names the key where the value was written.
    pub fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>, KeyError> {
        let (value, section) = match (self.own.get(key), self.defaults.get(key)) {
            (Some(value), _) => (value, self.section),
            (None, Some(value)) => (value, "remediation"),
            (None, None) => return Ok(None),
        };
        let error = |problem: String| KeyError {
            key: format!("{section}.{key}"),
            problem,
        };
        let value: T = value
            .clone()
            .try_into()
            .map_err(|err| error(format!("is invalid: {err}")))?;
        check(&value).map_err(error)?;
        Ok(Some(value))
    }
}

/// The first key of `table` (written under `section`) that is none of `known`, as an error that lists them.
pub fn unknown<'k>(
    table: &toml::Table,
    section: &str,
    known: impl Iterator<Item = &'k str> + Clone,
) -> Result<(), KeyError> {
    match table
        .keys()
        .find(|key| !known.clone().any(|name| name == key.as_str()))
    {
        None => Ok(()),
        Some(key) => {
            let mut names: Vec<&str> = known.collect();
            names.sort_unstable();
            names.dedup();
            Err(KeyError {
                key: format!("{section}.{key}"),
                problem: format!(
                    "is neither one of the section's own settings (docs/configuration.md) nor a key of an \
                     action kind ({}); check its spelling",
                    names.join(", ")
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn a_target_s_own_value_wins_over_the_default_and_an_error_names_where_it_was_written() {
        let own = table("wait = 5");
        let defaults = table("wait = 9\nhow = \"x\"");
        let keys = Keys::new(&own, &defaults);
        assert_eq!(keys.get::<u64>("wait", |_| Ok(())).unwrap(), Some(5));
        assert_eq!(keys.get::<u64>("other", |_| Ok(())).unwrap(), None);
        let err = keys.get::<u64>("how", |_| Ok(())).unwrap_err();
        assert_eq!(err.key, "remediation.how");
        let err = keys
            .get::<u64>("wait", |_| Err("is too short".to_owned()))
            .unwrap_err();
        assert_eq!(err.to_string(), "`targets.wait` is too short");
    }

    #[test]
    fn a_key_no_kind_reads_is_named_with_the_keys_kinds_read() {
        let written = table("wait = 5\nwiat = 6");
        unknown(&table("wait = 5"), "targets", ["wait"].into_iter()).unwrap();
        let err = unknown(&written, "targets", ["wait", "how"].into_iter()).unwrap_err();
        assert_eq!(err.key, "targets.wiat");
        assert!(err.problem.contains("how, wait"), "{err}");
    }
}
