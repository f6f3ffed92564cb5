//! The observe stage: what AWS shows of a target now (each instance's health and EC2 facts, and for the
//! instances that could be acted on their Auto Scaling groups and whether those are changing), when a run last
//! acted on it, and, for a takeover, what the dead attempt it finishes had decided.

use time::OffsetDateTime;

use super::change::Changes;
use super::decision::Decision;
use super::port::{FailureKind, Health, HealthState, InstanceView, Resources, Snapshot};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{RequestMeta, SharedClock};

/// What a run saw before deciding.
#[derive(Debug)]
pub(super) struct Observation {
    /// The target's health and each instance's facts.
    pub snapshot: Snapshot,
    /// What the candidates' Auto Scaling groups show of a change under way.
    pub changes: Changes,
    /// When a run (other than the dead attempt taken over) last acted on the target.
    pub last_action_at: Option<OffsetDateTime>,
    /// The database's clock, read with it: every time this run compares or records is taken from it.
    pub clock: SharedClock,
    /// The dead attempt this run takes over, with its stored decision (`None` when it died before deciding).
    pub takeover: Option<(String, Option<Decision>)>,
}

impl Engine {
    /// Reads `target` and notes what was seen. `previous` is a dead attempt this run takes over; `except`,
    /// the runs whose action is no cooldown for this one.
    pub(super) async fn observe(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        previous: Option<&str>,
        except: &[&str],
        resources: &Resources,
    ) -> Result<Observation, EngineError> {
        // The last action is read before the target: a run that acts after this read changes it, so the
        // decide stage can tell that what it read may be out of date.
        let last = self.audit.last_action(&target.id, except).await?;
        let (snapshot, changes) = if target.is_rule() {
            (rule_snapshot(target, resources).await?, Changes::NotRead)
        } else {
            let mut snapshot = target
                .fleet
                .snapshot(&target.fleet_ref)
                .await
                .map_err(|err| match err.kind {
                    FailureKind::NotFound => EngineError::TargetNotFound(target.fleet_ref.clone()),
                    _ => EngineError::Fleet(err),
                })?;
            let changes = find_groups(target, &mut snapshot).await?;
            (snapshot, changes)
        };
        meta.note("seen", &snapshot);
        if let Some(noted) = changes.noted() {
            meta.note("seen_changes", noted);
        }
        let takeover = match previous {
            Some(previous) => Some((previous.to_owned(), self.decision_of(previous).await?)),
            None => None,
        };
        Ok(Observation {
            snapshot,
            changes,
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

/// What a rule's run sees: each instance it selects as its alert reports it (out of service: the alert is
/// about it), with EC2's facts (none for an id EC2 does not know, which the plan skips). A selection that
/// comes to nothing is refused: a rule never acts on "all". A rule on no instance sees none.
async fn rule_snapshot(target: &Target, resources: &Resources) -> Result<Snapshot, EngineError> {
    if target.on_alert {
        // What the alert names beside instances is acted on as it is: no instance to read.
        return Ok(Snapshot {
            target: target.id.name.clone(),
            instances: Vec::new(),
        });
    }
    let mut facts = target
        .fleet
        .instances(resources)
        .await
        .map_err(EngineError::Fleet)?;
    let mut ids: Vec<String> = match resources {
        Resources::Instances(ids) => ids.clone(),
        _ => facts.keys().cloned().collect(),
    };
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(EngineError::NoResource {
            rule: target.id.name.clone(),
            why: nothing_selected(resources),
        });
    }
    let instances = ids
        .into_iter()
        .map(|instance_id| InstanceView {
            health: Health {
                state: HealthState::OutOfService,
                reported: "alerting".to_owned(),
                reason_code: Some("Alert".to_owned()),
                description: Some(format!(
                    "rule {:?} matched an alert about it",
                    target.id.name
                )),
            },
            ec2: facts.remove(&instance_id),
            auto_scaling_group: None,
            instance_id,
        })
        .collect();
    Ok(Snapshot {
        target: target.id.name.clone(),
        instances,
    })
}

/// Why a rule's selection came to nothing, in words.
fn nothing_selected(resources: &Resources) -> String {
    match resources {
        Resources::Tagged { key, value } => format!(
            "no running instance is tagged {key}={value} (instances = \"tag:...\")"
        ),
        _ => "the alert names no instance: it has no InstanceId dimension, nor an instance or instance_id \
              label holding an EC2 instance id (instances = \"alert\")"
            .to_owned(),
    }
}

/// Fills in the Auto Scaling group of every instance that could be acted on (OutOfService and known to
/// EC2): one DescribeAutoScalingInstances call per run for up to 50 of them; then reads whether those groups
/// are changing (one DescribeAutoScalingGroups call, and one DescribeScalingActivities and one
/// DescribeInstanceRefreshes per group). A target with nothing to act on reads neither. A read that fails for
/// a moment fails the run (the sender retries); one that is denied makes the run refuse `change-unknown`.
async fn find_groups(target: &Target, snapshot: &mut Snapshot) -> Result<Changes, EngineError> {
    let candidates: Vec<String> = snapshot
        .instances
        .iter()
        .filter(|i| i.health.state == HealthState::OutOfService && i.ec2.is_some())
        .map(|i| i.instance_id.clone())
        .collect();
    if candidates.is_empty() {
        return Ok(Changes::NotRead);
    }
    let mut groups = match target.fleet.auto_scaling_groups(&candidates).await {
        Ok(groups) => groups,
        // A kind that acts through Auto Scaling needs the membership to plan at all, and a read that failed
        // for a moment is worth a retry: the run fails.
        Err(err)
            if target.ladder.iter().any(|kind| kind.needs_groups())
                || err.kind == FailureKind::Transient =>
        {
            return Err(EngineError::Fleet(err));
        }
        // A termination needs it only to tell whether a change is under way: denied, it cannot tell.
        Err(error) => {
            return Ok(Changes::Unknown {
                groups: Vec::new(),
                error,
            });
        }
    };
    for instance in &mut snapshot.instances {
        instance.auto_scaling_group = groups.remove(&instance.instance_id);
    }
    let mut names: Vec<String> = snapshot
        .instances
        .iter()
        .filter_map(|i| i.auto_scaling_group.clone())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(Changes::NotRead);
    }
    Ok(match target.fleet.group_changes(&names).await {
        Ok(changes) => Changes::Read(changes),
        Err(error) if error.kind == FailureKind::Transient => {
            return Err(EngineError::Fleet(error));
        }
        Err(error) => Changes::Unknown {
            groups: names,
            error,
        },
    })
}
