//! Resolved alerts confirm a rule's step. An Alertmanager or Grafana alert that resolves, whose firing self a
//! rule verified by its alert runs, is recorded against that rule (`resolved_alerts`, by identity); the rule's
//! check reads those records to tell whether every alert that started its run resolved after the action.
//! Each look of such a check is one read of the audit trail, filtered on the rule and the time of the action.

use time::OffsetDateTime;

use super::check::Check;
use super::port::AlarmState;
use super::rule_check::{AlarmWatch, FIRING, RESOLVED};
use super::{Engine, EngineError};
use crate::audit::{Auth, Filter, Outcome, RequestMeta, Source};
use crate::contract::ANSWERED;
use crate::rules::AlertFacts;
use crate::target::{Place, TargetRef};

/// The note of a record that says which alerts of a rule resolved.
const NOTE: &str = "resolved_alerts";
/// The most records a look reads: the newest resolutions of the rule since its action.
const LOOK_BACK: u32 = 200;

impl Engine {
    /// The rule verified by its alert (`verify = "alarm-ok"`) that `alert`, resolved now, ran while it was
    /// firing: the first rule its firing self matches. `None` when no such rule is configured.
    pub fn confirms(&self, alert: &AlertFacts) -> Option<String> {
        let firing = AlertFacts {
            state: "firing".to_owned(),
            ..alert.clone()
        };
        let matched = self.route(&firing)?;
        self.config
            .rules
            .iter()
            .find(|rule| rule.name == matched.rule && rule.verify.is_some())
            .map(|rule| rule.name.clone())
    }

    /// Records that `source` (authenticated, from `caller`) said the alerts `identities` (`texts`) of the rule
    /// `rule` resolved: what its check reads.
    pub async fn record_resolved(
        &self,
        source: Source,
        caller: Option<String>,
        rule: &str,
        identities: &[String],
        texts: &[String],
    ) -> Result<(), EngineError> {
        let mut meta = RequestMeta::new(source, caller);
        meta.auth = Auth::Passed;
        // Recorded where the rule acts, as its runs and checks are.
        let target = self
            .targets
            .one(&TargetRef::Rule(rule.to_owned()), &Place::ANYWHERE)?;
        meta.concerns(&target.id);
        meta.note(NOTE, identities);
        meta.note("alerts", texts);
        let record = meta.into_record(Outcome::Ignored, ANSWERED, None, 0);
        self.audit.put(record).await?;
        Ok(())
    }

    /// Where the alerts `watch` waits for stand: `resolved` once each was recorded resolved since the action
    /// (as of the latest of those records), else `firing`.
    pub(super) async fn alerts_state(
        &self,
        check: &Check,
        watch: &AlarmWatch,
    ) -> Result<AlarmState, EngineError> {
        let filter = Filter {
            target: Some(check.target.clone()),
            account: Some(check.account.clone()),
            region: Some(check.region.clone()),
            outcome: Some(Outcome::Ignored.as_str().to_owned()),
            since: OffsetDateTime::from_unix_timestamp(watch.since).ok(),
            ..Filter::default()
        };
        let records = self.audit.search(&filter, LOOK_BACK).await?;
        let resolutions: Vec<(i64, Vec<String>)> = records
            .iter()
            .filter_map(|record| {
                let ids = serde_json::from_value(record.detail.get(NOTE)?.clone()).ok()?;
                Some((record.at.unix_timestamp(), ids))
            })
            .collect();
        Ok(state_of(&watch.alerts, &resolutions))
    }
}

/// The state of the alerts `watched`, given the resolutions recorded since the action (when, which alerts):
/// resolved as of the latest resolution each needed, firing while any has none.
fn state_of(watched: &[String], resolutions: &[(i64, Vec<String>)]) -> AlarmState {
    let mut latest = 0;
    for alert in watched {
        let first = resolutions
            .iter()
            .filter(|(_, ids)| ids.contains(alert))
            .map(|(at, _)| *at)
            .min();
        match first {
            Some(at) => latest = latest.max(at),
            None => {
                return AlarmState {
                    value: FIRING.to_owned(),
                    updated_at: 0,
                };
            }
        }
    }
    AlarmState {
        value: RESOLVED.to_owned(),
        updated_at: latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn the_alerts_are_resolved_once_each_is_as_of_the_last_one_needed() {
        let watched = ids(&["a", "b"]);
        let resolutions = vec![(10, ids(&["a"])), (12, ids(&["b", "c"])), (15, ids(&["a"]))];
        let state = state_of(&watched, &resolutions);
        assert_eq!((state.value.as_str(), state.updated_at), (RESOLVED, 12));
        let state = state_of(&watched, &resolutions[..1]);
        assert_eq!(state.value, FIRING);
        assert_eq!(state_of(&watched, &[]).value, FIRING);
    }
}
