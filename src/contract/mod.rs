//! The external contract: the answers reflex gives (the summary with the original tool's keys, the reply
//! bodies), how a failure is answered (the HTTP status each class of failure gets, answered by the receivers
//! and recorded in the run's audit record), and where a held decision waits. A leaf that imports nothing of
//! reflex, so that the engine, the notifiers and the HTTP layer can all depend on it without circles: the
//! engine says which class its failures are, not how HTTP says it.

mod reply;
mod skip;
mod summary;

use serde::Serialize;

pub use reply::{Reply, SubscriptionReply};
pub use skip::{Skip, SkipReason};
pub use summary::{ActEntry, ActionError, Names, PLANNED, STANDING_LISTS, Subject, Summary};

/// The status of a run that was answered (it acted, was refused by a rule or found nothing to do), and of the
/// records of work no request waits for (recovery checks).
pub const ANSWERED: u16 = 200;

/// What a failed run means for whoever sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The target is not configured, is ambiguous, or AWS does not know it: fix the request or the config.
    UnknownTarget,
    /// AWS refused (permissions, validation): retrying will not help until an operator changes something.
    Refused,
    /// A fault worth a retry (AWS unreachable or throttling, the store, too many runs at once).
    Transient,
}

/// The status of a failure: 422 for a target that does not exist, 502 for AWS refusing, 503 for transient
/// faults worth a retry.
pub fn status_of(failure: Failure) -> u16 {
    match failure {
        Failure::UnknownTarget => 422,
        Failure::Refused => 502,
        Failure::Transient => 503,
    }
}

/// Where a held decision waits: its id, when it expires, where to approve it and what it would replace.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ApprovalRef {
    /// The approval's id (the id of the run that held it).
    pub id: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The audit page that shows its evidence, with the buttons.
    pub url: String,
    /// The instances the decision would act on once approved (the summary's own lists stay empty: nothing
    /// was done).
    pub would_replace: Vec<String>,
    /// What it would do to them: `replace`, `reboot` (a ladder's first step) or `act on`.
    #[serde(
        default = "ApprovalRef::replace",
        skip_serializing_if = "ApprovalRef::is_replace"
    )]
    pub verb: String,
}

impl ApprovalRef {
    fn replace() -> String {
        "replace".to_owned()
    }

    fn is_replace(verb: &str) -> bool {
        verb == "replace"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_asked_for_exactly_when_one_may_help() {
        assert_eq!(status_of(Failure::UnknownTarget), 422);
        assert_eq!(status_of(Failure::Refused), 502);
        assert_eq!(status_of(Failure::Transient), 503);
    }
}
