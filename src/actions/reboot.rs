//! `reboot`: an instance is rebooted (EC2 RebootInstances), or started when it is stopped (StartInstances,
//! since AWS refuses to reboot a stopped instance). It keeps the instance, its disks and its place, and is
//! judged by each rebooted instance being InService again after its key `reboot_verify_secs` (180 unless a
//! target or `[remediation]` says otherwise); those still down go to the ladder's next step.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Started};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FleetError, InstanceView};

/// The `reboot` action kind, checked `verify_after` after it acted.
#[derive(Debug, Clone, Copy)]
pub struct Reboot {
    /// How long after a reboot its instances are checked.
    pub verify_after: Duration,
}

impl Default for Reboot {
    fn default() -> Self {
        Self {
            verify_after: Duration::from_secs(180),
        }
    }
}

/// The key that sets how long after a reboot its instances are checked, in seconds.
const KEY: &str = "reboot_verify_secs";

/// The call that starts a stopped instance.
const START: &str = "start";

impl Action for Reboot {
    fn name(&self) -> &'static str {
        "reboot"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: true,
            removes_capacity: false,
            adds_capacity: false,
            judged: Judged::InstancesBack,
            checked_after: Some(self.verify_after),
        }
    }

    fn verb(&self) -> &'static str {
        "reboot"
    }

    fn done(&self) -> &'static str {
        "rebooted"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:RebootInstances", "ec2:StartInstances"]
    }

    fn keys(&self) -> &'static [&'static str] {
        &[KEY]
    }

    fn with_keys(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        let secs = keys.get::<u64>(KEY, |secs| {
            if *secs == 0 {
                Err("is 0; a rebooted instance needs time to come back (the default is 180 seconds)".to_owned())
            } else {
                Ok(())
            }
        })?;
        let verify_after = secs.map_or(self.verify_after, Duration::from_secs);
        Ok(Some(Arc::new(Self { verify_after })))
    }

    fn choose(&self, instance: &InstanceView) -> Result<&'static str, SkipReason> {
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
        let id = on.act.subject.id();
        let call = if on.act.action == START {
            on.fleet.start(id)
        } else {
            on.fleet.reboot(id)
        };
        Box::pin(async move { call.await.map(Started::Done) })
    }
}
