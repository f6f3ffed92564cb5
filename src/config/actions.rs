//! `[[actions]]`: named remedies. An entry gives an action kind a name of its own and the kind's settings
//! (`kind = "ssm-command"` with its document and parameters, `kind = "reboot"` with its own wait); a ladder
//! names the entry as it names a kind. Which kinds exist, and what each key means, is the kinds' own check at
//! start-up (`engine::action::Kinds::with_entries`); this module reads the table and checks its names.

use serde::Deserialize;

/// The longest name an entry may have.
const NAME_MAX: usize = 64;

/// The words an episode's story uses for its own steps, which no entry may be named.
const RESERVED: [&str; 5] = ["check", "escalated", "resolved", "relapsing", "none"];

/// One `[[actions]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionConfig {
    /// The entry's name, unique, as ladders name it and records show it.
    pub name: String,
    /// The action kind it is an entry of (`ssm-command`, `reboot`, ...).
    pub kind: String,
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
}

/// Checks that every entry has a good name, and no two the same.
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
             parameters = { commands = [\"x\"] }\n",
        );
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
}
