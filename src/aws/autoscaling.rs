//! EC2 Auto Scaling: which group an instance belongs to, whether a group is changing, and handing an instance
//! to its group as Unhealthy.

use std::collections::HashMap;

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::port::{
    FailureKind, FleetError, GroupChange, REPLACING_PROCESSES, is_changing_state,
};

/// Most instance ids one DescribeAutoScalingInstances call takes.
const IDS_PER_CALL: usize = 50;
/// Most group names one DescribeAutoScalingGroups call takes (and answers in one page).
const GROUPS_PER_CALL: usize = 100;
/// The operation that reads groups.
const GROUPS: &str = "DescribeAutoScalingGroups";
/// The newest scaling activities and instance refreshes read per group: one in progress is among the newest.
const NEWEST_READ: i32 = 20;
/// The scaling activity status codes of a finished activity.
const FINISHED: [&str; 3] = ["Successful", "Failed", "Cancelled"];
/// The statuses of an instance refresh that is over.
const REFRESH_OVER: [&str; 5] = [
    "Successful",
    "Failed",
    "Cancelled",
    "RollbackFailed",
    "RollbackSuccessful",
];

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

    /// DescribeAutoScalingGroups (instances' lifecycle states, suspended processes) for `groups`, then for each
    /// DescribeScalingActivities and DescribeInstanceRefreshes: what each shows of a change under way. A group
    /// asked about that does not answer is an error: reflex cannot tell. A refresh read that fails for a moment
    /// (or that an emulator does not implement) is noted, and the other signals decide: a refresh that is
    /// replacing instances also shows as instances Pending and Terminating and as scaling activities.
    pub(super) async fn describe_group_changes(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupChange>, FleetError> {
        let mut changes = self.describe_groups(groups).await?;
        if let Some(missing) = groups
            .iter()
            .find(|name| !changes.iter().any(|change| change.group == **name))
        {
            return Err(FleetError::new(
                FailureKind::Permanent,
                GROUPS,
                Some("GroupNotFound".into()),
                format!("Auto Scaling group {missing} was not found"),
            ));
        }
        for change in &mut changes {
            change.activities = self.activities_in_progress(&change.group).await?;
            match self.refreshes_in_progress(&change.group).await {
                Ok(refreshes) => change.refreshes = refreshes,
                Err(err) if err.kind == FailureKind::Transient => {
                    change.refreshes_unread = Some(err.to_string());
                }
                Err(err) => return Err(err),
            }
        }
        Ok(changes)
    }

    /// DescribeAutoScalingGroups: each group's instances in a lifecycle state of a change, and its suspended
    /// replacing processes.
    async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupChange>, FleetError> {
        let mut changes = Vec::with_capacity(groups.len());
        for chunk in groups.chunks(GROUPS_PER_CALL) {
            let output = self
                .timed(GROUPS, async {
                    self.autoscaling
                        .describe_auto_scaling_groups()
                        .set_auto_scaling_group_names(Some(chunk.to_vec()))
                        .max_records(GROUPS_PER_CALL as i32)
                        .send()
                        .await
                        .map_err(|err| classify(GROUPS, &err, &[]))
                })
                .await?;
            for group in output.auto_scaling_groups() {
                changes.push(GroupChange {
                    group: group
                        .auto_scaling_group_name()
                        .unwrap_or_default()
                        .to_owned(),
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
                    ..GroupChange::default()
                });
            }
        }
        Ok(changes)
    }

    /// DescribeScalingActivities: the group's newest activities that have not finished (their descriptions);
    /// an action kind that changes a group's capacity asks it too.
    pub async fn activities_in_progress(&self, group: &str) -> Result<Vec<String>, FleetError> {
        const ACTIVITIES: &str = "DescribeScalingActivities";
        let output = self
            .timed(ACTIVITIES, async {
                self.autoscaling
                    .describe_scaling_activities()
                    .auto_scaling_group_name(group)
                    .max_records(NEWEST_READ)
                    .send()
                    .await
                    .map_err(|err| classify(ACTIVITIES, &err, &[]))
            })
            .await?;
        Ok(output
            .activities()
            .iter()
            .filter(|a| {
                a.status_code()
                    .is_some_and(|code| !FINISHED.contains(&code.as_str()))
            })
            .map(|a| a.description().unwrap_or("an activity").to_owned())
            .collect())
    }

    /// DescribeInstanceRefreshes: the group's refreshes not yet over (status and progress).
    async fn refreshes_in_progress(&self, group: &str) -> Result<Vec<String>, FleetError> {
        const REFRESHES: &str = "DescribeInstanceRefreshes";
        let output = self
            .timed(REFRESHES, async {
                self.autoscaling
                    .describe_instance_refreshes()
                    .auto_scaling_group_name(group)
                    .max_records(NEWEST_READ)
                    .send()
                    .await
                    .map_err(|err| classify(REFRESHES, &err, &[]))
            })
            .await?;
        Ok(output
            .instance_refreshes()
            .iter()
            .filter_map(|refresh| {
                let status = refresh.status()?.as_str();
                (!REFRESH_OVER.contains(&status)).then(|| {
                    let percent = refresh.percentage_complete().unwrap_or(0);
                    format!("instance refresh {status} ({percent}%)")
                })
            })
            .collect())
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
