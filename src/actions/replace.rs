//! `replace`: an instance is replaced, as the key `action` says: terminated (EC2 TerminateInstances), or
//! handed to its Auto Scaling group (SetInstanceHealth Unhealthy, respecting the group's grace period), or
//! either (`auto`: handed when it is in a group). It is judged by the target's capacity coming back.

use std::sync::Arc;

use serde::Deserialize;

use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Started};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FleetError, InstanceView};

/// The `replace` action kind, replacing as its `action` key says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replace {
    /// How it replaces an instance.
    pub how: How,
}

/// How a broken instance is replaced: the key `action` on a target, or its default under `[remediation]`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// EC2 TerminateInstances (whatever launched the instance replaces it).
    #[default]
    Terminate,
    /// Auto Scaling SetInstanceHealth Unhealthy, respecting the group's grace period: the group replaces
    /// the instance by its own rules. An instance in no group is skipped.
    AsgUnhealthy,
    /// `asg-unhealthy` for instances in an Auto Scaling group, `terminate` for the others.
    Auto,
}

/// The key that says how an instance is replaced.
const KEY: &str = "action";
/// The call that terminates an instance.
const TERMINATE: &str = "terminate";
/// The call that hands an instance to its Auto Scaling group.
const ASG_UNHEALTHY: &str = "asg-unhealthy";

impl Action for Replace {
    fn name(&self) -> &'static str {
        "replace"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: false,
            removes_capacity: true,
            adds_capacity: false,
            judged: Judged::CapacityBack,
            checked_after: None,
        }
    }

    fn verb(&self) -> &'static str {
        "replace"
    }

    fn done(&self) -> &'static str {
        "replaced"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:TerminateInstances", "autoscaling:SetInstanceHealth"]
    }

    fn described(&self) -> String {
        let how = match self.how {
            How::Terminate => "terminate",
            How::AsgUnhealthy => "asg-unhealthy",
            How::Auto => "auto",
        };
        format!("replace (action {how})")
    }

    fn keys(&self) -> &'static [&'static str] {
        &[KEY]
    }

    fn with_keys(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        let how = keys.get::<How>(KEY, |_| Ok(()))?.unwrap_or(self.how);
        Ok(Some(Arc::new(Self { how })))
    }

    fn needs_groups(&self) -> bool {
        self.how != How::Terminate
    }

    fn choose(&self, instance: &InstanceView) -> Result<&'static str, SkipReason> {
        match (self.how, &instance.auto_scaling_group) {
            (How::Terminate, _) | (How::Auto, None) => Ok(TERMINATE),
            (How::AsgUnhealthy | How::Auto, Some(_)) => Ok(ASG_UNHEALTHY),
            (How::AsgUnhealthy, None) => Err(SkipReason::NotInAutoScalingGroup),
        }
    }

    fn listed_as(&self, call: &str) -> &'static str {
        if call == ASG_UNHEALTHY {
            "asg-unhealthy-instance-ids"
        } else {
            "terminated-instance-ids"
        }
    }

    fn lists(&self) -> &'static [&'static str] {
        &["terminated-instance-ids", "asg-unhealthy-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        let id = on.act.subject.id();
        let call = if on.act.action == ASG_UNHEALTHY {
            on.fleet.mark_unhealthy(id)
        } else {
            on.fleet.terminate(id)
        };
        Box::pin(async move { call.await.map(Started::Done) })
    }
}
