//! ELBv2 (ALB/NLB): target group lookup at start-up, and DescribeTargetHealth read through the engine's
//! health table.

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::health;
use crate::engine::port::{FleetError, InstanceView, Snapshot, TargetGroupInfo};
use crate::target::is_target_group_arn;

/// The error code ELBv2 answers for a target group that does not exist.
const NOT_FOUND: &[&str] = &["TargetGroupNotFound"];

impl AwsFleet {
    /// DescribeTargetGroups by ARN or by name.
    pub(super) async fn describe_target_group(
        &self,
        name_or_arn: &str,
    ) -> Result<TargetGroupInfo, FleetError> {
        const OPERATION: &str = "DescribeTargetGroups";
        let request = self.elbv2.describe_target_groups();
        let request = if is_target_group_arn(name_or_arn) {
            request.target_group_arns(name_or_arn)
        } else {
            request.names(name_or_arn)
        };
        let output = self
            .timed(OPERATION, async {
                request
                    .send()
                    .await
                    .map_err(|err| classify(OPERATION, &err, NOT_FOUND))
            })
            .await?;
        let group = output.target_groups().first().ok_or_else(|| {
            FleetError::new(
                crate::engine::port::FailureKind::NotFound,
                OPERATION,
                None,
                format!("no target group {name_or_arn:?}"),
            )
        })?;
        Ok(TargetGroupInfo {
            arn: group.target_group_arn().unwrap_or_default().to_owned(),
            target_type: group
                .target_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_else(|| "instance".to_owned()),
            load_balancers: group
                .load_balancer_arns()
                .iter()
                .filter_map(|arn| {
                    arn.split_once(":loadbalancer/")
                        .map(|(_, name)| name.to_owned())
                })
                .collect(),
        })
    }

    /// DescribeTargetHealth for the group, then DescribeInstances for every registered instance.
    pub(super) async fn target_group_snapshot(&self, arn: &str) -> Result<Snapshot, FleetError> {
        const OPERATION: &str = "DescribeTargetHealth";
        let output = self
            .timed(OPERATION, async {
                self.elbv2
                    .describe_target_health()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map_err(|err| classify(OPERATION, &err, NOT_FOUND))
            })
            .await?;
        let targets = output.target_health_descriptions();
        let mut ids: Vec<String> = targets
            .iter()
            .filter_map(|t| t.target().and_then(|t| t.id()).map(str::to_owned))
            .collect();
        // The same instance may be registered on several ports: one view per instance.
        ids.sort();
        ids.dedup();
        let mut facts = self.describe_instances(&ids).await?;
        let mut seen = std::collections::HashSet::new();
        let instances = targets
            .iter()
            .filter_map(|description| {
                let instance_id = description.target()?.id()?.to_owned();
                if !seen.insert(instance_id.clone()) {
                    return None;
                }
                let reported = description.target_health();
                Some(InstanceView {
                    health: health::target_group(
                        reported
                            .and_then(|h| h.state())
                            .map(|s| s.as_str())
                            .unwrap_or_default(),
                        reported.and_then(|h| h.reason()).map(|r| r.as_str()),
                        reported.and_then(|h| h.description()),
                    ),
                    ec2: facts.remove(&instance_id),
                    auto_scaling_group: None,
                    instance_id,
                })
            })
            .collect();
        Ok(Snapshot {
            target: arn.to_owned(),
            instances,
        })
    }
}
