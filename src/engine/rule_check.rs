//! What a rule's check sees: the instances its step acted on (running, and its act ended well) and, for a
//! rule verified by its alarm, the CloudWatch alarm that started the run OK again after the action, or the
//! Alertmanager or Grafana alerts that started it resolved since. An alarm not OK yet, with time left, is
//! looked at again; at the deadline the step did not recover.

use std::time::Duration;

use time::OffsetDateTime;

use serde::{Deserialize, Serialize};

use super::port::{AlarmState, FleetError, Health, HealthState, InstanceView, Resources, Snapshot};
use super::targets::Target;

/// The longest a check waits between two looks at its alarm.
const LOOK_AGAIN_WITHIN: Duration = Duration::from_secs(60);

/// The value of a watched alert's state once it resolved (`AlarmState::value`), as CloudWatch's `OK` is.
pub const RESOLVED: &str = "resolved";
/// The value of a watched alert's state until then.
pub const FIRING: &str = "firing";

/// What started a rule's run, for its check to wait on: a CloudWatch alarm, or webhook alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// The alarm's name, or the alerts' text.
    pub name: String,
    /// For alerts from Alertmanager or Grafana: their identities (fingerprints); empty for an alarm.
    pub alerts: Vec<String>,
}

/// What a rule's check waits for: the CloudWatch alarm OK with a state change after the action, or each
/// webhook alert that started the run resolved after it, in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AlarmWatch {
    /// The alarm's name, or the alerts' text.
    pub name: String,
    /// When the step acted (Unix seconds): an OK from before does not count.
    pub since: i64,
    /// Until when the check waits for it (Unix seconds); then the step did not recover.
    pub until: i64,
    /// For alerts from Alertmanager or Grafana: the identities of those that must resolve; empty for an
    /// alarm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

/// What a rule's step did, as its check judges it.
pub(super) struct Stepped<'a> {
    /// The instances it acted on.
    pub acted: &'a [String],
    /// Whether its acts ran on after the run (a command): then each must have ended well.
    pub ran_on: bool,
    /// The instances whose act AWS refused.
    pub failed: &'a [String],
    /// The instances whose act ended well.
    pub done: &'a [String],
    /// The alarm it waits for, if any.
    pub alarm: Option<&'a AlarmWatch>,
}

/// What a check's look found.
pub(super) enum Looked {
    /// What to judge, with the alarm's state when the check watched one (for its record).
    Seen(Snapshot, Option<serde_json::Value>),
    /// The alarm is not OK yet and the deadline is ahead: why, and when to look again.
    Wait(String, Duration),
}

/// A rule's check: each instance its step acted on is back (InService) when EC2 has it running, its act
/// (a command) ended well, and, for a rule verified by its alarm, the alarm is OK since the action (read
/// with DescribeAlarms), or its alerts resolved since (`resolved`, as the audit trail has them).
pub(super) async fn look(
    target: &Target,
    step: Stepped<'_>,
    resolved: Option<AlarmState>,
) -> Result<Looked, FleetError> {
    let (alarm_ok, seen) = match step.alarm {
        Some(watch) => {
            let state = match watch.alerts.is_empty() {
                true => target.fleet.alarm(&watch.name).await?,
                false => resolved,
            };
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let ok = state
                .as_ref()
                .is_some_and(|state| is_ok_since(state, watch));
            if !ok && now < watch.until {
                return Ok(Looked::Wait(
                    waiting(watch, state.as_ref()),
                    again(watch, now),
                ));
            }
            (
                ok,
                Some(serde_json::json!({"watch": watch, "state": state, "ok": ok})),
            )
        }
        None => (true, None),
    };
    // A rule on no instance acted on what its alert named: no instance to read, its act and alarm judge it.
    let mut facts = match target.on_alert {
        true => Default::default(),
        false => {
            let acted = Resources::Instances(step.acted.to_vec());
            target.fleet.instances(&acted).await?
        }
    };
    let instances = step
        .acted
        .iter()
        .map(|id| {
            let ec2 = facts.remove(id);
            let running =
                target.on_alert || ec2.as_ref().is_some_and(|facts| facts.state == "running");
            let ended_well = !step.failed.contains(id) && (!step.ran_on || step.done.contains(id));
            let (state, reported) = match (running, ended_well, alarm_ok) {
                (true, true, true) => (HealthState::InService, "recovered"),
                (false, _, _) => (HealthState::OutOfService, "not-running"),
                (true, false, _) => (HealthState::OutOfService, "act-failed"),
                (true, true, false) => (HealthState::OutOfService, "alarm-not-ok"),
            };
            InstanceView {
                instance_id: id.clone(),
                health: Health {
                    state,
                    reported: reported.to_owned(),
                    reason_code: None,
                    description: None,
                },
                ec2,
                auto_scaling_group: None,
            }
        })
        .collect();
    let snapshot = Snapshot {
        target: target.id.name.clone(),
        instances,
    };
    Ok(Looked::Seen(snapshot, seen))
}

/// Whether `state` is OK (an alert's: resolved) with a change no earlier than the action `watch` waits after.
fn is_ok_since(state: &AlarmState, watch: &AlarmWatch) -> bool {
    matches!(state.value.as_str(), "OK" | RESOLVED) && state.updated_at >= watch.since
}

/// Why the check waits, in words.
fn waiting(watch: &AlarmWatch, state: Option<&AlarmState>) -> String {
    let now = match state {
        Some(state) => format!("is {}", state.value),
        None => "is not found".to_owned(),
    };
    let (what, ok) = match watch.alerts.is_empty() {
        true => ("alarm", "OK"),
        false => ("alerts", RESOLVED),
    };
    format!(
        "{what} {:?} {now}: waiting for {ok} until {}",
        watch.name, watch.until
    )
}

/// When to look again: within `LOOK_AGAIN_WITHIN` from `now`, and not after the deadline.
fn again(watch: &AlarmWatch, now: i64) -> Duration {
    let left = u64::try_from(watch.until.saturating_sub(now)).unwrap_or(0);
    Duration::from_secs(left.clamp(1, LOOK_AGAIN_WITHIN.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> AlarmWatch {
        AlarmWatch {
            name: "disk".into(),
            since: 1_000,
            until: 1_600,
            alerts: Vec::new(),
        }
    }

    #[test]
    fn only_an_ok_from_after_the_action_counts() {
        let state = |value: &str, updated_at| AlarmState {
            value: value.into(),
            updated_at,
        };
        assert!(is_ok_since(&state("OK", 1_000), &watch()));
        assert!(!is_ok_since(&state("OK", 999), &watch()));
        assert!(!is_ok_since(&state("ALARM", 1_200), &watch()));
        assert!(!is_ok_since(&state("INSUFFICIENT_DATA", 1_200), &watch()));
        assert!(is_ok_since(&state(RESOLVED, 1_200), &watch()));
        assert!(!is_ok_since(&state(FIRING, 1_200), &watch()));
    }

    #[test]
    fn the_next_look_is_within_a_minute_and_never_after_the_deadline() {
        assert_eq!(again(&watch(), 1_000), LOOK_AGAIN_WITHIN);
        assert_eq!(again(&watch(), 1_590), Duration::from_secs(10));
        assert_eq!(again(&watch(), 1_600), Duration::from_secs(1));
    }
}
