//! EC2 Auto Scaling: which group an instance belongs to, whether a group is changing, and handing an instance
//! to its group as Unhealthy.

use std::collections::HashMap;

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::port::{FleetError, GroupChange, REPLACING_PROCESSES, is_changing_state};

/// Most instance ids one DescribeAutoScalingInstances call takes.
const IDS_PER_CALL: usize = 50;
/// Most group names one DescribeAutoScalingGroups call takes.
const GROUPS_PER_CALL: usize = 100;
/// The newest scaling activities read per group: one in progress is among the newest.
const ACTIVITIES_READ: i32 = 20;
/// The scaling activity status codes of a finished activity.
const FINISHED: [&str; 3] = ["Successful", "Failed", "Cancelled"];

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

    /// DescribeAutoScalingGroups (instances' lifecycle states, suspended processes) for `groups`, then
    /// DescribeScalingActivities of each: what each shows of a change under way. (An instance refresh shows
    /// as instances Pending and Terminating, and as scaling activities.)
    pub(super) async fn describe_group_changes(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupChange>, FleetError> {
        const GROUPS: &str = "DescribeAutoScalingGroups";
        const ACTIVITIES: &str = "DescribeScalingActivities";
        let mut changes = Vec::with_capacity(groups.len());
        for chunk in groups.chunks(GROUPS_PER_CALL) {
            let output = self
                .timed(GROUPS, async {
                    self.autoscaling
                        .describe_auto_scaling_groups()
                        .set_auto_scaling_group_names(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|err| classify(GROUPS, &err, &[]))
                })
                .await?;
            for group in output.auto_scaling_groups() {
                let name = group.auto_scaling_group_name().unwrap_or_default();
                changes.push(GroupChange {
                    group: name.to_owned(),
                    instances: group
                        .instances()
                        .iter()
                        .map(|i| {
                            let state = i.lifecycle_state().map(|s| s.as_str()).unwrap_or_default();
                            (
                                i.instance_id().unwrap_or_default().to_owned(),
                                state.to_owned(),
                            )
                        })
                        .filter(|(_, state)| is_changing_state(state))
                        .collect(),
                    suspended: group
                        .suspended_processes()
                        .iter()
                        .filter_map(|p| p.process_name())
                        .filter(|name| REPLACING_PROCESSES.contains(name))
                        .map(ToOwned::to_owned)
                        .collect(),
                    activities: Vec::new(),
                });
            }
        }
        for change in &mut changes {
            let output = self
                .timed(ACTIVITIES, async {
                    self.autoscaling
                        .describe_scaling_activities()
                        .auto_scaling_group_name(&change.group)
                        .max_records(ACTIVITIES_READ)
                        .send()
                        .await
                        .map_err(|err| classify(ACTIVITIES, &err, &[]))
                })
                .await?;
            change.activities = output
                .activities()
                .iter()
                .filter(|a| {
                    a.status_code()
                        .is_some_and(|code| !FINISHED.contains(&code.as_str()))
                })
                .map(|a| a.description().unwrap_or("an activity").to_owned())
                .collect();
        }
        Ok(changes)
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
