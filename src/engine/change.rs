//! Refusing while a change is under way: a deploy, an instance refresh, a scaling event or a person holding the
//! group's replacements back makes instances look broken, and replacing them then fights the change. The
//! candidates' Auto Scaling groups are read only when a run has something to act on; when they cannot be read,
//! the run refuses (`change-unknown`) rather than guess.

use super::port::{FleetError, GroupChange};
use super::refusal::Refusal;

/// What the candidates' Auto Scaling groups showed.
#[derive(Debug, Clone, Default)]
pub enum Changes {
    /// Not read: nothing to act on, or no candidate is in a group.
    #[default]
    NotRead,
    /// Read: each group's change (empty ones: no change).
    Read(Vec<GroupChange>),
    /// Reading them failed.
    Unknown {
        /// The groups asked about.
        groups: Vec<String>,
        /// Why.
        error: FleetError,
    },
}

impl Changes {
    /// What is recorded of it (`seen_changes` in the audit trail).
    pub fn noted(&self) -> Option<serde_json::Value> {
        match self {
            Self::NotRead => None,
            Self::Read(changes) => serde_json::to_value(changes).ok(),
            Self::Unknown { groups, error } => Some(serde_json::json!({
                "groups": groups,
                "error": error.to_string(),
            })),
        }
    }
}

/// The refusal of a change under way (the first group changing), or of not knowing. Pure.
pub fn change_refusal(changes: &Changes) -> Option<Refusal> {
    match changes {
        Changes::NotRead => None,
        Changes::Read(changes) => {
            let changing = changes.iter().find(|change| change.is_changing())?;
            Some(Refusal::ChangeInProgress {
                group: changing.group.clone(),
                seen: changing.seen(),
            })
        }
        Changes::Unknown { groups, error } => Some(Refusal::ChangeUnknown {
            group: groups.join(", "),
            error: format!(
                "{} {}",
                error.operation,
                error.code.as_deref().unwrap_or(error.kind.as_str())
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::port::{FailureKind, is_changing_state};

    fn quiet(group: &str) -> GroupChange {
        GroupChange {
            group: group.into(),
            ..GroupChange::default()
        }
    }

    #[test]
    fn a_group_with_instances_in_standby_suspended_processes_or_an_activity_refuses() {
        assert_eq!(change_refusal(&Changes::NotRead), None);
        assert_eq!(change_refusal(&Changes::Read(vec![quiet("web-asg")])), None);
        let standby = GroupChange {
            instances: vec![("i-1".into(), "Standby".into())],
            ..quiet("web-asg")
        };
        assert_eq!(
            change_refusal(&Changes::Read(vec![quiet("other"), standby])),
            Some(Refusal::ChangeInProgress {
                group: "web-asg".into(),
                seen: "instances i-1 Standby".into()
            })
        );
        let held = GroupChange {
            suspended: vec!["ReplaceUnhealthy".into()],
            activities: vec!["Launching a new EC2 instance".into()],
            ..quiet("web-asg")
        };
        assert_eq!(
            change_refusal(&Changes::Read(vec![held])).map(|r| r.sentence()),
            Some(
                "change-in-progress: Auto Scaling group web-asg is changing (suspended ReplaceUnhealthy; 1 \
                 scaling activity in progress); what looks broken may be the change: nothing was replaced"
                    .into()
            )
        );
    }

    #[test]
    fn a_failed_read_refuses_change_unknown() {
        let denied = Changes::Unknown {
            groups: vec!["web-asg".into()],
            error: FleetError::new(
                FailureKind::Permanent,
                "DescribeScalingActivities",
                Some("AccessDenied".into()),
                "not allowed",
            ),
        };
        assert_eq!(
            change_refusal(&denied),
            Some(Refusal::ChangeUnknown {
                group: "web-asg".into(),
                error: "DescribeScalingActivities AccessDenied".into()
            })
        );
    }

    #[test]
    fn the_lifecycle_states_of_a_change_are_told_from_steady_ones() {
        for changing in [
            "Pending",
            "Pending:Wait",
            "Terminating:Proceed",
            "Standby",
            "EnteringStandby",
            "Detaching",
            "Warmed:Pending:Wait",
        ] {
            assert!(is_changing_state(changing), "{changing}");
        }
        for steady in ["InService", "Quarantined", "Warmed:Running", ""] {
            assert!(!is_changing_state(steady), "{steady}");
        }
    }
}
