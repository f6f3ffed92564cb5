//! Budgets: how many instances may still be acted on, per target and over all targets, in the last hour and
//! the last 24 hours. What was used is counted from the audit store, so budgets hold across restarts, the CLI
//! and replicas; what is left is plain arithmetic.

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{AuditError, AuditStore};
use crate::config::RemediationConfig;
use crate::target::TargetId;

/// The configured budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Per target, per hour.
    pub per_hour: u64,
    /// Per target, per 24 hours.
    pub per_day: u64,
    /// Over all targets, per hour.
    pub all_per_hour: u64,
    /// Over all targets, per 24 hours.
    pub all_per_day: u64,
}

impl From<&RemediationConfig> for Budgets {
    fn from(config: &RemediationConfig) -> Self {
        Self {
            per_hour: u64::from(config.max_acted_per_hour),
            per_day: u64::from(config.max_acted_per_day),
            all_per_hour: u64::from(config.max_acted_per_hour_all),
            all_per_day: u64::from(config.max_acted_per_day_all),
        }
    }
}

/// Instances acted on in each budget's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    /// On the target, in the last hour.
    pub target_hour: u64,
    /// On the target, in the last 24 hours.
    pub target_day: u64,
    /// On every target, in the last hour.
    pub all_hour: u64,
    /// On every target, in the last 24 hours.
    pub all_day: u64,
}

/// What each budget still allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Left {
    /// This target, this hour.
    pub target_hour: u64,
    /// This target, these 24 hours.
    pub target_day: u64,
    /// All targets, this hour.
    pub all_hour: u64,
    /// All targets, these 24 hours.
    pub all_day: u64,
}

impl Left {
    /// What is left of each budget once `used` is counted against `budgets`.
    pub fn of(budgets: Budgets, used: Used) -> Self {
        Self {
            target_hour: budgets.per_hour.saturating_sub(used.target_hour),
            target_day: budgets.per_day.saturating_sub(used.target_day),
            all_hour: budgets.all_per_hour.saturating_sub(used.all_hour),
            all_day: budgets.all_per_day.saturating_sub(used.all_day),
        }
    }

    /// How many instances a run may act on now: the tightest budget.
    pub fn allowed(&self) -> u64 {
        self.tightest().1
    }

    /// The tightest budget's config key and what it allows.
    pub fn tightest(&self) -> (&'static str, u64) {
        [
            ("max_acted_per_hour", self.target_hour),
            ("max_acted_per_day", self.target_day),
            ("max_acted_per_hour_all", self.all_hour),
            ("max_acted_per_day_all", self.all_day),
        ]
        .into_iter()
        .min_by_key(|(_, left)| *left)
        .unwrap_or(("max_acted_per_hour", 0))
    }
}

/// What the budgets' windows hold at `now` for `target`, read from the store (`now` is a parameter so that
/// tests can place it).
pub async fn usage(
    audit: &AuditStore,
    target: &TargetId,
    now: OffsetDateTime,
) -> Result<Used, AuditError> {
    let hour = now - time::Duration::HOUR;
    let day = now - time::Duration::DAY;
    Ok(Used {
        target_hour: audit.acted_between(Some(target), hour, now).await?,
        target_day: audit.acted_between(Some(target), day, now).await?,
        all_hour: audit.acted_between(None, hour, now).await?,
        all_day: audit.acted_between(None, day, now).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGETS: Budgets = Budgets {
        per_hour: 3,
        per_day: 7,
        all_per_hour: 10,
        all_per_day: 20,
    };

    #[test]
    fn the_tightest_budget_decides_and_nothing_goes_below_zero() {
        let left = Left::of(
            BUDGETS,
            Used {
                target_hour: 1,
                target_day: 6,
                all_hour: 4,
                all_day: 9,
            },
        );
        assert_eq!(left.tightest(), ("max_acted_per_day", 1));
        let spent = Left::of(
            BUDGETS,
            Used {
                target_hour: 5,
                target_day: 5,
                all_hour: 5,
                all_day: 5,
            },
        );
        assert_eq!(spent.target_hour, 0);
        assert_eq!(spent.allowed(), 0);
        assert_eq!(Left::of(BUDGETS, Used::default()).allowed(), 3);
    }

    #[test]
    fn the_budgets_come_from_the_remediation_section() {
        let budgets = Budgets::from(&RemediationConfig::default());
        assert_eq!((budgets.per_hour, budgets.per_day), (5, 20));
        assert_eq!((budgets.all_per_hour, budgets.all_per_day), (20, 50));
    }
}
