//! What the load balancer (or target group), EC2 and Auto Scaling said at one moment: the planner's only view
//! of the world.

use serde::Serialize;
use time::OffsetDateTime;

/// Health and EC2 facts for every instance registered on one target.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The target the snapshot is of (a load balancer's name or a target group's ARN).
    pub target: String,
    /// Every registered instance, in the order the balancer listed them.
    pub instances: Vec<InstanceView>,
}

impl Snapshot {
    /// How many instances the balancer reports InService.
    pub fn in_service(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.health.state == HealthState::InService)
            .count()
    }
}

/// One registered instance as seen by the balancer and by EC2.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// EC2 instance id.
    pub instance_id: String,
    /// The balancer's verdict.
    pub health: Health,
    /// EC2's description; `None` when EC2 does not know the instance.
    pub ec2: Option<Ec2Facts>,
    /// The Auto Scaling group the instance belongs to, when that was asked (DescribeAutoScalingInstances)
    /// and it belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
}

/// The balancer's view of one instance, read through the table in `health.rs`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The planner's reading of what the balancer reported.
    pub state: HealthState,
    /// The reported state as AWS spelled it (`OutOfService`, `unhealthy`, `draining`, ...).
    pub reported: String,
    /// Classic ELB: `ELB` or `Instance`; ELBv2: `Target.FailedHealthChecks`, `Elb.RegistrationInProgress`, ...
    pub reason_code: Option<String>,
    /// Free text such as "Instance registration is still in progress."
    pub description: Option<String>,
}

/// What a reported health state means to the planner. Only `OutOfService` is ever acted on; every other
/// state that is not `InService` is left alone with its own skip reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthState {
    /// Passing health checks.
    InService,
    /// Failing health checks, or not running: a candidate for replacement.
    OutOfService,
    /// Still being registered or in its first health checks.
    Registering,
    /// Being deregistered (connection draining).
    Draining,
    /// Registered but not serving: its zone is not enabled, or it is not registered (any more).
    NotInUse,
    /// Health checks are disabled: no verdict, not a failure.
    HealthCheckDisabled,
    /// The balancer itself failed to check the instance (`Elb.*` reasons).
    BalancerError,
    /// A state or reason reflex does not know; never acted on.
    Unknown,
}

/// What EC2 says about one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Ec2Facts {
    /// pending, running, stopping, stopped, shutting-down or terminated.
    pub state: String,
    /// When the instance was launched.
    #[serde(with = "time::serde::rfc3339::option")]
    pub launch_time: Option<OffsetDateTime>,
    /// Tag keys and values.
    pub tags: Vec<(String, String)>,
    /// Its Availability Zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The AMI it was launched from (what a relapse names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

impl Ec2Facts {
    /// The launch template it was launched from (`id` and version, from the tags AWS sets), if any.
    pub fn launch_template(&self) -> Option<String> {
        let tag = |key: &str| {
            self.tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let id = tag("aws:ec2launchtemplate:id")?;
        Some(match tag("aws:ec2launchtemplate:version") {
            Some(version) => format!("{id}:{version}"),
            None => id.to_owned(),
        })
    }
}
