//! What the load balancer and EC2 said at one moment: the planner's only view of the world.

use serde::Serialize;
use time::OffsetDateTime;

/// Health and EC2 facts for every instance registered on one load balancer.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The load balancer the snapshot is of.
    pub load_balancer: String,
    /// Every registered instance, in the order the balancer listed them.
    pub instances: Vec<InstanceView>,
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
}

/// The balancer's view of one instance (classic ELB DescribeInstanceHealth).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// InService, OutOfService or Unknown.
    pub state: HealthState,
    /// `ELB` or `Instance` on real AWS; absent or `N/A` elsewhere.
    pub reason_code: Option<String>,
    /// Free text such as "Instance registration is still in progress."
    pub description: Option<String>,
}

/// The three states a classic ELB reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthState {
    /// Passing health checks.
    InService,
    /// Failing health checks (or not running).
    OutOfService,
    /// The balancer cannot tell; anything it reports that we do not recognise lands here too.
    Unknown,
}

impl HealthState {
    /// Reads the balancer's state string; unrecognised values are `Unknown`, which is never acted on.
    pub fn parse(state: &str) -> Self {
        match state {
            "InService" => Self::InService,
            "OutOfService" => Self::OutOfService,
            _ => Self::Unknown,
        }
    }
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
    /// The Auto Scaling group the instance belongs to, when it does.
    pub auto_scaling_group: Option<String>,
}
