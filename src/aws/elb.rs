//! Classic ELB: DescribeInstanceHealth, read through the engine's health table.

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::health;
use crate::engine::port::{FleetError, InstanceView, Snapshot};

impl AwsFleet {
    /// DescribeInstanceHealth for the balancer, then DescribeInstances for every registered instance.
    pub(super) async fn classic_snapshot(
        &self,
        load_balancer: &str,
    ) -> Result<Snapshot, FleetError> {
        const OPERATION: &str = "DescribeInstanceHealth";
        let health = self
            .timed(OPERATION, async {
                self.elb
                    .describe_instance_health()
                    .load_balancer_name(load_balancer)
                    .send()
                    .await
                    .map_err(|err| {
                        classify(
                            OPERATION,
                            &err,
                            &["LoadBalancerNotFound", "AccessPointNotFound"],
                        )
                    })
            })
            .await?;
        let states = health.instance_states();
        let ids: Vec<String> = states
            .iter()
            .filter_map(|s| s.instance_id().map(str::to_owned))
            .collect();
        let mut facts = self.describe_instances(&ids).await?;
        let instances = states
            .iter()
            .filter_map(|state| {
                let instance_id = state.instance_id()?.to_owned();
                Some(InstanceView {
                    health: health::classic(
                        state.state().unwrap_or_default(),
                        state.reason_code(),
                        state.description(),
                    ),
                    ec2: facts.remove(&instance_id),
                    auto_scaling_group: None,
                    instance_id,
                })
            })
            .collect();
        Ok(Snapshot {
            target: load_balancer.to_owned(),
            instances,
        })
    }
}
