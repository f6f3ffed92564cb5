//! `replace`: an instance is replaced, as the target's `action` says: terminated (EC2 TerminateInstances), or
//! handed to its Auto Scaling group (SetInstanceHealth Unhealthy, respecting the group's grace period), or
//! either (`auto`: handed when it is in a group). It is judged by the target's capacity coming back.

use crate::config::Action as How;
use crate::engine::action::{Action, Effect, Judged, On, Started};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FleetError, InstanceView};

/// The `replace` action kind.
#[derive(Debug, Clone, Copy)]
pub struct Replace;

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
            keeps_instance: false,
            removes_capacity: true,
            judged: Judged::CapacityBack,
        }
    }

    fn done(&self) -> &'static str {
        "replaced"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:TerminateInstances", "autoscaling:SetInstanceHealth"]
    }

    fn choose(&self, instance: &InstanceView, replace_by: How) -> Result<&'static str, SkipReason> {
        match (replace_by, &instance.auto_scaling_group) {
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
        let id = on.act.instance_id.as_str();
        let call = if on.act.action == ASG_UNHEALTHY {
            on.fleet.mark_unhealthy(id)
        } else {
            on.fleet.terminate(id)
        };
        Box::pin(async move { call.await.map(Started::Done) })
    }
}
