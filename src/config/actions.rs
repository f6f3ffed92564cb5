//! `[[actions]]`: named remedies. An entry gives an action kind a name of its own and the kind's settings
//! (`kind = "ssm-command"` with its document and parameters, `kind = "reboot"` with its own wait); a ladder
//! names the entry as it names a kind. Which kinds exist, and what each key means, is the kinds' own check at
//! start-up (`engine::action::Kinds::with_entries`); this module reads the table and checks its names.

use serde::Deserialize;

/// The longest name an entry may have.
const NAME_MAX: usize = 64;

/// The words an episode's story uses for its own steps, which no entry may be named.
const RESERVED: [&str; 5] = ["check", "escalated", "resolved", "relapsing", "none"];

/// How often an `[[actions]]` entry may act, on any kind: per run, and per instance in time. Unset: no limit
/// beyond the target's (or rule's) own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ActionLimits {
    /// At most this many instances one run acts on with the entry; the rest are skipped `cap-reached`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_run: Option<u32>,
    /// At most this many of its acts on one instance in any hour; more are skipped `budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
    /// At most this many of its acts on one instance in any day; more are skipped `budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
    /// An instance it acted on less than this long ago is skipped `action-cooldown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_secs: Option<u64>,
}

/// The longest `cooldown_secs` an entry may have: a week.
const COOLDOWN_MAX_SECS: u64 = 7 * 24 * 3600;

impl ActionLimits {
    /// How far back a run looks for the entry's earlier acts: the longest window a limit counts in; `None`
    /// when no limit counts earlier acts.
    pub fn look_back_secs(&self) -> Option<u64> {
        let day = self.max_per_day.map(|_| 86_400);
        let hour = self.max_per_hour.map(|_| 3_600);
        [day, hour, self.cooldown_secs].into_iter().flatten().max()
    }

    /// The first key that is out of range, with the fix.
    fn problem(&self) -> Option<(&'static str, String)> {
        let counts = [
            ("max_per_run", self.max_per_run),
            ("max_per_hour", self.max_per_hour),
            ("max_per_day", self.max_per_day),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, value)| *value == Some(0)) {
            return Some((
                key,
                "is 0, which never acts: give at least 1, or leave the key out".into(),
            ));
        }
        match self.cooldown_secs {
            Some(secs) if secs == 0 || secs > COOLDOWN_MAX_SECS => Some((
                "cooldown_secs",
                format!("is {secs}: give 1 to {COOLDOWN_MAX_SECS} (a week), or leave the key out"),
            )),
            _ => None,
        }
    }
}

/// One `[[actions]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionConfig {
    /// The entry's name, unique, as ladders name it and records show it.
    pub name: String,
    /// The action kind it is an entry of (`ssm-command`, `reboot`, ...).
    pub kind: String,
    /// How often it may act, whatever its kind.
    #[serde(flatten)]
    pub limits: ActionLimits,
    /// Every other key of the entry: the kind's settings, which the kind reads and checks at start-up.
    #[serde(flatten)]
    pub keys: toml::Table,
}

/// Why the `[[actions]]` entries cannot be used as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionsError {
    /// A name that is empty, too long or has other characters than lower-case letters, digits and `-`.
    #[error(
        "{0:?} is not a name: use 1 to {NAME_MAX} lower-case letters, digits and '-', \
         starting with a letter (e.g. \"restart-app\")"
    )]
    BadName(String),
    /// A name an episode's story uses for its own steps.
    #[error(
        "{0:?} is a word reflex's records use for their own steps ({reserved}): choose another name",
        reserved = RESERVED.join(", ")
    )]
    Reserved(String),
    /// Two entries of one name.
    #[error("{0:?} is given to two [[actions]] entries: each needs its own name")]
    Duplicate(String),
    /// A limit out of range.
    #[error("action {name:?}: {key} {problem}")]
    Limit {
        /// The entry.
        name: String,
        /// The key.
        key: &'static str,
        /// What is wrong, and the fix.
        problem: String,
    },
}

/// Checks that every entry has a good name, no two the same, and limits in range.
pub fn check_names(actions: &[ActionConfig]) -> Result<(), ActionsError> {
    let mut seen = std::collections::BTreeSet::new();
    for action in actions {
        if !is_name(&action.name) {
            return Err(ActionsError::BadName(action.name.clone()));
        }
        if RESERVED.contains(&action.name.as_str()) {
            return Err(ActionsError::Reserved(action.name.clone()));
        }
        if !seen.insert(action.name.as_str()) {
            return Err(ActionsError::Duplicate(action.name.clone()));
        }
        if let Some((key, problem)) = action.limits.problem() {
            return Err(ActionsError::Limit {
                name: action.name.clone(),
                key,
                problem,
            });
        }
    }
    Ok(())
}

/// Whether `name` is 1 to `NAME_MAX` lower-case letters, digits and `-`, starting with a letter.
fn is_name(name: &str) -> bool {
    name.len() <= NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<ActionConfig> {
        #[derive(Deserialize)]
        struct File {
            actions: Vec<ActionConfig>,
        }
        toml::from_str::<File>(text).unwrap().actions
    }

    #[test]
    fn an_entry_keeps_every_key_beside_its_name_and_kind_for_the_kind() {
        let read = entries(
            "[[actions]]\nname = \"restart-app\"\nkind = \"ssm-command\"\ndocument = \"D\"\n\
             parameters = { commands = [\"x\"] }\nmax_per_day = 3\ncooldown_secs = 600\n",
        );
        assert_eq!(read[0].limits.max_per_day, Some(3));
        assert_eq!(read[0].limits.look_back_secs(), Some(86_400));
        assert_eq!(
            (read[0].name.as_str(), read[0].kind.as_str()),
            ("restart-app", "ssm-command")
        );
        let keys: Vec<&String> = read[0].keys.keys().collect();
        assert_eq!(keys, ["document", "parameters"]);
        check_names(&read).unwrap();
    }

    #[test]
    fn bad_and_repeated_names_are_refused_by_name() {
        for bad in ["", "Restart", "1st", "a b", "a_b", &"a".repeat(65)] {
            let text = format!("[[actions]]\nname = {bad:?}\nkind = \"reboot\"\n");
            let err = check_names(&entries(&text)).unwrap_err();
            assert_eq!(err, ActionsError::BadName(bad.to_owned()));
        }
        let text = "[[actions]]\nname = \"a\"\nkind = \"reboot\"\n[[actions]]\nname = \"a\"\nkind = \"replace\"\n";
        let err = check_names(&entries(text)).unwrap_err().to_string();
        assert!(err.contains("two [[actions]]"), "{err}");
        let text = "[[actions]]\nname = \"escalated\"\nkind = \"reboot\"\n";
        let err = check_names(&entries(text)).unwrap_err().to_string();
        assert!(err.contains("choose another name"), "{err}");
    }

    #[test]
    fn limits_out_of_range_are_refused_naming_the_key() {
        for (limit, key) in [
            ("max_per_run = 0", "max_per_run"),
            ("max_per_day = 0", "max_per_day"),
            ("cooldown_secs = 0", "cooldown_secs"),
            ("cooldown_secs = 700000", "cooldown_secs"),
        ] {
            let text = format!("[[actions]]\nname = \"a\"\nkind = \"reboot\"\n{limit}\n");
            let err = check_names(&entries(&text)).unwrap_err().to_string();
            assert!(err.contains(&format!("action \"a\": {key} ")), "{err}");
        }
        let text =
            "[[actions]]\nname = \"a\"\nkind = \"reboot\"\nmax_per_hour = 2\ncooldown_secs = 60\n";
        let read = entries(text);
        check_names(&read).unwrap();
        assert_eq!(read[0].limits.look_back_secs(), Some(3_600));
        assert!(read[0].keys.is_empty(), "the limits are no kind's keys");
    }
}
