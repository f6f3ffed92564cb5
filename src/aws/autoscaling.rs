//! EC2 Auto Scaling: which group an instance belongs to, and handing an instance to its group as Unhealthy.

use std::collections::HashMap;

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::port::FleetError;

/// Most instance ids one DescribeAutoScalingInstances call takes.
const IDS_PER_CALL: usize = 50;

impl AwsFleet {
    /// DescribeAutoScalingInstances: instance id → group name, for the instances that are in a group.
    pub(super) async fn describe_auto_scaling_instances(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, String>, FleetError> {
        const OPERATION: &str = "DescribeAutoScalingInstances";
        let mut groups = HashMap::new();
        for chunk in instance_ids.chunks(IDS_PER_CALL) {
            let output = self
                .timed(OPERATION, async {
                    self.autoscaling
                        .describe_auto_scaling_instances()
                        .set_instance_ids(Some(chunk.to_vec()))
                        .max_records(IDS_PER_CALL as i32)
                        .send()
                        .await
                        .map_err(|err| classify(OPERATION, &err, &[]))
                })
                .await?;
            for instance in output.auto_scaling_instances() {
                if let (Some(id), Some(group)) =
                    (instance.instance_id(), instance.auto_scaling_group_name())
                {
                    groups.insert(id.to_owned(), group.to_owned());
                }
            }
        }
        Ok(groups)
    }

    /// SetInstanceHealth Unhealthy with ShouldRespectGracePeriod: the group replaces the instance by its own
    /// rules (grace period, instance maintenance policy).
    pub(super) async fn set_instance_unhealthy(
        &self,
        instance_id: &str,
    ) -> Result<String, FleetError> {
        const OPERATION: &str = "SetInstanceHealth";
        const STATUS: &str = "Unhealthy";
        self.timed(OPERATION, async {
            self.autoscaling
                .set_instance_health()
                .instance_id(instance_id)
                .health_status(STATUS)
                .should_respect_grace_period(true)
                .send()
                .await
                .map_err(|err| classify(OPERATION, &err, &[]))
        })
        .await?;
        Ok(STATUS.to_owned())
    }
}
