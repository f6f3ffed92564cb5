//! The escalation ladder: a target tries its remedies in order (`[[targets]] ladder`, e.g. reboot, then
//! replace). A run that rebooted instances is checked `reboot_verify_secs` later by a durable job (any process
//! sharing the store runs it once): each rebooted instance back InService recovered; those still down go to
//! the next step as a new recorded run of the same episode, through every rule as it stands then, and acted
//! on once (its delivery key); with no step after, the target escalates to a person.

use std::sync::Arc;

use super::action::Action as ActionKind;
use super::check::{Check, RECHECK_AFTER};
use super::targets::Target;
use super::{Authenticated, Engine, EngineError, NextStep, Run, Trigger};
use crate::audit::{ClaimedJob, Delivery, EpisodeWrite, Outcome, RequestMeta, Source};
use crate::contract::ANSWERED;
use crate::metrics::Metrics;
use crate::target::Place;

/// A next step that keeps failing is given up on (and the target escalated) after this many attempts of its
/// check, a minute apart.
const NEXT_STEP_ATTEMPTS: u32 = 10;

/// The step a run takes, and where it stands in its episode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    /// Its action kind.
    pub kind: &'a Arc<dyn ActionKind>,
    /// Its place in the target's ladder.
    pub index: usize,
    /// The episode, when the run is a later step of one (the first step's run starts its own).
    pub episode: Option<&'a str>,
    /// The run of the earlier step, whose action is no cooldown for this one.
    pub after: Option<&'a str>,
}

impl<'a> Step<'a> {
    /// The step `trigger` asks of `target`: a ladder's next step, else the first.
    /// (A ladder shortened since the earlier step takes its last step.)
    pub fn of(trigger: &'a Trigger, target: &'a Target) -> Self {
        let next = trigger.resume.step.as_ref();
        let index = next.map_or(0, |next| next.index);
        let last = target.ladder.len().saturating_sub(1);
        Self {
            kind: &target.ladder[index.min(last)],
            index,
            episode: next.map(|next| next.episode.as_str()),
            after: next.map(|next| next.after.as_str()),
        }
    }

    /// `run`, which acted on nothing, as a step of its episode when it is one: a later step that did not act
    /// (refused, held for approvers, nothing left to do), or a refusal for relapsing, which starts and ends its
    /// own and marks the `relapsed` replacements it found (a reset breaker then lets them be replaced).
    pub fn recorded(
        self,
        mut run: Run,
        meta: &mut RequestMeta,
        target: &Target,
        relapsed: Vec<String>,
    ) -> Run {
        let relapsing = run
            .tripped
            .as_ref()
            .is_some_and(|t| t.trip == super::Trip::Relapsing);
        let (episode, step) = match (self.episode, relapsing) {
            (_, true) => (meta.id.clone(), "relapsing"),
            (Some(episode), false) => (episode.to_owned(), self.kind.name()),
            (None, false) => return run,
        };
        meta.note("episode", serde_json::json!({"id": episode, "step": step}));
        let mut write = EpisodeWrite::step(&episode, &target.id, step);
        if relapsing {
            write.relapsed = relapsed;
        }
        run.episode = Some(write);
        run
    }
}

impl Engine {
    /// Runs the check `check` of a step judged by its instances (claimed as `job`): reads the target; each
    /// instance the step acted on back InService recovered; those still down go to the next step (a run of
    /// the same episode, acted on once whoever runs it), or, with none after (or a next step refused, or given
    /// up on), escalate. The check's record and the job's removal are one commit, written after the next
    /// step's run, so that a crash between them runs the check again and finds that run done.
    pub(super) async fn check_instances(
        &self,
        job: &ClaimedJob,
        mut meta: RequestMeta,
        check: Check,
        done: &[String],
    ) -> Result<(), EngineError> {
        meta.note("episode", serde_json::json!({"id": check.episode}));
        let Some((target, snapshot)) = self.look(job, &mut meta, &check, done).await? else {
            return Ok(());
        };
        let (back, down): (Vec<String>, Vec<String>) =
            check.acted.iter().cloned().partition(|id| {
                snapshot.instances.iter().any(|i| {
                    &i.instance_id == id && i.health.state == super::port::HealthState::InService
                })
            });
        meta.note("seen", &snapshot);
        let step = target.ladder.get(check.index).map(|kind| kind.name());
        meta.note(
            "ladder",
            serde_json::json!({"run": check.run_id, "episode": check.episode, "step": step,
                               "recovered": back, "still_down": down}),
        );
        if down.is_empty() {
            Metrics::count(&self.metrics.recovery_checks, "recovered");
            return self
                .checked(job, meta, target, &check, Outcome::Recovered)
                .await;
        }
        Metrics::count(&self.metrics.recovery_checks, "not-recovered");
        let Some(why) = self
            .next_or_why(job, &mut meta, target, &check, &down)
            .await?
        else {
            return Ok(());
        };
        let step = target
            .ladder
            .get(check.index)
            .map_or("step", |kind| kind.name());
        let reason = format!(
            "not recovered after the {step} in run {}: {} still not InService, {why}",
            check.run_id,
            down.join(", ")
        );
        let events = self
            .escalate(&mut meta, &target.id, &check.episode, reason)
            .await?;
        let mut jobs = self.jobs_of(&events);
        // A balancer is watched for its capacity coming back; a rule's instances have none to watch.
        if !target.is_rule() {
            jobs.push(self.watch(&check));
        }
        let record = meta.into_record(Outcome::NotRecovered, ANSWERED, None, 0);
        let episode = EpisodeWrite::step(&check.episode, &target.id, "escalated");
        let dropped = self
            .audit
            .finish_step(record, &job.id, jobs, Some(episode))
            .await?;
        self.notifier.count_dropped(dropped);
        Ok(())
    }

    /// Takes the next step of `check`'s episode on `down`, the instances still down, and finishes the check
    /// when it ran (`None`); or says why a person is needed instead: the ladder has no step after, the next
    /// step was refused, or it could not run for `NEXT_STEP_ATTEMPTS` attempts. A next step that cannot run
    /// yet puts the check back (`None`).
    async fn next_or_why(
        &self,
        job: &ClaimedJob,
        meta: &mut RequestMeta,
        target: &Target,
        check: &Check,
        down: &[String],
    ) -> Result<Option<String>, EngineError> {
        if check.index + 1 >= target.ladder.len() {
            return Ok(Some("and the ladder has no step after".to_owned()));
        }
        let why = match self.next_step(target, check, down, &meta.id).await {
            Ok(Next::Ran(next)) => {
                meta.note("next", next);
                let done = std::mem::replace(meta, RequestMeta::new(Source::RecoveryCheck, None));
                self.checked(job, done, target, check, Outcome::NotRecovered)
                    .await?;
                return Ok(None);
            }
            Ok(Next::Refused(next, sentence)) => {
                meta.note("next", next);
                format!("the next step was refused: {sentence}")
            }
            Err(why) if job.attempts < NEXT_STEP_ATTEMPTS => {
                tracing::warn!(run = check.run_id, why, "the next step cannot run yet");
                self.audit.retry_job(&job.id, RECHECK_AFTER, why).await?;
                return Ok(None);
            }
            Err(why) => {
                meta.note("next", serde_json::json!({ "not-run": why }));
                format!("the next step did not run: {why}")
            }
        };
        Ok(Some(why))
    }

    /// Records the reboot check `check` as `outcome`, a `check` step of its episode, and finishes its job.
    async fn checked(
        &self,
        job: &ClaimedJob,
        meta: RequestMeta,
        target: &Target,
        check: &Check,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        let record = meta.into_record(outcome, ANSWERED, None, 0);
        let episode = EpisodeWrite::step(&check.episode, &target.id, "check");
        self.audit
            .finish_step(record, &job.id, Vec::new(), Some(episode))
            .await?;
        Ok(())
    }

    /// Runs the next step of `check`'s episode on `down` (the instances the reboot did not fix), once: under
    /// the delivery key of the step, a run already done is not run again. What became of it, or why it cannot
    /// run now (another process runs it; the run failed).
    async fn next_step(
        &self,
        target: &Target,
        check: &Check,
        down: &[String],
        check_id: &str,
    ) -> Result<Next, String> {
        let mut meta = RequestMeta::new(Source::Ladder, None);
        meta.note(
            "ladder",
            serde_json::json!({"episode": check.episode, "after": check.run_id, "check": check_id}),
        );
        let next = NextStep {
            episode: check.episode.clone(),
            index: check.index + 1,
            after: check.run_id.clone(),
            instances: down.to_vec(),
            alarm: check.alarm.as_ref().map(|watch| watch.name.clone()),
            alerts: check
                .alarm
                .as_ref()
                .map(|watch| watch.alerts.clone())
                .unwrap_or_default(),
            rule_fingerprint: check.rule_fingerprint.clone(),
        };
        let step = target
            .ladder
            .get(check.index)
            .map_or("step", |kind| kind.name());
        let message = format!(
            "ladder: the {step} in run {} did not fix {}",
            check.run_id,
            down.join(", ")
        );
        let place = Place::new(Some(check.account.clone()), Some(check.region.clone()));
        let mut trigger = Trigger::new(
            Authenticated::issued(),
            target.configured.clone(),
            message,
            false,
        )
        .in_place(place)
        .next_step(next);
        trigger.needs_approval.clone_from(&check.needs_approval);
        trigger.named.clone_from(&check.named);
        let key = format!("ladder:{}:{}", check.run_id, check.index + 1);
        let claimed = self.audit.claim_delivery(key, &meta.id, None).await;
        match claimed.map_err(|err| err.to_string())? {
            Delivery::Claimed(key) => {
                let run = self.run(meta, &trigger, Some(key)).await;
                let summary = run
                    .map_err(|err| format!("the next step's run failed: {err}"))?
                    .summary;
                let noted =
                    serde_json::json!({"run": summary.audit_id, "refused": summary.refused_rule});
                Ok(match summary.refused {
                    Some(sentence) => Next::Refused(noted, sentence),
                    None => Next::Ran(noted),
                })
            }
            Delivery::Replay { first_id, .. } => Ok(Next::Ran(
                serde_json::json!({"run": first_id, "already": true}),
            )),
            Delivery::InProgress { first_id } => {
                Err(format!("run {first_id} is taking the next step"))
            }
        }
    }
}

/// What became of a ladder's next step (as noted in the check's record).
enum Next {
    /// It ran (acted, held for approvers, or found nothing left to do), or had run already.
    Ran(serde_json::Value),
    /// A rule refused it, for this reason: a person is needed.
    Refused(serde_json::Value, String),
}
