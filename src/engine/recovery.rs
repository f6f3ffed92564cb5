//! The check stage: a run that replaced instances is checked again `remediation.verify_after_secs` later, as a
//! durable job that whichever process sharing the store claims first runs once. The target is read once more:
//! at least as many instances InService as before the run plus those it replaced is `recovered`; fewer is
//! `not-recovered`, and since replacement is a ladder's last step, the target escalates: its breaker opens
//! (`escalated`), a person is paged, and the check goes on watching until the capacity is back (`resolved`).
//! The instances that joined since the run are what replaced the broken ones: the relapse memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::breaker::Trip;
use super::decision::Decision;
use super::{Engine, EngineError};
use crate::audit::{ClaimedJob, EpisodeWrite, Joined, NewJob, Outcome, RequestMeta, Source};
use crate::config::NotifyEvent;
use crate::contract::ANSWERED;
use crate::events::{Event, Tried};
use crate::metrics::Metrics;
use crate::target::TargetId;

/// The job kind of a recovery check.
pub const JOB_KIND: &str = "recovery-check";

/// A check whose target could not be read, or is looked after by a person, is tried again (by any process)
/// after this long.
pub(super) const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// An escalated target is watched for its capacity coming back this long, then given up on.
const WATCH_FOR: Duration = Duration::from_secs(24 * 3600);

/// A recovery check's data: the run that acted, its target, and how many instances should be InService once
/// the target recovered (those InService before the run plus those it replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecoveryCheck {
    /// The audit id of the run that acted.
    pub run_id: String,
    /// Its target's name.
    pub target: String,
    /// Its target's AWS account (checks scheduled before targets had one are the home's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Its target's AWS region (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// InService instances expected once the target recovered.
    pub expected_in_service: u32,
    /// The run's episode (checks scheduled before episodes: the run itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
    /// The instances registered when the run read the target: any other found now joined since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
    /// The instances the run replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// Set once the target escalated: the check watches for its capacity coming back (Unix seconds since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching_since: Option<i64>,
}

/// What a replacement's check is of: its episode, the instances registered when its run read the target,
/// and those it replaced.
pub(super) struct Of<'a> {
    /// The episode.
    pub episode: &'a str,
    /// Registered when the run read the target.
    pub registered: Vec<String>,
    /// Replaced by the run.
    pub replaced: Vec<String>,
}

impl RecoveryCheck {
    /// The episode the checked run belongs to.
    fn episode(&self) -> &str {
        self.episode.as_deref().unwrap_or(&self.run_id)
    }
}

impl Engine {
    /// The recovery check of a run that replaced `acted` instances as `decision` decided, noted: a job that
    /// rides in the run's final commit, so that the check is scheduled exactly when the run's record lands.
    pub(super) fn recovery_check(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        decision: &Decision,
        acted: u32,
        of: Of<'_>,
    ) -> NewJob {
        let verify_after = Duration::from_secs(self.config.remediation.verify_after_secs);
        let due = OffsetDateTime::now_utc() + verify_after;
        let check = RecoveryCheck {
            run_id: decision.run_id.clone(),
            target: target.name.clone(),
            account: Some(target.account.clone()),
            region: Some(target.region.clone()),
            expected_in_service: decision.in_service.saturating_add(acted),
            episode: Some(of.episode.to_owned()),
            registered: of.registered,
            replaced: of.replaced,
            watching_since: None,
        };
        meta.note(
            "recovery_check",
            serde_json::json!({"expected_in_service": check.expected_in_service, "due": due.unix_timestamp()}),
        );
        NewJob {
            kind: JOB_KIND,
            dedup_key: Some(format!("{JOB_KIND}:{}", check.run_id)),
            delay_ms: i64::try_from(verify_after.as_millis()).unwrap_or(i64::MAX),
            payload: serde_json::to_string(&check).unwrap_or_default(),
            bounded: false,
        }
    }

    /// Why a recovery check of `target` waits, if it does: a pause, a silence or a maintenance window holds.
    pub(super) async fn held_by_people(
        &self,
        target: &TargetId,
    ) -> Result<Option<String>, EngineError> {
        let brakes = self.audit.brakes_of(target).await?;
        if let Some(pause) = brakes.pause {
            return Ok(Some(format!("the target is paused: {}", pause.reason)));
        }
        if let Some(silence) = brakes.silence {
            return Ok(Some(format!("the target is silenced: {}", silence.reason)));
        }
        if self.config.windows.is_empty() {
            return Ok(None);
        }
        let now = self.audit.clock().await?.now();
        Ok(
            super::gate::window_refusal(&self.config.windows, &target.name, now)
                .map(|window| window.sentence()),
        )
    }

    /// Runs the claimed recovery check `job`: reads the target again and records `recovered` or
    /// `not-recovered`. The record, its notifications and the job's removal are one commit, so the check runs
    /// once; one whose target cannot be read, or is paused, is put back and tried again later.
    pub async fn check_recovery(&self, job: &ClaimedJob) -> Result<(), EngineError> {
        let mut meta = RequestMeta::new(Source::RecoveryCheck, None);
        let Ok(check) = serde_json::from_str::<RecoveryCheck>(&job.payload) else {
            return self
                .ignore(job, meta, "the recovery check cannot be read")
                .await;
        };
        let account = check.account.as_deref().unwrap_or(&self.home.account);
        let region = check.region.as_deref().unwrap_or(&self.home.region);
        meta.note(
            "recovery",
            serde_json::json!({"run": check.run_id, "expected_in_service": check.expected_in_service}),
        );
        meta.note("episode", serde_json::json!({"id": check.episode()}));
        let Some((target, snapshot)) = self
            .look(job, &mut meta, (&check.target, account, region))
            .await?
        else {
            return Ok(());
        };
        let in_service = u32::try_from(snapshot.in_service()).unwrap_or(u32::MAX);
        if let Some(since) = check.watching_since {
            return self
                .watched(job, meta, target, &check, since, in_service)
                .await;
        }
        meta.note("seen", &snapshot);
        meta.note("in_service", in_service);
        let joined = joined(&check, &snapshot);
        if !joined.is_empty() {
            meta.note("joined", &joined);
        }
        let (outcome, step, events) = if in_service >= check.expected_in_service {
            Metrics::count(&self.metrics.recovery_checks, "recovered");
            (Outcome::Recovered, "check", Vec::new())
        } else {
            Metrics::count(&self.metrics.recovery_checks, "not-recovered");
            let reason = format!(
                "not recovered after run {}: {in_service} of {} instances InService",
                check.run_id, check.expected_in_service
            );
            tracing::error!(target = check.target, reason, "target did not recover");
            let mut events = vec![
                Event::new(
                    NotifyEvent::NotRecovered,
                    &check.target,
                    reason.clone(),
                    &meta.id,
                )
                .at(meta.place.as_ref())
                .of_episode(check.episode()),
            ];
            events.extend(
                self.escalate(&mut meta, &target.id, check.episode(), reason)
                    .await?,
            );
            (Outcome::NotRecovered, "escalated", events)
        };
        let mut jobs = self.jobs_of(&events);
        if outcome == Outcome::NotRecovered {
            jobs.push(self.watch(&check));
        }
        let record = meta.into_record(outcome, ANSWERED, None, 0);
        let mut episode = EpisodeWrite::step(check.episode(), &target.id, step);
        episode.joined = joined;
        let dropped = self
            .audit
            .finish_step(record, &job.id, jobs, Some(episode))
            .await?;
        self.notifier.count_dropped(dropped);
        Ok(())
    }

    /// Records a check job that cannot be run (unreadable, or its target no longer configured) as ignored,
    /// and finishes it.
    pub(super) async fn ignore(
        &self,
        job: &ClaimedJob,
        mut meta: RequestMeta,
        why: &str,
    ) -> Result<(), EngineError> {
        meta.note("ignored", why);
        let record = meta.into_record(Outcome::Ignored, ANSWERED, None, 0);
        self.audit.finish_job(record, &job.id, Vec::new()).await?;
        Ok(())
    }

    /// The look a check takes at its target (`name`, `account`, `region`) and what it saw; `None` when the
    /// job is done with for now: its target is no longer configured (recorded and finished), it is looked
    /// after by a person (a pause, a silence, a maintenance window: it waits, with no AWS call, rather than
    /// reading the target and escalating), or it cannot be read (tried again by any process).
    pub(super) async fn look(
        &self,
        job: &ClaimedJob,
        meta: &mut RequestMeta,
        (name, account, region): (&str, &str, &str),
    ) -> Result<Option<(&super::targets::Target, super::port::Snapshot)>, EngineError> {
        meta.target = Some(name.to_owned());
        meta.place = Some((account.to_owned(), region.to_owned()));
        let Some(target) = self.targets.by_place(name, account, region) else {
            let meta = std::mem::replace(meta, RequestMeta::new(Source::RecoveryCheck, None));
            self.ignore(job, meta, "the target is no longer configured")
                .await?;
            return Ok(None);
        };
        if let Some(why) = self.held_by_people(&target.id).await? {
            tracing::info!(job = job.id, why, "check waits");
            self.audit.retry_job(&job.id, RECHECK_AFTER, why).await?;
            return Ok(None);
        }
        let read = target.fleet.snapshot(&target.fleet_ref);
        match super::port::RUN_ID.scope(meta.id.clone(), read).await {
            Ok(snapshot) => Ok(Some((target, snapshot))),
            Err(err) => {
                Metrics::count(&self.metrics.recovery_checks, "failed");
                tracing::warn!(job = job.id, error = %err, "check cannot read its target; trying again later");
                self.audit
                    .retry_job(&job.id, RECHECK_AFTER, err.to_string())
                    .await?;
                Ok(None)
            }
        }
    }

    /// Escalates `target`'s `episode` to a person for `reason`: opens its breaker (`escalated`), and the
    /// events that say so, the escalation listing what was tried, in order, with each step's record (one
    /// store read: the episode's story).
    pub(super) async fn escalate(
        &self,
        meta: &mut RequestMeta,
        target: &TargetId,
        episode: &str,
        reason: String,
    ) -> Result<Vec<Event>, EngineError> {
        self.metrics
            .escalations
            .get_or_create(&crate::metrics::TripLabels {
                reason: "escalated",
            })
            .inc();
        let story = self.audit.episode_story(episode).await?;
        let mut tried: Vec<Tried> = story
            .map(|(_, steps)| steps)
            .unwrap_or_default()
            .into_iter()
            .map(|step| Tried {
                step: step.step,
                audit_id: step.record_id,
            })
            .collect();
        tried.push(Tried {
            step: "escalated".into(),
            audit_id: meta.id.clone(),
        });
        meta.note(
            "escalated",
            serde_json::json!({"episode": episode, "reason": reason, "tried": tried}),
        );
        let mut escalated = Event::new(
            NotifyEvent::Escalated,
            &target.name,
            reason.clone(),
            &meta.id,
        )
        .at(meta.place.as_ref())
        .of_episode(episode);
        escalated.tried = tried;
        let mut events = vec![escalated];
        if let Some(tripped) = self.trip(meta, target, Trip::Escalated, reason).await? {
            let event = Event::new(
                NotifyEvent::BreakerTripped,
                &target.name,
                tripped.reason,
                &meta.id,
            )
            .at(meta.place.as_ref())
            .of_episode(episode);
            events.push(event);
        }
        Ok(events)
    }

    /// The job that watches an escalated target for its capacity coming back, every `verify_after_secs`.
    pub(super) fn watch(&self, check: &RecoveryCheck) -> NewJob {
        let every = Duration::from_secs(self.config.remediation.verify_after_secs);
        let watching = RecoveryCheck {
            watching_since: Some(OffsetDateTime::now_utc().unix_timestamp()),
            ..check.clone()
        };
        NewJob {
            kind: JOB_KIND,
            dedup_key: Some(format!("recovery-watch:{}", check.run_id)),
            delay_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
            payload: serde_json::to_string(&watching).unwrap_or_default(),
            bounded: false,
        }
    }

    /// One look of the watch on an escalated target: its capacity back is `recovered`, with the event that
    /// resolves its page; still short, the watch looks again later (no record), until it gives up.
    async fn watched(
        &self,
        job: &ClaimedJob,
        mut meta: RequestMeta,
        target: &super::targets::Target,
        check: &RecoveryCheck,
        since: i64,
        in_service: u32,
    ) -> Result<(), EngineError> {
        let watched_for = OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_sub(since);
        meta.note(
            "watch",
            serde_json::json!({"run": check.run_id, "in_service": in_service}),
        );
        let (outcome, step, events) = if in_service >= check.expected_in_service {
            Metrics::count(&self.metrics.recovery_checks, "recovered");
            let text = format!(
                "recovered after escalating: {in_service} of {} instances InService",
                check.expected_in_service
            );
            let event = Event::new(NotifyEvent::Resolved, &check.target, text, &meta.id)
                .at(meta.place.as_ref())
                .of_episode(check.episode());
            (Outcome::Recovered, "resolved", vec![event])
        } else if u64::try_from(watched_for).unwrap_or(0) < WATCH_FOR.as_secs() {
            let every = Duration::from_secs(self.config.remediation.verify_after_secs);
            let why = format!("{in_service} of {} InService", check.expected_in_service);
            self.audit.retry_job(&job.id, every, why).await?;
            return Ok(());
        } else {
            meta.note(
                "ignored",
                "stopped watching: the target stayed short for a day",
            );
            (Outcome::Ignored, "check", Vec::new())
        };
        let record = meta.into_record(outcome, ANSWERED, None, 0);
        let episode = EpisodeWrite::step(check.episode(), &target.id, step);
        let dropped = self
            .audit
            .finish_step(record, &job.id, self.jobs_of(&events), Some(episode))
            .await?;
        self.notifier.count_dropped(dropped);
        Ok(())
    }
}

/// The instances that joined the target since `check`'s run read it, with what they replaced: each
/// instance registered now that was not then. Pure.
fn joined(check: &RecoveryCheck, snapshot: &super::port::Snapshot) -> Vec<Joined> {
    if check.registered.is_empty() || check.replaced.is_empty() {
        return Vec::new();
    }
    snapshot
        .instances
        .iter()
        .filter(|i| !check.registered.contains(&i.instance_id))
        .map(|i| Joined {
            instance_id: i.instance_id.clone(),
            run_id: check.run_id.clone(),
            replaced: check.replaced.clone(),
            image_id: i.ec2.as_ref().and_then(|e| e.image_id.clone()),
            launch_template: i
                .ec2
                .as_ref()
                .and_then(super::port::Ec2Facts::launch_template),
        })
        .collect()
}
