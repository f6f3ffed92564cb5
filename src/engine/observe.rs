//! The observe stage: what AWS shows of a target now (each instance's health, EC2 facts and, when the
//! target's action needs it, Auto Scaling membership), when a run last acted on it, and, for a takeover, what
//! the dead attempt it finishes had decided.

use time::OffsetDateTime;

use super::decide::Decision;
use super::port::{FailureKind, HealthState, Snapshot};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{RequestMeta, SharedClock};
use crate::config::Action;

/// What a run saw before deciding.
#[derive(Debug)]
pub(super) struct Observation {
    /// The target's health and each instance's facts.
    pub snapshot: Snapshot,
    /// When a run (other than the dead attempt taken over) last acted on the target.
    pub last_action_at: Option<OffsetDateTime>,
    /// The database's clock, read with it: every time this run compares or records is taken from it.
    pub clock: SharedClock,
    /// The dead attempt this run takes over, with its stored decision (`None` when it died before deciding).
    pub takeover: Option<(String, Option<Decision>)>,
}

impl Engine {
    /// Reads `target` and notes what was seen. `previous` is a dead attempt this run takes over.
    pub(super) async fn observe(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        previous: Option<&str>,
    ) -> Result<Observation, EngineError> {
        let mut snapshot =
            target
                .fleet
                .snapshot(&target.fleet_ref)
                .await
                .map_err(|err| match err.kind {
                    FailureKind::NotFound => EngineError::TargetNotFound(target.fleet_ref.clone()),
                    _ => EngineError::Fleet(err),
                })?;
        if target.action != Action::Terminate {
            find_groups(target, &mut snapshot).await?;
        }
        meta.note("seen", &snapshot);
        let last = self.audit.last_action(&target.id, previous).await?;
        let takeover = match previous {
            Some(previous) => Some((previous.to_owned(), self.decision_of(previous).await?)),
            None => None,
        };
        Ok(Observation {
            snapshot,
            last_action_at: last.at,
            clock: last.clock,
            takeover,
        })
    }

    /// The decision a run stored with its intent, if it got that far.
    pub(super) async fn decision_of(&self, run_id: &str) -> Result<Option<Decision>, EngineError> {
        let Some(body) = self.audit.decision(run_id).await? else {
            return Ok(None);
        };
        // A decision that cannot be read must not lift the cap it set: the run stops here instead.
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|err| EngineError::UnreadableDecision(run_id.to_owned(), err.to_string()))
    }
}

/// Fills in the Auto Scaling group of every instance that could be acted on (OutOfService and known to
/// EC2): one DescribeAutoScalingInstances call per run for up to 50 of them.
async fn find_groups(target: &Target, snapshot: &mut Snapshot) -> Result<(), EngineError> {
    let candidates: Vec<String> = snapshot
        .instances
        .iter()
        .filter(|i| i.health.state == HealthState::OutOfService && i.ec2.is_some())
        .map(|i| i.instance_id.clone())
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let mut groups = target
        .fleet
        .auto_scaling_groups(&candidates)
        .await
        .map_err(EngineError::Fleet)?;
    for instance in &mut snapshot.instances {
        instance.auto_scaling_group = groups.remove(&instance.instance_id);
    }
    Ok(())
}
