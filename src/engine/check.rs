//! The check stage, one for every step: a run that acted is checked again later, as a durable job that
//! whichever process sharing the store claims first runs once, and judged as the step's action kind declares
//! (`Effect::judged`): each instance back InService (`ladder`: those still down go to the ladder's next step)
//! or the target's capacity back (`recovery`: short, the target escalates). Checks scheduled by the previous
//! release (`recovery-check`, `ladder-check`) are read into the same `Check` and run the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::action::{Act, Action as ActionKind, Effect, Judged, On, Polled};
use super::decision::Decision;
use super::earlier_checks::{LADDER_JOB, RECOVERY_JOB, RecoveryCheck, StepCheck};
use super::rule_check::{AlarmWatch, Looked, Started, Stepped};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{ClaimedJob, Home, NewJob, Outcome, RequestMeta, Source};
use crate::contract::{ANSWERED, Subject};
use crate::metrics::Metrics;

/// The job kind of a step's check.
pub const JOB_KIND: &str = "check";

/// A check whose target could not be read, or is looked after by a person, is tried again (by any process)
/// after this long.
pub(super) const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// A step's check: the run that acted, where it stands in its episode, what it acted on and what the target
/// should show once it recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    /// The run that acted.
    pub run_id: String,
    /// Its episode (the audit id of the episode's first acting run).
    pub episode: String,
    /// Its step in the target's ladder (0 is the first).
    pub index: usize,
    /// The step's action kind, whose declared effect says how the check judges.
    pub kind: String,
    /// The target's name.
    pub target: String,
    /// The target's account.
    pub account: String,
    /// The target's region.
    pub region: String,
    /// The instances the step acted on (for a step judged by its instances, those it was to act on: one whose
    /// act AWS refused is still down at the check).
    pub acted: Vec<String>,
    /// The instances registered when the run read the target: any other found now joined since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
    /// InService instances expected once the target recovered (those before the run plus those acted on).
    pub expected_in_service: u32,
    /// Set once the target escalated: the check watches for its capacity coming back (Unix seconds since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching_since: Option<i64>,
    /// The acts still under way when the run ended: the check polls each until it is over, then judges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingAct>,
    /// For a rule verified by its alarm: the alarm that must be OK again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<AlarmWatch>,
    /// Why the episode's runs wait for approvers whatever the mode (a business metric's alarm): its next
    /// step does too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_approval: Option<String>,
    /// The instances whose act AWS refused: not back, whatever they show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// For a rule's step: the rule's fingerprint when it ran, which its next step must still have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_fingerprint: Option<String>,
    /// What the episode's alert named beside instances: its next step acts on it too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub named: super::trigger::AlertNames,
}

/// An act its kind answered pending: the check polls it by its handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PendingAct {
    /// What was acted on (written as `instance-id` or `resource`).
    #[serde(flatten)]
    pub subject: Subject,
    /// The kind's call.
    pub action: String,
    /// What the kind polls it by.
    pub handle: String,
    /// For an act on the whole target, the instances it is for (none in checks of earlier releases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
}

/// What one poll of an act under way found, as the check's record notes it (`polled`).
#[derive(Debug, Serialize)]
struct PolledAct<'a> {
    /// What was acted on (`instance-id` or `resource`).
    #[serde(flatten)]
    subject: &'a Subject,
    /// What the kind polled it by.
    handle: &'a str,
    /// Its state, when the poll answered one.
    state: Option<String>,
    /// Why the poll, or the act, failed.
    error: Option<String>,
}

/// A check whose acts are still under way looks again after this long, and after this many looks judges
/// what it has (about ten minutes).
const POLL_AGAIN: Duration = Duration::from_secs(2);
/// See `POLL_AGAIN`.
const POLLS: u32 = 300;

/// What a run that acted hands its check.
pub(super) struct Acted<'a> {
    /// The run's decision.
    pub decision: &'a Decision,
    /// The episode.
    pub episode: &'a str,
    /// The step's place in the target's ladder.
    pub index: usize,
    /// The instances registered when the run read the target.
    pub registered: Vec<String>,
    /// The instances it acted on (or, for a step judged by its instances, was to).
    pub acted: Vec<String>,
    /// How many instances it acted on.
    pub count: u32,
    /// Its acts still under way.
    pub pending: Vec<PendingAct>,
    /// The alarm or webhook alerts that started the episode, if any.
    pub alarm: Option<Started>,
    /// Why the episode's runs wait for approvers whatever the mode, if they do.
    pub needs_approval: Option<String>,
    /// The instances whose act AWS refused.
    pub failed: Vec<String>,
    /// What the episode's alert named beside instances.
    pub named: super::trigger::AlertNames,
}

impl Engine {
    /// The check of a step of `target` that acted as `acted` says, by a kind of this `effect`, noted: a job
    /// that rides in the run's final commit, due when the kind's wait is over (its own, such as a reboot's
    /// `reboot_verify_secs`, else `verify_after_secs`).
    pub(super) fn check_job(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        kind: &str,
        effect: Effect,
        acted: Acted<'_>,
    ) -> NewJob {
        let check = Check {
            run_id: acted.decision.run_id.clone(),
            episode: acted.episode.to_owned(),
            index: acted.index,
            kind: kind.to_owned(),
            target: target.id.name.clone(),
            account: target.id.account.clone(),
            region: target.id.region.clone(),
            acted: acted.acted,
            registered: acted.registered,
            expected_in_service: acted.decision.in_service.saturating_add(acted.count),
            watching_since: None,
            pending: acted.pending,
            alarm: self.alarm_watch(meta, target, acted.alarm),
            needs_approval: acted.needs_approval,
            failed: acted.failed,
            rule_fingerprint: target.fingerprint.clone(),
            named: acted.named,
        };
        let wait = effect
            .checked_after
            .unwrap_or_else(|| Duration::from_secs(self.config.remediation.verify_after_secs));
        let due = (OffsetDateTime::now_utc() + wait).unix_timestamp();
        match effect.judged {
            Judged::InstancesBack => meta.note(
                "ladder_check",
                serde_json::json!({"rebooted": check.acted, "kind": kind, "due": due}),
            ),
            Judged::CapacityBack => meta.note(
                "recovery_check",
                serde_json::json!({"expected_in_service": check.expected_in_service, "kind": kind, "due": due}),
            ),
        }
        NewJob {
            kind: JOB_KIND,
            dedup_key: Some(format!("{JOB_KIND}:{}", check.run_id)),
            delay_ms: i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
            payload: serde_json::to_string(&check).unwrap_or_default(),
            bounded: false,
        }
    }

    /// The alarm (or webhook alerts) a rule verified by its alarm waits for after acting now (noted); none
    /// for a target, a rule that does not say `verify = "alarm-ok"`, or an episode no alarm or alert started
    /// (noted: its instances alone judge it).
    fn alarm_watch(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        alarm: Option<Started>,
    ) -> Option<AlarmWatch> {
        let rule = self
            .config
            .rules
            .iter()
            .find(|rule| target.is_rule() && rule.name == target.id.name)?;
        rule.verify?;
        let Some(Started { name, alerts }) = alarm else {
            meta.note(
                "alarm_check",
                "no CloudWatch alarm or webhook alert started this run: its instances alone judge it",
            );
            return None;
        };
        let since = OffsetDateTime::now_utc().unix_timestamp();
        let watch = AlarmWatch {
            name,
            since,
            until: since.saturating_add_unsigned(rule.verify_within_secs),
            alerts,
        };
        meta.note("alarm_check", &watch);
        Some(watch)
    }

    /// Runs the claimed check `job`, whose payload is `check` (`read_check`): judged as its step's action kind
    /// declares. One whose kind is not registered is recorded as ignored and finished.
    pub async fn run_check(&self, job: &ClaimedJob, check: Check) -> Result<(), EngineError> {
        let mut meta = RequestMeta::new(Source::RecoveryCheck, None);
        let Some(kind) = self.kinds.get(&check.kind).cloned() else {
            let why = format!("no action kind {:?} is registered", check.kind);
            return self.ignore(job, meta, &why).await;
        };
        let Some(done) = self.settled(job, &mut meta, &check, kind.as_ref()).await? else {
            return Ok(());
        };
        match kind.effect().judged {
            // A rule (whose checks carry its fingerprint) has no balancer whose capacity could come back: what
            // its step acted on judges it.
            Judged::CapacityBack if check.rule_fingerprint.is_none() => {
                self.check_capacity(job, meta, check).await
            }
            Judged::CapacityBack | Judged::InstancesBack => {
                self.check_instances(job, meta, check, &done).await
            }
        }
    }

    /// The check `job` carries, whichever release scheduled it: this release's kind, or the previous
    /// release's `recovery-check` or `ladder-check`.
    pub fn read_check(&self, job: &ClaimedJob) -> Option<Check> {
        match job.kind.as_str() {
            RECOVERY_JOB => serde_json::from_str(&job.payload)
                .ok()
                .map(|check| of_recovery(check, &self.home)),
            LADDER_JOB => serde_json::from_str(&job.payload).ok().map(of_reboot),
            _ => serde_json::from_str(&job.payload).ok(),
        }
    }

    /// Polls `check`'s acts under way through their `kind`: once the check may judge (each is over, or it has
    /// waited `POLLS` looks), what each poll found is noted and the instances whose act ended well are
    /// returned; before that, the job is put back to look again (`None`), as it is while the target is paused,
    /// silenced or in a maintenance window (a poll may act again). A poll that fails for a moment counts as
    /// still under way.
    async fn settled(
        &self,
        job: &ClaimedJob,
        meta: &mut RequestMeta,
        check: &Check,
        kind: &dyn ActionKind,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let found = self
            .targets
            .by_place(&check.target, &check.account, &check.region);
        let (Some(target), false) = (found, check.pending.is_empty()) else {
            return Ok(Some(Vec::new()));
        };
        // A poll may act again (a webhook sent again): not while a person looks after the target.
        if let Some(why) = self.held_by_people(&target.id).await? {
            tracing::info!(job = job.id, why, "check waits");
            self.audit.retry_job(&job.id, RECHECK_AFTER, why).await?;
            return Ok(None);
        }
        let mut done = Vec::new();
        let mut polled = Vec::with_capacity(check.pending.len());
        let mut under_way = 0;
        for pending in &check.pending {
            let act = Act {
                subject: pending.subject.clone(),
                action: pending.action.clone(),
                kind: check.kind.clone(),
                auto_scaling_group: None,
                covers: pending.covers.clone(),
                arguments: super::action::Arguments::new(),
            };
            let on = On {
                fleet: target.fleet.as_ref(),
                target: &target.fleet_ref,
                act: &act,
                resumes: &[],
            };
            let (state, error) = match kind.poll(on, &pending.handle).await {
                Ok(Polled::Done(state)) => {
                    done.push(pending.subject.id().to_owned());
                    (Some(state), None)
                }
                Ok(Polled::Failed(why)) => (None, Some(why)),
                Ok(Polled::Pending) => (Some("pending".to_owned()), None),
                Err(err) => (Some("pending".to_owned()), Some(err.to_string())),
            };
            under_way += usize::from(state.as_deref() == Some("pending"));
            polled.push(PolledAct {
                subject: &pending.subject,
                handle: &pending.handle,
                state,
                error,
            });
        }
        if under_way > 0 && job.attempts < POLLS {
            let why = format!("{under_way} act(s) still under way");
            self.audit.retry_job(&job.id, POLL_AGAIN, why).await?;
            return Ok(None);
        }
        meta.note("polled", polled);
        Ok(Some(done))
    }

    /// Why a check of `target` waits, if it does: a pause, a silence or a maintenance window holds.
    pub(super) async fn held_by_people(
        &self,
        target: &crate::target::TargetId,
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
        check: &Check,
        done: &[String],
    ) -> Result<Option<(&Target, super::port::Snapshot)>, EngineError> {
        meta.target = Some(check.target.clone());
        meta.place = Some((check.account.clone(), check.region.clone()));
        let found = self
            .targets
            .by_place(&check.target, &check.account, &check.region);
        let Some(target) = found else {
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
        let resolved = match &check.alarm {
            Some(watch) if !watch.alerts.is_empty() => Some(self.alerts_state(check, watch).await?),
            _ => None,
        };
        let read = async {
            if target.is_rule() {
                let step = Stepped {
                    acted: &check.acted,
                    ran_on: !check.pending.is_empty(),
                    failed: &check.failed,
                    done,
                    alarm: check.alarm.as_ref(),
                };
                super::rule_check::look(target, step, resolved).await
            } else {
                let snapshot = target.fleet.snapshot(&target.fleet_ref).await?;
                Ok(Looked::Seen(snapshot, None))
            }
        };
        match super::port::RUN_ID.scope(meta.id.clone(), read).await {
            Ok(Looked::Seen(snapshot, alarm)) => {
                if let Some(alarm) = alarm {
                    meta.note("alarm", alarm);
                }
                Ok(Some((target, snapshot)))
            }
            Ok(Looked::Wait(why, after)) => {
                tracing::info!(job = job.id, why, "check waits for its alarm");
                self.audit.retry_job(&job.id, after, why).await?;
                Ok(None)
            }
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
}

/// A replacement's check as the previous release scheduled it (checks from before targets had a place are the
/// home's; from before episodes, the run's own).
fn of_recovery(check: RecoveryCheck, home: &Home) -> Check {
    Check {
        episode: check.episode.unwrap_or_else(|| check.run_id.clone()),
        run_id: check.run_id,
        index: 0,
        kind: "replace".to_owned(),
        target: check.target,
        account: check.account.unwrap_or_else(|| home.account.clone()),
        region: check.region.unwrap_or_else(|| home.region.clone()),
        acted: check.replaced,
        registered: check.registered,
        expected_in_service: check.expected_in_service,
        watching_since: check.watching_since,
        pending: Vec::new(),
        ..Check::default()
    }
}

/// A reboot's check as the previous release scheduled it.
fn of_reboot(check: StepCheck) -> Check {
    Check {
        run_id: check.run_id,
        episode: check.episode,
        index: check.index,
        kind: "reboot".to_owned(),
        target: check.target,
        account: check.account,
        region: check.region,
        acted: check.rebooted,
        registered: Vec::new(),
        expected_in_service: check.expected_in_service,
        watching_since: None,
        pending: Vec::new(),
        ..Check::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_previous_release_scheduled_read_as_this_release_s() {
        let home = Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let recovery: RecoveryCheck = serde_json::from_str(
            r#"{"run-id":"R1","target":"web","expected-in-service":5,"replaced":["i-1"],"registered":["i-1","i-2"]}"#,
        )
        .unwrap();
        let check = of_recovery(recovery, &home);
        assert_eq!(
            (
                check.kind.as_str(),
                check.episode.as_str(),
                check.account.as_str()
            ),
            ("replace", "R1", "123456789012")
        );
        assert_eq!(
            (check.acted, check.expected_in_service),
            (vec!["i-1".to_owned()], 5)
        );
        let reboot: StepCheck = serde_json::from_str(
            r#"{"run-id":"R2","episode":"E","index":0,"target":"web","account":"1","region":"r","rebooted":["i-3"],"expected-in-service":4}"#,
        )
        .unwrap();
        let check = of_reboot(reboot);
        assert_eq!((check.kind.as_str(), check.index), ("reboot", 0));
        assert_eq!(check.acted, ["i-3"]);
    }
}
