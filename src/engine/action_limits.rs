//! An `[[actions]]` entry's own limits on a step's plan: at most `max_per_run` instances a run, at most
//! `max_per_hour` and `max_per_day` of its acts on one instance, and none within `cooldown_secs` of its last
//! act there. Earlier acts are counted from the target's decisions (what its acting runs decided to do):
//! one indexed read of the target's decisions in the longest window, made only for a step whose entry sets
//! a limit that counts them.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::action::{Act, Action as ActionKind};
use super::decision::Decision;
use super::plan::{self, Plan, SkipReason};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::RequestMeta;
use crate::config::ActionLimits;

/// An hour and a day, in milliseconds.
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

impl Engine {
    /// Cuts `plan`, a step of `target` by `step`, to what the step's entry allows at `now` (the database's
    /// clock), counting the acts of every earlier run but those in `except` (the dead attempt a takeover
    /// finishes); what it cut is noted.
    pub(super) async fn within_action_limits(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        plan: &mut Plan,
        step: &dyn ActionKind,
        except: &[&str],
        now: OffsetDateTime,
    ) -> Result<(), EngineError> {
        let limits = step.limits();
        if limits == ActionLimits::default() || plan.act_on.is_empty() {
            return Ok(());
        }
        let now_ms = millis(now);
        let mut earlier = HashMap::new();
        if let Some(secs) = limits.look_back_secs() {
            let since =
                now_ms.saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000);
            let rows = self.audit.decisions_since(&target.id, since).await?;
            let decided = rows
                .into_iter()
                .filter(|(run, ..)| !except.contains(&run.as_str()))
                .filter_map(|(_, at, body)| Some((at, serde_json::from_str(&body).ok()?)));
            earlier = acts_of(decided, step.name());
        }
        let cut = cut(plan, &limits, &earlier, now_ms);
        if cut > 0 {
            meta.note(
                "action_limits",
                serde_json::json!({"action": step.name(), "limits": limits, "skipped": cut}),
            );
            meta.note("plan", &*plan);
        }
        Ok(())
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

/// Skips the acts of `plan` that `limits` forbid at `now_ms`, given the `earlier` acts on each instance, then
/// keeps at most `max_per_run`; how many were skipped.
fn cut(
    plan: &mut Plan,
    limits: &ActionLimits,
    earlier: &HashMap<String, Vec<i64>>,
    now_ms: i64,
) -> usize {
    let within = |id: &str, window_ms: i64| {
        earlier.get(id).map_or(0, |times| {
            times.iter().filter(|at| now_ms - **at < window_ms).count()
        })
    };
    let over = |limit: Option<u32>, id: &str, window_ms: i64| {
        limit.is_some_and(|limit| within(id, window_ms) >= limit as usize)
    };
    let reason_of = |act: &Act| {
        act.instances().into_iter().find_map(|id| {
            let cooling = limits.cooldown_secs.is_some_and(|secs| {
                within(id, i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000) > 0
            });
            if cooling {
                Some(SkipReason::ActionCooldown)
            } else if over(limits.max_per_hour, id, HOUR_MS) || over(limits.max_per_day, id, DAY_MS)
            {
                Some(SkipReason::Budget)
            } else {
                None
            }
        })
    };
    let skipped = plan::skip_where(plan, reason_of);
    let capped = limits.max_per_run.map_or(0, |max| {
        plan::trim_to(plan, u64::from(max), SkipReason::CapReached)
    });
    skipped + capped
}

/// Milliseconds since the epoch.
fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(ids: &[&str]) -> Plan {
        Plan {
            act_on: ids
                .iter()
                .map(|id| Act::on_instance(id, "send-command", "restart-app", None))
                .collect(),
            ..Plan::default()
        }
    }

    fn limits(text: &str) -> ActionLimits {
        toml::from_str(text).unwrap()
    }

    fn reasons(plan: &Plan) -> Vec<(&str, &str)> {
        plan.skipped
            .iter()
            .map(|skip| (skip.instance_id.as_str(), skip.reason.as_str()))
            .collect()
    }

    #[test]
    fn an_instance_acted_on_within_the_cooldown_or_too_often_is_skipped() {
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
        let mut plan = plan_of(&["i-cool", "i-hour", "i-day", "i-old", "i-new"]);
        let limits =
            limits("cooldown_secs = 300\nmax_per_hour = 2\nmax_per_day = 3\nmax_per_run = 1");
        assert_eq!(cut(&mut plan, &limits, &earlier, now), 4);
        let kept: Vec<Vec<&str>> = plan.act_on.iter().map(Act::instances).collect();
        assert_eq!(kept, [["i-old"]]);
        assert_eq!(
            reasons(&plan),
            [
                ("i-cool", "action-cooldown"),
                ("i-hour", "budget"),
                ("i-day", "budget"),
                ("i-new", "cap-reached"),
            ]
        );
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
