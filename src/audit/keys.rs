//! How the tables key a target: its account, region and name (the `TargetId` without its kind, which the
//! name already settles within an account and region; an instance's name has its prefix), and the rows that
//! stand for no single target.

use crate::target::{TargetId, TargetKind};

/// A target as a table's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub account: String,
    pub region: String,
    pub target: String,
}

/// The name of the rows that stand for every target (the pause of everything, the budget lease); no load
/// balancer or target group can be called this.
const EVERY_TARGET: &str = "*";

impl Key {
    /// The row that stands for every target.
    pub fn every_target() -> Self {
        Self {
            account: String::new(),
            region: String::new(),
            target: EVERY_TARGET.to_owned(),
        }
    }

    /// Whether this is the row of every target.
    pub fn is_every_target(&self) -> bool {
        self.target == EVERY_TARGET
    }

    /// The row's target, account and region, as pauses and silences show them: all `None` for the row of
    /// every target.
    pub fn into_shown(self) -> (Option<String>, Option<String>, Option<String>) {
        if self.is_every_target() {
            (None, None, None)
        } else {
            (Some(self.target), Some(self.account), Some(self.region))
        }
    }
}

/// How the rows of an instance's pause or silence begin: no balancer, target group or rule is called this
/// (a rule's name may not start with it), so that a run finds every instance held back in its place with
/// one prefix.
pub const INSTANCE_PREFIX: &str = "instance/";

impl From<&TargetId> for Key {
    fn from(id: &TargetId) -> Self {
        let target = match id.kind {
            TargetKind::Instance => format!("{INSTANCE_PREFIX}{}", id.name),
            _ => id.name.clone(),
        };
        Self {
            account: id.account.clone(),
            region: id.region.clone(),
            target,
        }
    }
}

/// The SQL condition "the row is `$first`, `$first+1`, `$first+2`'s" (account, region, target) on `table`.
pub(super) fn matches(table: &str, first: usize) -> String {
    format!(
        "{table}.account = ${first} AND {table}.region = ${} AND {table}.target = ${}",
        first + 1,
        first + 2
    )
}
