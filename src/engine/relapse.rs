//! Relapse detection: what keeps breaking after being replaced is not an instance problem (a bad AMI, a bad
//! config, a dependency). The relapse memory (`audit::Replacement`: what joined a target after a run replaced
//! broken instances) is read once by a run about to replace; a replacement broken again within
//! `remediation.relapse_window_secs` of joining is a relapse, and `remediation.relapse_limit` of them in the
//! window refuse the run and open the breaker (`relapsing`): nothing more is replaced until a person resets it.

use serde::Serialize;
use time::OffsetDateTime;

use super::breaker::{Trip, Tripped};
use super::plan::{Act, Plan, Refusal};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{Replacement, RequestMeta, millis};

/// What the relapse memory said of a run's plan.
#[derive(Debug, Default)]
pub(super) struct Relapse {
    /// The replacements the plan acts on again, to be marked in the run's commit.
    pub relapsed: Vec<String>,
    /// The breaker this run opened (`relapsing`), if it did.
    pub tripped: Option<Tripped>,
}

/// The relapses a plan would make: replacements it acts on again, and those already broken again in the
/// window.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Replacements the plan acts on, not yet counted as relapsed.
    pub again: Vec<&'a Replacement>,
    /// Replacements a run found broken again within the window before.
    pub before: Vec<&'a Replacement>,
}

impl Verdict<'_> {
    /// Relapses in the window, this run's included.
    pub fn count(&self) -> usize {
        self.again.len() + self.before.len()
    }

    /// What the relapses were, in words: each instance, what it replaced, its image, and the runs.
    pub fn described(&self) -> String {
        self.before
            .iter()
            .chain(&self.again)
            .map(|r| {
                let joined = &r.joined;
                let mut made_of = Vec::new();
                made_of.extend(joined.image_id.as_deref().map(|id| format!("image {id}")));
                made_of.extend(
                    joined
                        .launch_template
                        .as_deref()
                        .map(|lt| format!("launch template {lt}")),
                );
                let made_of = if made_of.is_empty() {
                    String::new()
                } else {
                    format!(", {}", made_of.join(", "))
                };
                let found = r
                    .relapse_run
                    .as_deref()
                    .map(|run| format!(", broke again in run {run}"))
                    .unwrap_or_default();
                format!(
                    "{} (replaced {} in run {}{made_of}{found})",
                    joined.instance_id,
                    joined.replaced.join(", "),
                    joined.run_id
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The relapses `act_on` would make, from the target's replacements that joined since `since_ms`. Pure.
pub fn verdict<'a>(recent: &'a [Replacement], act_on: &[Act], since_ms: i64) -> Verdict<'a> {
    let acted_on = |r: &Replacement| {
        act_on
            .iter()
            .any(|a| a.instances().contains(&r.joined.instance_id.as_str()))
    };
    Verdict {
        again: recent
            .iter()
            .filter(|r| r.relapsed_ms.is_none() && acted_on(r))
            .collect(),
        before: recent
            .iter()
            .filter(|r| r.relapsed_ms.is_some_and(|at| at >= since_ms))
            .collect(),
    }
}

impl Engine {
    /// Counts the relapses `plan` would make on `target` at `now` (one store read, only when the plan
    /// replaces); at the limit, refuses the plan and (for a run that acts now) opens the breaker `relapsing`.
    pub(super) async fn relapses(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        plan: &mut Plan,
        acting: bool,
        now: OffsetDateTime,
    ) -> Result<Relapse, EngineError> {
        let window = self.config.remediation.relapse_window_secs;
        let since_ms = millis(now)
            .saturating_sub(i64::try_from(window.saturating_mul(1000)).unwrap_or(i64::MAX));
        let recent = self.audit.replacements_since(&target.id, since_ms).await?;
        let verdict = verdict(&recent, &plan.act_on, since_ms);
        if verdict.again.is_empty() {
            return Ok(Relapse::default());
        }
        let limit = self.config.remediation.relapse_limit;
        let relapses = verdict.count();
        meta.note(
            "relapse",
            serde_json::json!({"again": verdict.again, "before": verdict.before, "limit": limit}),
        );
        if acting {
            self.metrics.relapses.inc_by(verdict.again.len() as u64);
        }
        let relapsed = verdict
            .again
            .iter()
            .map(|r| r.joined.instance_id.clone())
            .collect();
        if relapses < usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(Relapse {
                relapsed,
                tripped: None,
            });
        }
        let refusal = Refusal::Relapsing {
            relapses,
            window_secs: window,
            instances: verdict.described(),
        };
        // The breaker's reason is the refusal's sentence: it names the instances, their images and the runs.
        let reason = refusal.sentence();
        plan.refuse(refusal);
        meta.note("plan", &*plan);
        if !acting {
            return Ok(Relapse::default());
        }
        let tripped = self.trip(meta, &target.id, Trip::Relapsing, reason).await?;
        Ok(Relapse { relapsed, tripped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Joined;

    fn replacement(id: &str, replaced: &str, run: &str, relapsed_ms: Option<i64>) -> Replacement {
        Replacement {
            joined: Joined {
                instance_id: id.into(),
                run_id: run.into(),
                replaced: vec![replaced.into()],
                image_id: Some("ami-1".into()),
                launch_template: Some("lt-1:3".into()),
            },
            joined_ms: 1_000,
            relapsed_ms,
            relapse_run: relapsed_ms.map(|_| "R2".to_owned()),
        }
    }

    fn act(id: &str) -> Act {
        Act::on_instance(id, "terminate", "replace", None)
    }

    #[test]
    fn a_replacement_broken_again_is_a_relapse_and_earlier_ones_in_the_window_count() {
        let recent = [
            replacement("i-b", "i-a", "R1", Some(5_000)),
            replacement("i-c", "i-b", "R2", None),
            replacement("i-old", "i-x", "R0", Some(10)),
        ];
        let plan = [act("i-c"), act("i-new")];
        let verdict = verdict(&recent, &plan, 1_000);
        assert_eq!(verdict.again, [&recent[1]]);
        assert_eq!(
            verdict.before,
            [&recent[0]],
            "i-old relapsed before the window"
        );
        assert_eq!(verdict.count(), 2);
        let described = verdict.described();
        assert!(
            described.starts_with("i-b (replaced i-a in run R1, image ami-1, launch template lt-1:3, broke again in run R2)"),
            "{described}"
        );
        assert!(
            described.contains("i-c (replaced i-b in run R2"),
            "{described}"
        );
    }

    #[test]
    fn an_instance_never_replaced_or_not_acted_on_is_no_relapse() {
        let recent = [replacement("i-b", "i-a", "R1", None)];
        assert_eq!(verdict(&recent, &[act("i-z")], 0).count(), 0);
        assert_eq!(verdict(&[], &[act("i-b")], 0).count(), 0);
    }
}
