//! An `[[actions]]` entry's own limits on a step: at most `max_per_run` instances a run, at most
//! `max_per_hour` and `max_per_day` of its acts on one instance, and none within `cooldown_secs` of its last
//! act there. The instances the entry may not act on now are held back before the plan is capped, so that
//! they never take the place of one it may act on. Earlier acts are counted from the decisions of the
//! target's (or rule's) acting runs: one indexed read of its decisions in the longest window, made only for a
//! step whose entry sets a limit that counts them.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use super::action::Action as ActionKind;
use super::decision::Decision;
use super::plan::{Plan, SkipReason};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{RequestMeta, millis};
use crate::config::ActionLimits;

/// An hour and a day, in milliseconds.
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What a step's entry holds back now.
#[derive(Debug, Default)]
pub(super) struct HeldBack {
    /// The entry's name.
    action: String,
    /// Its limits.
    limits: ActionLimits,
    /// The instances it may not act on now, and why (its cooldown, its hourly or daily count).
    pub instances: BTreeMap<String, SkipReason>,
}

impl HeldBack {
    /// The per-run cap `cap` under the entry's own `max_per_run`.
    pub fn cap(&self, cap: usize) -> usize {
        self.limits
            .max_per_run
            .map_or(cap, |max| cap.min(max as usize))
    }

    /// When the entry's hourly or daily count left `plan` nothing to act on: why, in words (the run opens the
    /// breaker, as when a budget is spent: the remedy cannot be applied, and a person is needed).
    pub fn spent(&self, plan: &Plan) -> Option<String> {
        let spent: Vec<&str> = plan
            .skipped
            .iter()
            .filter(|skip| self.instances.get(&skip.instance_id) == Some(&SkipReason::Budget))
            .map(|skip| skip.instance_id.as_str())
            .collect();
        (plan.act_on.is_empty() && !spent.is_empty()).then(|| {
            format!(
                "action {:?} has acted on {} as often as its max_per_hour or max_per_day allow",
                self.action,
                spent.join(", ")
            )
        })
    }
}

impl Engine {
    /// What the entry `step` holds back of `target` at `now` (the database's clock), counting the acts of
    /// every earlier run but those in `except` (the dead attempt a takeover finishes); noted when it holds any.
    pub(super) async fn held_back(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        step: &dyn ActionKind,
        except: &[&str],
        now: OffsetDateTime,
    ) -> Result<HeldBack, EngineError> {
        let mut held = HeldBack {
            action: step.name().to_owned(),
            limits: step.limits(),
            instances: BTreeMap::new(),
        };
        let Some(secs) = held.limits.look_back_secs() else {
            return Ok(held);
        };
        let now_ms = millis(now);
        let since = now_ms.saturating_sub(window_ms(secs));
        let rows = self.audit.decisions_since(&target.id, since).await?;
        if rows.len() >= crate::audit::DECISIONS_READ_MAX {
            tracing::warn!(target = %target.id, "more decisions in the window than one read returns: the oldest are not counted");
        }
        let decided = rows
            .into_iter()
            .filter(|(run, ..)| !except.contains(&run.as_str()))
            .filter_map(|(run, at, body)| match serde_json::from_str(&body) {
                Ok(decision) => Some((at, decision)),
                Err(err) => {
                    tracing::warn!(run, error = %err, "a stored decision cannot be read: not counted");
                    None
                }
            });
        held.instances = held_instances(&held.limits, &acts_of(decided, step.name()), now_ms);
        if !held.instances.is_empty() {
            meta.note(
                "action_limits",
                serde_json::json!({"action": held.action, "limits": held.limits, "held_back": held.instances}),
            );
        }
        Ok(held)
    }
}

/// When each instance was acted on by the action `name`, from the decisions `decided` (when, what).
fn acts_of(
    decided: impl Iterator<Item = (i64, Decision)>,
    name: &str,
) -> HashMap<String, Vec<i64>> {
    let mut acts: HashMap<String, Vec<i64>> = HashMap::new();
    for (at, decision) in decided {
        for act in decision.steps.iter().filter(|act| act.kind == name) {
            for id in act.instances() {
                acts.entry(id.to_owned()).or_default().push(at);
            }
        }
    }
    acts
}

/// The instances `limits` hold back at `now_ms`, given the `earlier` acts on each: within the cooldown
/// (`action-cooldown`), or acted on as often as an hour or a day allows (`budget`).
fn held_instances(
    limits: &ActionLimits,
    earlier: &HashMap<String, Vec<i64>>,
    now_ms: i64,
) -> BTreeMap<String, SkipReason> {
    let within =
        |times: &[i64], window: i64| times.iter().filter(|at| now_ms - **at < window).count();
    let over = |limit: Option<u32>, times: &[i64], window: i64| {
        limit.is_some_and(|limit| within(times, window) >= limit as usize)
    };
    earlier
        .iter()
        .filter_map(|(id, times)| {
            let cooling = limits
                .cooldown_secs
                .is_some_and(|secs| within(times, window_ms(secs)) > 0);
            let reason = if cooling {
                SkipReason::ActionCooldown
            } else if over(limits.max_per_hour, times, HOUR_MS)
                || over(limits.max_per_day, times, DAY_MS)
            {
                SkipReason::Budget
            } else {
                return None;
            };
            Some((id.clone(), reason))
        })
        .collect()
}

/// `secs` in milliseconds.
fn window_ms(secs: u64) -> i64 {
    i64::try_from(secs).map_or(i64::MAX, |secs| secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::action::Act;

    fn limits(text: &str) -> ActionLimits {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_instance_acted_on_within_the_cooldown_or_too_often_is_held_back() {
        let now = 10 * DAY_MS;
        let earlier = HashMap::from([
            ("i-cool".to_owned(), vec![now - 60_000]),
            ("i-hour".to_owned(), vec![now - 2_000_000, now - 3_000_000]),
            (
                "i-day".to_owned(),
                vec![now - 5 * HOUR_MS, now - 6 * HOUR_MS, now - 7 * HOUR_MS],
            ),
            ("i-old".to_owned(), vec![now - 2 * DAY_MS]),
        ]);
        let limits = limits("cooldown_secs = 300\nmax_per_hour = 2\nmax_per_day = 3");
        let held = held_instances(&limits, &earlier, now);
        let held: Vec<(&str, &str)> = held
            .iter()
            .map(|(id, why)| (id.as_str(), why.as_str()))
            .collect();
        assert_eq!(
            held,
            [
                ("i-cool", "action-cooldown"),
                ("i-day", "budget"),
                ("i-hour", "budget")
            ]
        );
    }

    #[test]
    fn the_cap_is_the_tighter_and_only_a_spent_count_leaving_nothing_is_spent() {
        let mut held = HeldBack {
            action: "restart-app".into(),
            limits: limits("max_per_run = 1\nmax_per_day = 1"),
            instances: BTreeMap::from([("i-1".to_owned(), SkipReason::Budget)]),
        };
        assert_eq!((held.cap(2), held.cap(0)), (1, 0));
        let mut plan = Plan::default();
        plan.skipped.push(crate::contract::Skip {
            instance_id: "i-1".into(),
            reason: SkipReason::Budget,
        });
        assert!(
            held.spent(&plan)
                .unwrap()
                .contains("\"restart-app\" has acted on i-1")
        );
        plan.act_on
            .push(Act::on_instance("i-2", "send-command", "restart-app", None));
        assert_eq!(held.spent(&plan), None, "it acts on another");
        held.instances
            .insert("i-1".into(), SkipReason::ActionCooldown);
        plan.act_on.clear();
        assert_eq!(held.spent(&plan), None, "a cooldown passes");
    }

    #[test]
    fn only_the_steps_own_acts_count() {
        let decision = |kind: &str| Decision {
            run_id: "R".into(),
            target: "t".into(),
            steps: vec![Act::on_instance("i-1", "reboot", kind, None)],
            in_service: 0,
            takeover_of: None,
            attempts: Vec::new(),
            rule_fingerprint: None,
        };
        let acts = acts_of(
            [(5, decision("restart-app")), (6, decision("reboot"))].into_iter(),
            "restart-app",
        );
        assert_eq!(acts, HashMap::from([("i-1".to_owned(), vec![5])]));
    }
}
