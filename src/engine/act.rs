//! The act stage: the run's intent (its record and its decision) made durable before any AWS write, then each
//! step through the target's `Fleet` port, one failure not hiding the others, and what AWS answered noted.

use serde::Serialize;

use super::action::{On, Started};
use super::decide::Decided;
use super::gate::brakes_refusal;
use super::plan::{Act, Refusal};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{InstanceBrake, Outcome, RequestMeta};
use crate::contract::{ActEntry, ActionError, Subject, Summary};

/// The result of one act (its kind's call: TerminateInstances, SetInstanceHealth, RebootInstances, ...), as
/// recorded in the audit trail.
#[derive(Debug, Serialize)]
struct ActionResult<'a> {
    /// The instance acted on; `None` for an act on the whole target.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    /// The whole target acted on, for an act on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    action: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_scaling_group: Option<&'a str>,
    /// What AWS answered: the instance's new state, or the health status set.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_state: Option<String>,
    /// The handle of an act under way, which the step's check polls.
    #[serde(skip_serializing_if = "Option::is_none")]
    handle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Why a run stopped between two acts when its brakes could not be read.
const BRAKES_UNREADABLE: &str = "brakes-unreadable";

/// The state of an act under way, until its check polls it done.
pub(super) const PENDING: &str = "pending";

/// What the act stage came to.
#[derive(Debug)]
pub(super) enum Acted {
    /// The intent was written and the steps carried out: how many instances were acted on.
    Replaced(u32),
    /// The target was paused or its breaker opened before the intent was written: nothing was done.
    Refused(Refusal),
}

impl Engine {
    /// Writes the intent, then carries out every step of the decision on `target`, filling the summary's
    /// acted-on lists and errors with what really happened; how many instances were replaced. A pause or an
    /// open breaker seen in the intent's own commit refuses the run before any AWS write; one seen before a
    /// later step stops the run there.
    pub(super) async fn act(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        decided: Decided<'_>,
        summary: &mut Summary,
    ) -> Result<Acted, EngineError> {
        let Decided {
            decision,
            budget_gate,
            clock,
            ..
        } = decided;
        let intended = u32::try_from(decision.steps.len()).unwrap_or(u32::MAX);
        meta.acted_at = Some(clock.now());
        let body = serde_json::to_string(&decision).unwrap_or_default();
        let braked = self
            .audit
            .put_intent(meta.record(Outcome::Acting, 0, None, intended), body)
            .await?;
        drop(budget_gate);
        if let Some(refusal) = braked.and_then(brakes_refusal) {
            meta.acted_at = None;
            return Ok(Acted::Refused(refusal));
        }
        summary.take_acted_on();
        let mut results = Vec::with_capacity(decision.steps.len());
        for step in &decision.steps {
            // The intent's commit checked the target's brakes; an instance's own brake is checked before every
            // act, the first too (one small read each).
            if let Some(rule) = self.stops_before_next(target, step).await {
                meta.note("stopped", rule);
                break;
            }
            results.push(self.step(target, step, summary, &decision.attempts).await);
        }
        meta.note("actions", &results);
        meta.acted_at = Some(clock.now());
        let acted = summary.acted_on().len();
        Ok(Acted::Replaced(u32::try_from(acted).unwrap_or(u32::MAX)))
    }

    /// Why a run stops before its next AWS write, `next`: a brake (pause, silence, open breaker) that landed
    /// meanwhile on its target, or on `next`'s instance (`instance-paused`, `instance-silenced`), or brakes that
    /// cannot be read (the store failing): the run then ends recording what it did rather than failing, so that
    /// its acts count against the cooldown, the budgets and the speed limit.
    async fn stops_before_next(&self, target: &Target, next: &Act) -> Option<&'static str> {
        match self.audit.brakes_of(&target.id).await {
            Ok(brakes) => {
                let instance = next
                    .subject
                    .instance()
                    .and_then(|id| brakes.instances.get(id).copied());
                let rule = match (instance, brakes_refusal(brakes)) {
                    (_, Some(refusal)) => refusal.rule(),
                    (Some(InstanceBrake::Paused), None) => "instance-paused",
                    (Some(InstanceBrake::Silenced), None) => "instance-silenced",
                    (None, None) => return None,
                };
                tracing::warn!(rule, "stopped before the next AWS write");
                Some(rule)
            }
            Err(err) => {
                tracing::error!(error = %err, "the brakes cannot be read: stopped before the next AWS write");
                Some(BRAKES_UNREADABLE)
            }
        }
    }

    /// One act through its kind, its outcome added to `summary`.
    async fn step<'a>(
        &self,
        target: &Target,
        step: &'a Act,
        summary: &mut Summary,
        resumes: &[String],
    ) -> ActionResult<'a> {
        let instance_id = step.subject.id();
        let operation = step.action.as_str();
        let (list, result) = match self.kinds.get(step.kind()) {
            Some(kind) => {
                let on = On {
                    fleet: target.fleet.as_ref(),
                    target: &target.fleet_ref,
                    act: step,
                    resumes,
                };
                (kind.listed_as(operation), kind.start(on).await)
            }
            None => (
                "",
                Err(super::port::FleetError::new(
                    super::port::FailureKind::Permanent,
                    "act",
                    None,
                    format!("no action kind {:?} is registered", step.kind()),
                )),
            ),
        };
        let (new_state, error, handle) = match result {
            Ok(started) => {
                let (new_state, handle) = match started {
                    Started::Done(state) => (state, None),
                    Started::Pending(handle) => (PENDING.to_owned(), Some(handle)),
                };
                tracing::warn!(instance_id, operation, new_state, handle, group = ?step.auto_scaling_group, "acted");
                summary.list_mut(list).push(instance_id.to_owned());
                (Some(new_state), None, handle)
            }
            Err(err) => {
                tracing::error!(instance_id, operation, error = %err, "action failed");
                summary.errors.push(ActionError {
                    subject: step.subject.clone(),
                    error: err.to_string(),
                    refused: err.kind == super::port::FailureKind::Refused,
                });
                (None, Some(err.to_string()), None)
            }
        };
        summary.actions.push(ActEntry {
            subject: step.subject.clone(),
            covers: step.covers.clone(),
            action: operation.to_owned(),
            state: new_state.clone(),
            handle: handle.clone(),
            error: error.clone(),
        });
        let resource = match &step.subject {
            Subject::Resource(resource) => Some(resource.as_str()),
            Subject::InstanceId(_) => None,
        };
        ActionResult {
            instance_id: step.subject.instance(),
            resource,
            action: operation,
            kind: step.kind(),
            auto_scaling_group: step.auto_scaling_group.as_deref(),
            new_state,
            handle,
            error,
        }
    }
}
