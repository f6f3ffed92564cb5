//! `reboot`: an instance is rebooted (EC2 RebootInstances), or started when it is stopped (StartInstances,
//! since AWS refuses to reboot a stopped instance). It keeps the instance, its disks and its place, and is
//! judged by each rebooted instance being InService again after the target's `reboot_verify_secs`; those
//! still down go to the ladder's next step.

use crate::config::Action as ReplaceBy;
use crate::engine::action::{Action, Effect, Judged, On, Started};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FleetError, InstanceView};

/// The `reboot` action kind.
#[derive(Debug, Clone, Copy)]
pub struct Reboot;

/// The call that starts a stopped instance.
const START: &str = "start";

impl Action for Reboot {
    fn name(&self) -> &'static str {
        "reboot"
    }

    fn effect(&self) -> Effect {
        Effect {
            keeps_instance: true,
            removes_capacity: false,
            judged: Judged::InstancesBack,
        }
    }

    fn done(&self) -> &'static str {
        "rebooted"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:RebootInstances", "ec2:StartInstances"]
    }

    fn choose(&self, instance: &InstanceView, _: ReplaceBy) -> Result<&'static str, SkipReason> {
        let stopped = instance
            .ec2
            .as_ref()
            .is_some_and(|ec2| ec2.state == "stopped");
        Ok(if stopped { START } else { "reboot" })
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "rebooted-instance-ids"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["rebooted-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        let id = on.act.instance_id.as_str();
        let call = if on.act.action == START {
            on.fleet.start(id)
        } else {
            on.fleet.reboot(id)
        };
        Box::pin(async move { call.await.map(Started::Done) })
    }
}
