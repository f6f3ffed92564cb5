//! The escalation ladder: a target tries its remedies in order (`[[targets]] ladder`, e.g. reboot, then
//! replace). A run that rebooted instances is checked `reboot_verify_secs` later by a durable job (any process
//! sharing the store runs it once): each rebooted instance back InService recovered; those still down go to
//! the next step as a new recorded run of the same episode, through every rule as it stands then, and acted
//! on once (its delivery key); with no step after, the target escalates to a person.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::action::Action as ActionKind;
use super::decision::Decision;
use super::recovery::RECHECK_AFTER;
use super::targets::Target;
use super::{Authenticated, Engine, EngineError, NextStep, Run, Trigger};
use crate::audit::{ClaimedJob, Delivery, EpisodeWrite, NewJob, Outcome, RequestMeta, Source};
use crate::contract::ANSWERED;
use crate::metrics::Metrics;
use crate::target::Place;

/// The job kind of a ladder step's check.
pub const JOB_KIND: &str = "ladder-check";

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
        let index = trigger.ladder.as_ref().map_or(0, |next| next.index);
        let last = target.ladder.len().saturating_sub(1);
        Self {
            kind: &target.ladder[index.min(last)],
            index,
            episode: trigger.ladder.as_ref().map(|next| next.episode.as_str()),
            after: trigger.ladder.as_ref().map(|next| next.after.as_str()),
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

/// A reboot's check: the run, its episode and step, and what it rebooted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StepCheck {
    /// The run that rebooted.
    pub run_id: String,
    /// Its episode.
    pub episode: String,
    /// Its step in the target's ladder.
    pub index: usize,
    /// Its target's name, account and region.
    pub target: String,
    /// The target's account.
    pub account: String,
    /// The target's region.
    pub region: String,
    /// The instances it rebooted (or started).
    pub rebooted: Vec<String>,
    /// InService instances expected once the target recovered (an escalation watches for these).
    pub expected_in_service: u32,
}

/// Where a reboot stands in its episode.
pub(super) struct After<'a> {
    /// The episode.
    pub episode: &'a str,
    /// The reboot's step in the target's ladder.
    pub index: usize,
    /// How many instances it rebooted.
    pub acted: u32,
}

impl Engine {
    /// The check of a run that rebooted `rebooted` as `decision` decided, noted: a job that rides in the run's
    /// final commit, due the target's `reboot_verify_secs` later.
    pub(super) fn step_check(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        decision: &Decision,
        rebooted: &[String],
        after: After<'_>,
    ) -> NewJob {
        let due = OffsetDateTime::now_utc() + target.reboot_verify;
        let check = StepCheck {
            run_id: decision.run_id.clone(),
            episode: after.episode.to_owned(),
            index: after.index,
            target: target.id.name.clone(),
            account: target.id.account.clone(),
            region: target.id.region.clone(),
            rebooted: rebooted.to_vec(),
            expected_in_service: decision.in_service.saturating_add(after.acted),
        };
        meta.note(
            "ladder_check",
            serde_json::json!({"rebooted": check.rebooted, "due": due.unix_timestamp()}),
        );
        NewJob {
            kind: JOB_KIND,
            dedup_key: Some(format!("{JOB_KIND}:{}", check.run_id)),
            delay_ms: i64::try_from(target.reboot_verify.as_millis()).unwrap_or(i64::MAX),
            payload: serde_json::to_string(&check).unwrap_or_default(),
            bounded: false,
        }
    }

    /// Runs the claimed reboot check `job`: reads the target; each rebooted instance back InService
    /// recovered; those still down go to the next step (a run of the same episode, acted on once whoever runs
    /// it), or, with none after (or a next step refused, or given up on), escalate. The check's record and the
    /// job's removal are one commit, written after the next step's run, so that a crash between them runs the
    /// check again and finds that run done.
    pub async fn check_step(&self, job: &ClaimedJob) -> Result<(), EngineError> {
        let mut meta = RequestMeta::new(Source::RecoveryCheck, None);
        let Ok(check) = serde_json::from_str::<StepCheck>(&job.payload) else {
            return self
                .ignore(job, meta, "the ladder check cannot be read")
                .await;
        };
        meta.note("episode", serde_json::json!({"id": check.episode}));
        let place = (
            check.target.as_str(),
            check.account.as_str(),
            check.region.as_str(),
        );
        let Some((target, snapshot)) = self.look(job, &mut meta, place).await? else {
            return Ok(());
        };
        let (back, down): (Vec<String>, Vec<String>) =
            check.rebooted.iter().cloned().partition(|id| {
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
        jobs.push(self.watch(&super::RecoveryCheck {
            run_id: check.run_id.clone(),
            target: check.target.clone(),
            account: Some(check.account.clone()),
            region: Some(check.region.clone()),
            expected_in_service: check.expected_in_service,
            episode: Some(check.episode.clone()),
            ..super::RecoveryCheck::default()
        }));
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
        check: &StepCheck,
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
        check: &StepCheck,
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
        check: &StepCheck,
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
        let trigger = Trigger::new(
            Authenticated::issued(),
            target.configured.clone(),
            message,
            false,
        )
        .in_place(place)
        .next_step(next);
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
