//! A step judged by the target's capacity (a replacement, an isolation) is checked `verify_after_secs` after it
//! acted: at least as many instances InService as before the run plus those it acted on is `recovered`; fewer
//! is `not-recovered`, and since such a step is a ladder's last, the target escalates: its breaker opens
//! (`escalated`), a person is paged, and the check goes on watching until the capacity is back (`resolved`).
//! The instances that joined since the run are what replaced the broken ones: the relapse memory.

use std::time::Duration;

use time::OffsetDateTime;

use super::breaker::Trip;
use super::check::Check;
use super::{Engine, EngineError};
use crate::audit::{ClaimedJob, EpisodeWrite, Joined, NewJob, Outcome, RequestMeta};
use crate::config::NotifyEvent;
use crate::contract::ANSWERED;
use crate::events::{Event, Tried};
use crate::metrics::Metrics;
use crate::target::TargetId;

/// An escalated target is watched for its capacity coming back this long, then given up on.
const WATCH_FOR: Duration = Duration::from_secs(24 * 3600);

impl Engine {
    /// Runs the check `check` of a step judged by capacity (claimed as `job`): reads the target again and
    /// records `recovered` or `not-recovered`. The record, its notifications and the job's removal are one
    /// commit, so the check runs once; one whose target cannot be read, or is paused, is put back and tried
    /// again later.
    pub(super) async fn check_capacity(
        &self,
        job: &ClaimedJob,
        mut meta: RequestMeta,
        check: Check,
    ) -> Result<(), EngineError> {
        meta.note(
            "recovery",
            serde_json::json!({"run": check.run_id, "expected_in_service": check.expected_in_service}),
        );
        meta.note("episode", serde_json::json!({"id": check.episode}));
        let Some((target, snapshot)) = self.look(job, &mut meta, &check, &[]).await? else {
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
                .of_episode(&check.episode),
            ];
            events.extend(
                self.escalate(&mut meta, &target.id, &check.episode, reason)
                    .await?,
            );
            (Outcome::NotRecovered, "escalated", events)
        };
        let mut jobs = self.jobs_of(&events);
        if outcome == Outcome::NotRecovered {
            jobs.push(self.watch(&check));
        }
        let record = meta.into_record(outcome, ANSWERED, None, 0);
        let mut episode = EpisodeWrite::step(&check.episode, &target.id, step);
        episode.joined = joined;
        let dropped = self
            .audit
            .finish_step(record, &job.id, jobs, Some(episode))
            .await?;
        self.notifier.count_dropped(dropped);
        Ok(())
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
    pub(super) fn watch(&self, check: &Check) -> NewJob {
        let every = Duration::from_secs(self.config.remediation.verify_after_secs);
        let watching = Check {
            watching_since: Some(OffsetDateTime::now_utc().unix_timestamp()),
            ..check.clone()
        };
        NewJob {
            kind: super::check::JOB_KIND,
            dedup_key: Some(format!("watch:{}", check.run_id)),
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
        check: &Check,
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
                .of_episode(&check.episode);
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
        let episode = EpisodeWrite::step(&check.episode, &target.id, step);
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
fn joined(check: &Check, snapshot: &super::port::Snapshot) -> Vec<Joined> {
    if check.registered.is_empty() || check.acted.is_empty() {
        return Vec::new();
    }
    snapshot
        .instances
        .iter()
        .filter(|i| !check.registered.contains(&i.instance_id))
        .map(|i| Joined {
            instance_id: i.instance_id.clone(),
            run_id: check.run_id.clone(),
            replaced: check.acted.clone(),
            image_id: i.ec2.as_ref().and_then(|e| e.image_id.clone()),
            launch_template: i
                .ec2
                .as_ref()
                .and_then(super::port::Ec2Facts::launch_template),
        })
        .collect()
}
