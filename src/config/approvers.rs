//! `[[approvals.approvers]]` checked at start-up: each person has a name of their own and a Slack id that
//! names nobody else (their token digests are checked with every other digest, `super::digest`), and a
//! decision that needs two or more approvers is counted in people.

use std::collections::{HashMap, HashSet};

use super::validate::{invalid, is_slack_user};
use super::{Config, ConfigError, Mode};

/// The longest approver name, in characters.
const MAX_NAME_CHARS: usize = 64;

impl Config {
    /// Every named approver is one person: a name and a Slack id each belong to one of them; with two or
    /// more approvers required, only named people may vote.
    pub(super) fn validate_named_approvers(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        let mut slack_ids: HashMap<&str, &str> = HashMap::new();
        for (index, person) in self.approvals.approvers.iter().enumerate() {
            let key = |field: &str| format!("approvals.approvers[{index}].{field}");
            let name = person.name.as_str();
            if name.trim().is_empty()
                || name.trim() != name
                || name.chars().count() > MAX_NAME_CHARS
                || name.chars().any(char::is_control)
            {
                return invalid(
                    key("name"),
                    format!(
                        "is {name:?}: an approver's name is 1 to {MAX_NAME_CHARS} printable characters, \
                         without spaces around it, as the people who read the trail know them"
                    ),
                );
            }
            if !names.insert(name.to_lowercase()) {
                return invalid(
                    key("name"),
                    format!(
                        "{name:?} names two approvers: list each person once, with their token and Slack id"
                    ),
                );
            }
            if person.token_sha256.is_none() && person.slack_user.is_none() {
                return invalid(
                    key("token_sha256"),
                    format!("is missing, and so is slack_user: nothing could vote as {name:?}"),
                );
            }
            if let Some(user) = &person.slack_user {
                self.check_slack_user(&key("slack_user"), user)?;
                if let Some(other) = slack_ids.insert(user, name) {
                    return invalid(
                        key("slack_user"),
                        format!("{user} is also {other:?}'s: a Slack id is one person's"),
                    );
                }
            }
        }
        self.check_two_person_rule_counts_people()
    }

    /// A named approver's Slack id is a Slack user id, Slack's buttons are trusted (its signing secret), and
    /// it is not also an unnamed `[slack] approvers` id.
    fn check_slack_user(&self, key: &str, user: &str) -> Result<(), ConfigError> {
        if !is_slack_user(user) {
            return invalid(
                key,
                format!("holds {user:?}, which is not a Slack user id (like \"U0123ABCD\")"),
            );
        }
        if !self.slack.enabled() {
            return invalid(
                key,
                "is set without slack.signing_secret_file: Slack's buttons cannot be trusted without the \
                 app's signing secret",
            );
        }
        if self.slack.approvers.iter().any(|listed| listed == user) {
            return invalid(
                key,
                format!(
                    "{user} is also listed in [slack] approvers: list it once, under its person"
                ),
            );
        }
        Ok(())
    }

    /// A target in approve mode that needs two or more approvers counts people: unnamed credentials
    /// (`[approvals] tokens`, `[slack] approvers`) cannot show that two votes are two people.
    fn check_two_person_rule_counts_people(&self) -> Result<(), ConfigError> {
        let unnamed = !self.approvals.tokens.is_empty() || !self.slack.approvers.is_empty();
        let needs_people = self.targets.iter().find_map(|target| {
            let required = self.approvals_required_of(target);
            (self.mode_of(target) == Mode::Approve && required >= 2).then_some((target, required))
        });
        if let (true, Some((target, required))) = (unnamed, needs_people) {
            let key = if self.approvals.tokens.is_empty() {
                "slack.approvers"
            } else {
                "approvals.tokens"
            };
            return invalid(
                key,
                format!(
                    "([approvals] tokens and [slack] approvers) name no person, but target {:?} needs {required} distinct approvers: one \
                     person with a token and a Slack id would count twice. List each person under \
                     [[approvals.approvers]] (name, token_sha256, slack_user) instead",
                    target.name()
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::digest::test_support::{refused_key, sha};
    use crate::config::parse;

    const TARGET: &str =
        "[[targets]]\nload_balancer = \"web-elb\"\n[remediation]\nmode = \"approve\"\n";
    const SLACK: &str = "[slack]\nsigning_secret = \"slack-signing-secret-0123\"\n";

    fn person(name: &str, token: Option<&str>, slack: Option<&str>) -> String {
        let mut text = format!("[[approvals.approvers]]\nname = \"{name}\"\n");
        if let Some(token) = token {
            text += &format!("token_sha256 = \"{}\"\n", sha(token));
        }
        if let Some(user) = slack {
            text += &format!("slack_user = \"{user}\"\n");
        }
        text
    }

    #[test]
    fn one_person_with_a_token_and_a_slack_id_cannot_meet_the_two_person_rule() {
        let text = format!(
            "{TARGET}{SLACK}approvers = [\"U0ALICE\"]\n[approvals]\nrequired = 2\n\
             tokens = [\"alice-approver-token-0123456789\"]\n"
        );
        assert_eq!(refused_key(&text), "approvals.tokens");
        let err = parse(&text, []).unwrap_err().to_string();
        assert!(err.contains("[[approvals.approvers]]"), "{err}");
    }

    #[test]
    fn two_named_people_meet_the_two_person_rule() {
        let text = format!(
            "{TARGET}{SLACK}[approvals]\nrequired = 2\n{}{}",
            person(
                "alice",
                Some("alice-token-0123456789abcdef"),
                Some("U0ALICE")
            ),
            person("bob", None, Some("U0BOB")),
        );
        let config = parse(&text, []).unwrap();
        assert_eq!(config.approvals.approvers.len(), 2);
        // One named person alone cannot.
        let text = format!(
            "{TARGET}{SLACK}[approvals]\nrequired = 2\n{}",
            person(
                "alice",
                Some("alice-token-0123456789abcdef"),
                Some("U0ALICE")
            ),
        );
        assert_eq!(refused_key(&text), "targets.mode");
    }

    #[test]
    fn a_token_or_slack_id_mapped_to_two_names_is_refused() {
        let token = Some("shared-token-0123456789abcdef");
        let text = format!(
            "{TARGET}{SLACK}{}{}",
            person("alice", token, None),
            person("bob", token, None)
        );
        assert_eq!(refused_key(&text), "approvals.approvers[1].token_sha256");
        let text = format!(
            "{TARGET}{SLACK}{}{}",
            person("alice", None, Some("U0SAME")),
            person("bob", None, Some("U0SAME"))
        );
        assert_eq!(refused_key(&text), "approvals.approvers[1].slack_user");
        let text = format!(
            "{TARGET}{SLACK}approvers = [\"U0SAME\"]\n{}",
            person("alice", None, Some("U0SAME"))
        );
        assert_eq!(refused_key(&text), "approvals.approvers[0].slack_user");
        let text = format!(
            "{TARGET}{}{}",
            person("alice", Some("a-token-0123456789abcdef"), None),
            person("Alice", Some("b-token-0123456789abcdef"), None)
        );
        assert_eq!(refused_key(&text), "approvals.approvers[1].name");
    }

    #[test]
    fn a_digest_of_another_doors_token_a_bad_digest_and_an_empty_person_are_refused() {
        let manual = "manual-token-0123456789abcdef";
        let text = format!(
            "{TARGET}[manual]\ntokens = [\"{manual}\"]\n{}",
            person("alice", Some(manual), None)
        );
        assert_eq!(refused_key(&text), "approvals.approvers[0].token_sha256");
        let text =
            format!("{TARGET}[[approvals.approvers]]\nname = \"alice\"\ntoken_sha256 = \"abc\"\n");
        assert_eq!(refused_key(&text), "approvals.approvers[0].token_sha256");
        let text = format!("{TARGET}[[approvals.approvers]]\nname = \"alice\"\n");
        assert_eq!(refused_key(&text), "approvals.approvers[0].token_sha256");
        let text = format!("{TARGET}{}", person("bob", None, Some("U0BOB")));
        assert_eq!(refused_key(&text), "approvals.approvers[0].slack_user");
    }
}
