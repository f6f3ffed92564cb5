//! EC2: the facts the planner needs about each instance, TerminateInstances, RebootInstances and
//! StartInstances.

use std::collections::HashMap;

use aws_sdk_ec2::types::Filter;
use time::OffsetDateTime;

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::port::{Ec2Facts, FleetError, Resources};

/// Most values one DescribeInstances filter takes.
const FILTER_VALUES_MAX: usize = 200;

impl AwsFleet {
    /// EC2 facts by instance id. Uses an `instance-id` filter so that an unknown id is simply absent
    /// instead of failing the whole call.
    pub(super) async fn describe_instances(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Ec2Facts>, FleetError> {
        let mut facts = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(FILTER_VALUES_MAX) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            self.describe_filtered(vec![filter], &mut facts).await?;
        }
        Ok(facts)
    }

    /// EC2 facts of what a rule's run acts on: the instances by id, or the running ones tagged `key` =
    /// `value` (one stopped on purpose is not started by a reboot).
    pub(super) async fn describe_resources(
        &self,
        resources: &Resources,
    ) -> Result<HashMap<String, Ec2Facts>, FleetError> {
        match resources {
            Resources::None => Ok(HashMap::new()),
            Resources::Instances(ids) => self.describe_instances(ids).await,
            Resources::Tagged { key, value } => {
                let filters = vec![
                    Filter::builder()
                        .name(format!("tag:{key}"))
                        .values(value)
                        .build(),
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(vec!["running".to_owned()]))
                        .build(),
                ];
                let mut facts = HashMap::new();
                self.describe_filtered(filters, &mut facts).await?;
                Ok(facts)
            }
        }
    }

    /// Every page of DescribeInstances under `filters`, each instance's facts put in `facts`.
    async fn describe_filtered(
        &self,
        filters: Vec<Filter>,
        facts: &mut HashMap<String, Ec2Facts>,
    ) -> Result<(), FleetError> {
        let mut pages = self
            .ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = self
            .timed("DescribeInstances", async {
                pages
                    .next()
                    .await
                    .transpose()
                    .map_err(|err| classify("DescribeInstances", &err, &[]))
            })
            .await?
        {
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let tags: Vec<(String, String)> = instance
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                facts.insert(
                    id.to_owned(),
                    Ec2Facts {
                        state: instance
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_default(),
                        launch_time: instance.launch_time().and_then(to_offset_date_time),
                        image_id: instance.image_id().map(ToOwned::to_owned),
                        tags,
                        zone: instance
                            .placement()
                            .and_then(|p| p.availability_zone())
                            .map(ToOwned::to_owned),
                    },
                );
            }
        }
        Ok(())
    }

    /// TerminateInstances for one instance; returns the state EC2 reports it moving to.
    pub(super) async fn terminate_instance(&self, instance_id: &str) -> Result<String, FleetError> {
        const OPERATION: &str = "TerminateInstances";
        let output = self
            .timed(OPERATION, async {
                self.ec2
                    .terminate_instances()
                    .instance_ids(instance_id)
                    .send()
                    .await
                    .map_err(|err| classify(OPERATION, &err, &[]))
            })
            .await?;
        Ok(state_of(output.terminating_instances(), instance_id))
    }

    /// RebootInstances on one instance: AWS answers it with nothing, so the state reported is `rebooting`.
    pub(super) async fn reboot_instance(&self, instance_id: &str) -> Result<String, FleetError> {
        const OPERATION: &str = "RebootInstances";
        self.timed(OPERATION, async {
            self.ec2
                .reboot_instances()
                .instance_ids(instance_id)
                .send()
                .await
                .map_err(|err| classify(OPERATION, &err, &[]))
        })
        .await?;
        Ok("rebooting".to_owned())
    }

    /// StartInstances on one stopped instance; the state it is moving to.
    pub(super) async fn start_instance(&self, instance_id: &str) -> Result<String, FleetError> {
        const OPERATION: &str = "StartInstances";
        let output = self
            .timed(OPERATION, async {
                self.ec2
                    .start_instances()
                    .instance_ids(instance_id)
                    .send()
                    .await
                    .map_err(|err| classify(OPERATION, &err, &[]))
            })
            .await?;
        Ok(state_of(output.starting_instances(), instance_id))
    }
}

/// The state `changes` (what EC2 answered a state-changing call) say `instance_id` is moving to.
fn state_of(changes: &[aws_sdk_ec2::types::InstanceStateChange], instance_id: &str) -> String {
    changes
        .iter()
        .find(|change| change.instance_id() == Some(instance_id))
        .and_then(|change| change.current_state())
        .and_then(|state| state.name())
        .map(|name| name.as_str().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn to_offset_date_time(at: &aws_sdk_ec2::primitives::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok()
}
