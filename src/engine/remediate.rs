//! A run, stage by stage: the gate, then the decision (observing the target), then the acts with the intent
//! durable before any AWS write, then the check of the step scheduled, chosen by how the step's action kind
//! is judged. Every action kind goes through the same stages.

use super::act::Acted;
use super::action::{Act, Judged};
use super::breaker::Tripped;
use super::check;
use super::decide;
use super::decision::Decision;
use super::ladder::Step;
use super::plan::{Plan, Refusal, SkipReason};
use super::rule_check::Started;
use super::targets::Target;
use super::{Engine, EngineError, Resources, Run, Trigger};
use crate::audit::{EpisodeWrite, NewJob, RequestMeta};
use crate::config::Mode;
use crate::contract::Summary;

/// How a run answers: its trigger, its target, and whether it writes nothing.
struct Answer<'a> {
    trigger: &'a Trigger,
    target: &'a Target,
    dry_run: bool,
}

/// What a run that acted hands its check: the decision, what it read, how many it acted on, its answer.
struct Done {
    decision: Decision,
    registered: Vec<String>,
    acted: u32,
    summary: Summary,
    tripped: Option<Tripped>,
    relapsed: Vec<String>,
    alarm: Option<Started>,
    needs_approval: Option<String>,
    named: super::trigger::AlertNames,
}

impl Engine {
    /// The run itself, stage by stage, noting each step in `meta`, picking up what `trigger` resumes.
    #[tracing::instrument(skip_all, fields(request_id = %meta.id, target = %trigger.target))]
    pub(super) async fn remediate(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        target: &Target,
    ) -> Result<Run, EngineError> {
        let previous = trigger.resume.takeover.as_deref();
        // A target in observe mode runs every stage up to the decision and records what it would have done;
        // one in approve mode holds a decision to act for approvers, unless this run is their approval.
        let observing = target.mode == Mode::Observe;
        let dry_run = trigger.dry_run || self.config.remediation.dry_run || observing;
        // The step of the target's ladder this run takes; the earlier step of its episode is no cooldown for it.
        let step = Step::of(trigger, target);
        let approved = self.approval_holds(meta, trigger, &step, target);
        let holding = wants_approvers(meta, trigger, target) && !approved && !dry_run;
        meta.dry_run = dry_run;
        let _admitted = self.admit(target).await?;
        note_start(meta, target, previous);
        let answer = Answer {
            trigger,
            target,
            dry_run,
        };
        let except: Vec<&str> = previous.into_iter().chain(step.after).collect();
        let changed = step_of_changed_rule(trigger, target);
        let gated = self.gate(target, dry_run, &except).await?;
        if let Some(refusal) = changed.or(gated.refusal) {
            let refused = self.refused(meta, &answer, refusal, false, None);
            return Ok(step.recorded(refused, meta, target, Vec::new()));
        }
        let resources = resources_of(trigger);
        let asked = decide::Asked {
            previous,
            except: &except,
            acting: !(dry_run || holding),
            only: only_of(trigger),
            step: step.kind,
            resources: &resources,
            braked: &gated.held,
            named: &trigger.named,
        };
        let decided = self.decide(meta, target, asked).await?;
        let mut summary = self.summary_of(meta, &answer, &decided.plan);
        let (tripped, relapsed) = (decided.tripped.clone(), decided.relapsed.clone());
        if holding && !decided.decision.steps.is_empty() {
            let held = self.hold(meta, target, decided, summary, trigger);
            return Ok(step.recorded(held.await?, meta, target, Vec::new()));
        }
        if dry_run || holding || decided.decision.steps.is_empty() {
            tracing::info!(would_act = ?decided.plan.act_on, refused = ?summary.refused, dry_run, "planned");
            let run = self.counted(Run::nothing_done(summary, true, tripped));
            return Ok(step.recorded(run, meta, target, relapsed));
        }
        let (decision, registered) = (decided.decision.clone(), decided.plan.registered.clone());
        let budget_cut = decided.budget_cut.clone();
        let acted = match self.act(meta, target, decided, &mut summary).await? {
            Acted::Replaced(acted) => acted,
            Acted::Refused(refusal) => {
                let refused = self.refused(meta, &answer, refusal, true, tripped);
                return Ok(step.recorded(refused, meta, target, Vec::new()));
            }
        };
        let tripped = match budget_cut {
            Some(reason) => self.trip_after_acting(meta, &target.id, reason).await,
            None => tripped,
        };
        let done = Done {
            alarm: alarm_of(trigger, target),
            needs_approval: trigger.needs_approval.clone(),
            named: trigger.named.clone(),
            decision,
            registered,
            acted,
            summary,
            tripped,
            relapsed,
        };
        Ok(self.after_acting(meta, target, &step, done))
    }

    /// One run of `target` at a time in this process, within `max_concurrent` runs in all: the guards held
    /// for the run, or `Busy` when every slot is taken.
    async fn admit<'a>(
        &'a self,
        target: &'a Target,
    ) -> Result<
        (
            tokio::sync::MutexGuard<'a, ()>,
            tokio::sync::SemaphorePermit<'a>,
        ),
        EngineError,
    > {
        let single_flight = target.lock.lock().await;
        let slot = self
            .slots
            .try_acquire()
            .map_err(|_| EngineError::Busy(self.config.remediation.max_concurrent))?;
        Ok((single_flight, slot))
    }

    /// Whether the run acts on an approval that still holds: the approvers saw the action kind the target's
    /// ladder names for this step now, and for a rule's, the rule as it is now. One that named another since,
    /// or a rule changed since, is noted, and the run holds again.
    fn approval_holds(
        &self,
        meta: &mut RequestMeta,
        trigger: &Trigger,
        step: &Step<'_>,
        target: &Target,
    ) -> bool {
        let Some(approved) = &trigger.resume.approved else {
            return false;
        };
        if let (Some(seen), Some(now)) = (&approved.rule_fingerprint, &target.fingerprint)
            && seen != now
        {
            tracing::warn!(
                approval = approved.id,
                seen,
                now,
                "the approved rule changed"
            );
            meta.note(
                "approval_stale",
                serde_json::json!({"approval": approved.id, "rule_fingerprint": seen, "now": now}),
            );
            return false;
        }
        let now = step.kind.name();
        match approved.kind.as_deref() {
            Some(seen) if seen != now => {
                tracing::warn!(
                    approval = approved.id,
                    seen,
                    now,
                    "the approved step changed"
                );
                meta.note(
                    "approval_stale",
                    serde_json::json!({"approval": approved.id, "approved": seen, "now": now}),
                );
                false
            }
            _ => true,
        }
    }

    /// The summary of `plan` as `answer` gives it: the target's names, its mode when not `auto`.
    fn summary_of(&self, meta: &RequestMeta, answer: &Answer<'_>, plan: &Plan) -> Summary {
        let (message, names) = (answer.trigger.message.clone(), answer.target.names.clone());
        let id = meta.id.clone();
        let mut summary = Summary::of_plan(message, names, plan, answer.dry_run, id, &self.kinds);
        summary.mode = (answer.target.mode != Mode::Auto).then_some(answer.target.mode.as_str());
        summary
    }

    /// A run refused before it read its target (the gate), or as it was about to act (a brake that landed
    /// meanwhile): nothing acted.
    fn refused(
        &self,
        meta: &mut RequestMeta,
        answer: &Answer<'_>,
        refusal: Refusal,
        read: bool,
        tripped: Option<Tripped>,
    ) -> Run {
        let plan = Plan {
            refused: Some(refusal),
            ..Plan::default()
        };
        meta.note("plan", &plan);
        tracing::info!(refused = ?plan.refused, read, "refused");
        let summary = self.summary_of(meta, answer, &plan);
        self.counted(Run::nothing_done(summary, read, tripped))
    }

    /// The run that acted, with the check of its step scheduled (judged as the step's kind declares) and
    /// counted as a step of its episode.
    fn after_acting(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        step: &Step<'_>,
        done: Done,
    ) -> Run {
        let episode = step.episode.unwrap_or(&meta.id).to_owned();
        let judged = step.kind.effect().judged;
        // A step judged by its instances coming back is checked whatever AWS answered: an instance whose act
        // failed is still down at its check, and goes to the next step (or escalates) like one the act did
        // not fix.
        let checked = done.acted > 0 || judged == Judged::InstancesBack;
        let check = checked.then(|| self.check_of(meta, target, step, &episode, &done));
        let name = step.kind.name();
        self.metrics
            .ladder_steps
            .get_or_create(&crate::metrics::StepLabels {
                step: name.to_owned(),
            })
            .inc_by(u64::from(done.acted));
        let mut run = self.counted(Run {
            check,
            acted: done.acted,
            ..Run::nothing_done(done.summary, true, done.tripped)
        });
        if checked {
            let mut write = EpisodeWrite::step(&episode, &target.id, name);
            write.relapsed = done.relapsed;
            meta.note("episode", serde_json::json!({"id": episode, "step": name}));
            run.episode = Some(write);
        }
        run
    }

    /// The check job of a step that acted, judged as its kind declares: each instance back (for which the
    /// instances it was to act on are checked, whatever AWS answered), or the target's capacity back.
    fn check_of(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        step: &Step<'_>,
        episode: &str,
        done: &Done,
    ) -> NewJob {
        let effect = step.kind.effect();
        let acted_on = done.summary.acted_on();
        let succeeded = || {
            done.decision
                .steps
                .iter()
                .filter(|act| acted_on.iter().any(|id| id == act.subject.id()))
        };
        // The instances the acts are for: an act on the whole target is for those it covers.
        let for_instances = |act: &Act| {
            act.instances()
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let count = succeeded().map(|act| act.instances().len()).sum::<usize>();
        let acted: Vec<String> = match effect.judged {
            // Those it attempted (whatever AWS answered); a step it stopped before is no step of the episode.
            Judged::InstancesBack => done
                .decision
                .steps
                .iter()
                .filter(|act| {
                    done.summary
                        .actions
                        .iter()
                        .any(|entry| entry.subject == act.subject)
                })
                .flat_map(for_instances)
                .collect(),
            Judged::CapacityBack => succeeded().flat_map(for_instances).collect(),
        };
        let done_well: Vec<String> = succeeded().flat_map(for_instances).collect();
        let failed = acted
            .iter()
            .filter(|id| !done_well.contains(id))
            .cloned()
            .collect();
        let pending = done
            .summary
            .actions
            .iter()
            .filter_map(|act| {
                Some(check::PendingAct {
                    subject: act.subject.clone(),
                    action: act.action.clone(),
                    handle: act.handle.clone()?,
                    covers: act.covers.clone(),
                })
            })
            .collect();
        let acted = check::Acted {
            decision: &done.decision,
            episode,
            index: step.index,
            registered: done.registered.clone(),
            acted,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            pending,
            alarm: done.alarm.clone(),
            needs_approval: done.needs_approval.clone(),
            failed,
            named: done.named.clone(),
        };
        self.check_job(meta, target, step.kind.name(), effect, acted)
    }
}

/// A ladder's next step of a rule changed since its episode's earlier step ran (another fingerprint): refused,
/// since the ladder it would go on with is not the one that began.
fn step_of_changed_rule(trigger: &Trigger, target: &Target) -> Option<Refusal> {
    let next = trigger.resume.step.as_ref()?;
    let (decided, now) = (
        next.rule_fingerprint.as_ref()?,
        target.fingerprint.as_ref()?,
    );
    (decided != now).then(|| Refusal::RuleChanged {
        run: next.after.clone(),
        decided: decided.clone(),
        now: now.clone(),
    })
}

/// Notes what a run starts from: the dead attempt it takes over, and for a rule's run, the rule's fingerprint.
fn note_start(meta: &mut RequestMeta, target: &Target, previous: Option<&str>) {
    if let Some(previous) = previous {
        tracing::warn!(previous, "taking over a delivery whose first attempt died");
    }
    if let Some(fingerprint) = &target.fingerprint {
        meta.note("rule_fingerprint", fingerprint);
    }
}

/// Whether `target`'s decisions wait for approvers: in approve mode, and for a business metric's alarm
/// (noted) even when its rule acts on its own.
fn wants_approvers(meta: &mut RequestMeta, trigger: &Trigger, target: &Target) -> bool {
    match &trigger.needs_approval {
        Some(why) if target.mode == Mode::Auto => {
            meta.note("business_metric", why);
            true
        }
        _ => target.mode == Mode::Approve,
    }
}

/// What started a rule's run, for its check: an earlier step's alarm or alerts, the webhook alerts the run
/// is for, or the CloudWatch alarm its message is (none for a target's run, or a run nothing watchable
/// started).
fn alarm_of(trigger: &Trigger, target: &Target) -> Option<Started> {
    if !target.is_rule() {
        return None;
    }
    if let Some(next) = &trigger.resume.step {
        return next.alarm.clone().map(|name| Started {
            name,
            alerts: next.alerts.clone(),
        });
    }
    if !trigger.alerts.is_empty() {
        return Some(Started {
            name: crate::untrusted::bounded(&trigger.message),
            alerts: trigger.alerts.clone(),
        });
    }
    crate::rules::AlertFacts::from_cloudwatch(&trigger.message).map(|alarm| Started {
        name: alarm.name,
        alerts: Vec::new(),
    })
}

/// What a rule's run reads: what its alert selected, or for a resumed step or an approval, the instances
/// it may act on.
fn resources_of(trigger: &Trigger) -> Resources {
    match (&trigger.resources, only_of(trigger)) {
        (Resources::None, Some((only, _))) => Resources::Instances(only.to_vec()),
        (resources, _) => resources.clone(),
    }
}

/// The only instances a run may act on, and the skip of the rest: an approval's, or a ladder step's.
fn only_of(trigger: &Trigger) -> Option<(&[String], SkipReason)> {
    match (&trigger.resume.approved, &trigger.resume.step) {
        (Some(approved), _) => Some((approved.instances.as_slice(), SkipReason::NotApproved)),
        (None, Some(next)) => Some((next.instances.as_slice(), SkipReason::NotInEpisode)),
        (None, None) => None,
    }
}
