//! What a finished run comes to: its record (with the delivery's settlement and the notifications it sends,
//! committed together), and the metrics it counts.

use super::{Engine, EngineError, Reply, Summary, Tripped, plan, quiet};
use crate::audit::{
    AuditRecord, DeliveryKey, DeliveryUpdate, EpisodeWrite, NewApproval, NewJob, Outcome,
    RequestMeta,
};
use crate::config::{Mode, NotifyEvent};
use crate::contract::ANSWERED;
use crate::events::Event;
use crate::metrics::{DryRunLabels, Metrics, RunLabels, SkipLabels};

/// What one remediation run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The answer.
    pub summary: Summary,
    /// Instances actually replaced (terminated or handed to their Auto Scaling group).
    pub acted: u32,
    /// Whether the target was read (a refusal by a pause, the breaker or the cooldown reads nothing).
    pub read: bool,
    /// Set when this run opened the target's breaker: what tripped it and why.
    pub tripped: Option<Tripped>,
    /// The recovery check of a run that acted, added in the commit of the run's record.
    pub check: Option<NewJob>,
    /// The decision a run in approve mode holds for approvers, written with the run's record.
    pub hold: Option<NewApproval>,
    /// The run's step in an episode (it acted, or it is a ladder's later step), written with its record.
    pub episode: Option<EpisodeWrite>,
}

impl Run {
    /// A run that acted on nothing (refused, planned, a dry run): its summary, whether it read the target,
    /// and the breaker it opened, if any.
    pub(super) fn nothing_done(summary: Summary, read: bool, tripped: Option<Tripped>) -> Self {
        Self {
            summary,
            acted: 0,
            read,
            tripped,
            check: None,
            hold: None,
            episode: None,
        }
    }

    /// The audit outcome of this run.
    pub fn outcome(&self) -> Outcome {
        if self.summary.refused.is_some() {
            Outcome::Refused
        } else if self.hold.is_some() || self.summary.approval.is_some() {
            // A run that joined a decision already held is held too, by that decision.
            Outcome::Held
        } else if self.would_act() {
            Outcome::WouldAct
        } else {
            Outcome::Completed
        }
    }

    /// Whether this run, in observe mode, decided to act on instances it left alone.
    fn would_act(&self) -> bool {
        self.summary.mode == Some(Mode::Observe.as_str()) && !self.summary.acted_on().is_empty()
    }
}

impl Engine {
    /// The run's record, its delivery's settlement and the notification jobs of its events: written in one
    /// commit by `run`.
    pub(super) fn finished(
        &self,
        mut meta: RequestMeta,
        result: &Result<Run, EngineError>,
        delivery: Option<DeliveryKey>,
        tripped: Option<Tripped>,
        audit_id: &str,
    ) -> (AuditRecord, Option<DeliveryUpdate>, Vec<NewJob>) {
        let (record, settle) = match result {
            Ok(run) => {
                meta.note("answer", &run.summary);
                let answer = Reply::Summary(Box::new(run.summary.clone()));
                (
                    meta.into_record(run.outcome(), ANSWERED, None, run.acted),
                    delivery.map(|key| key.complete(answer.redelivered())),
                )
            }
            Err(err) => {
                self.metrics
                    .count_rejection(meta.source.as_str(), err.code());
                meta.note("error", err.to_string());
                (
                    meta.into_record(Outcome::Rejected, err.status(), Some(err.code()), 0),
                    delivery.map(DeliveryKey::release),
                )
            }
        };
        let events = match (result, &record.target, tripped) {
            (Ok(run), Some(target), _) => self.events(target, run, audit_id),
            (Err(_), Some(target), Some(tripped)) => vec![Event::new(
                NotifyEvent::BreakerTripped,
                target,
                tripped.reason,
                audit_id,
            )],
            _ => Vec::new(),
        };
        let place = record.account.clone().zip(record.region.clone());
        let step = result
            .as_ref()
            .ok()
            .and_then(|run| run.hold.as_ref())
            .map_or(String::new(), |hold| {
                // Its episode and step, not the instances: a storm at one step is quieted as at the first.
                let next = &hold.body["ladder"];
                format!("{}#{}", next["episode"], next["index"])
            });
        let events = self.unquieted(events, place.as_ref(), &step);
        let mut jobs = self.jobs_of(&events);
        if let Ok(Run {
            check: Some(check), ..
        }) = result
        {
            jobs.push(check.clone());
        }
        (record, settle, jobs)
    }

    /// The events worth sending: a target's "would have acted" notice once per `quiet::ROUTINE_EVERY`, and
    /// its "held" message once per that interval (or half the decisions' time to wait, when shorter) for one
    /// ladder `step`; a new step's decision, escalations, resolutions and the breaker are never quieted.
    pub(super) fn unquieted(
        &self,
        events: Vec<Event>,
        place: Option<&(String, String)>,
        step: &str,
    ) -> Vec<Event> {
        let now = std::time::Instant::now();
        // No longer than half a decision's wait: past that, an alert holds a fresh decision (it no longer joins
        // the waiting one), and its approvers must hear of it.
        let half_ttl = std::time::Duration::from_secs(self.config.approvals.ttl_secs / 2);
        events
            .into_iter()
            .filter(|event| {
                let (every, step) = match event.event {
                    NotifyEvent::WouldAct => (quiet::ROUTINE_EVERY, ""),
                    NotifyEvent::Held => (quiet::ROUTINE_EVERY.min(half_ttl), step),
                    _ => return true,
                };
                // Keyed by the event, the target's place and name (one name in two accounts is two
                // targets) and the ladder step.
                let key = format!("{}/{place:?}/{}/{step}", event.event.as_str(), event.target);
                self.quiet.may_send(&key, every, now)
            })
            .map(|event| event.at(place))
            .collect()
    }

    /// The run's events: it acted, it was refused for news about the target (not a standing cooldown,
    /// pause or open breaker, answered to every alert while it lasts), it opened the breaker.
    pub(super) fn events(&self, target: &str, run: &Run, audit_id: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let summary = &run.summary;
        let replaced = summary.acted_on();
        if run.acted > 0 {
            let text = format!("{} {}", summary.verb().0, replaced.join(", "));
            events.push(Event::new(NotifyEvent::Acted, target, text, audit_id));
        } else if let (Some(hold), Some(approval)) = (&run.hold, &summary.approval) {
            let text = format!(
                "approval needed: would {} {}; expires at {}",
                approval.verb,
                approval.would_replace.join(", "),
                approval.expires_at
            );
            let mut event = Event::new(NotifyEvent::Held, target, text, audit_id);
            event.approval = Some(crate::events::Ask::of(approval, hold));
            events.push(event);
        } else if run.would_act() {
            let text = format!(
                "observe mode: would have {} {}; nothing was touched",
                summary.verb().0,
                replaced.join(", ")
            );
            events.push(Event::new(NotifyEvent::WouldAct, target, text, audit_id));
        }
        if let (Some(sentence), Some(rule)) = (&summary.refused, summary.refused_rule)
            && !plan::STANDING_RULES.contains(&rule)
        {
            let text = sentence.clone();
            events.push(Event::new(NotifyEvent::Refused, target, text, audit_id));
        }
        if let Some(tripped) = &run.tripped {
            let text = tripped.reason.clone();
            if tripped.trip == super::Trip::Relapsing {
                self.metrics.count_escalation(tripped.trip.as_str());
                let mut escalated =
                    Event::new(NotifyEvent::Escalated, target, text.clone(), audit_id);
                if let Some(episode) = &run.episode {
                    escalated = escalated.of_episode(&episode.episode);
                }
                events.push(escalated);
            }
            events.push(Event::new(
                NotifyEvent::BreakerTripped,
                target,
                text,
                audit_id,
            ));
        }
        events
    }

    /// The notification jobs of `events`.
    pub(super) fn jobs_of(&self, events: &[Event]) -> Vec<crate::audit::NewJob> {
        events
            .iter()
            .flat_map(|event| self.notifier.jobs_for(event))
            .collect()
    }

    /// Counts a finished run in the metrics.
    pub(super) fn counted(&self, run: Run) -> Run {
        let summary = &run.summary;
        let dry_run = Metrics::flag(summary.dry_run);
        let outcome = run.outcome().as_str();
        let runs = RunLabels { outcome, dry_run };
        self.metrics.remediation_runs.get_or_create(&runs).inc();
        if let Some(rule) = &summary.rule {
            let labels = crate::metrics::RuleRunLabels {
                rule: rule.clone(),
                outcome,
            };
            self.metrics.rule_runs.get_or_create(&labels).inc();
        }
        let by_dry_run = DryRunLabels { dry_run };
        let terminated = summary.list("terminated-instance-ids").len() as u64;
        let marked = summary.list("asg-unhealthy-instance-ids").len() as u64;
        let counters = &self.metrics;
        for act in summary.actions.iter().filter(|act| act.error.is_none()) {
            let labels = crate::metrics::ActedLabels {
                action: act.action.clone(),
                dry_run,
            };
            counters.instances_acted.get_or_create(&labels).inc();
        }
        counters
            .instances_terminated
            .get_or_create(&by_dry_run)
            .inc_by(terminated);
        counters
            .instances_marked_unhealthy
            .get_or_create(&by_dry_run)
            .inc_by(marked);
        if let Some(rule) = summary.refused_rule {
            Metrics::count(&self.metrics.refusals, rule);
        }
        for skip in &summary.skipped {
            let reason = skip.reason.as_str();
            counters
                .instances_skipped
                .get_or_create(&SkipLabels { reason })
                .inc();
        }
        run
    }
}
