//! What a finished run tells besides its answer: the metrics it counts and the notifications it sends.

use super::{Engine, Run, plan};
use crate::config::NotifyEvent;
use crate::metrics::{DryRunLabels, Metrics, RunLabels, SkipLabels};
use crate::notify::Event;

impl Engine {
    /// The run's events: it acted, it was refused for news about the target (not a standing cooldown,
    /// pause or open breaker, answered to every alert while it lasts), it opened the breaker.
    pub(super) fn events(&self, target: &str, run: &Run, audit_id: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let summary = &run.summary;
        if run.acted > 0 {
            let mut replaced = summary.terminated_instance_ids.clone();
            replaced.extend(summary.asg_unhealthy_instance_ids.iter().cloned());
            let text = format!("replaced {}", replaced.join(", "));
            events.push(Event::new(NotifyEvent::Acted, target, text, audit_id));
        }
        if let (Some(sentence), Some(rule)) = (&summary.refused, summary.refused_rule)
            && !plan::STANDING_RULES.contains(&rule)
        {
            let text = sentence.clone();
            events.push(Event::new(NotifyEvent::Refused, target, text, audit_id));
        }
        if let Some(tripped) = &run.tripped {
            let text = tripped.reason.clone();
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
        let by_dry_run = DryRunLabels { dry_run };
        let terminated = summary.terminated_instance_ids.len() as u64;
        let marked = summary.asg_unhealthy_instance_ids.len() as u64;
        let counters = &self.metrics;
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
