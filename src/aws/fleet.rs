//! Classic ELB and EC2: read a balancer's health with its instances' facts, and terminate one instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::Filter;
use time::OffsetDateTime;

use crate::engine::snapshot::{Ec2Facts, Health, HealthState, InstanceView, Snapshot};
use crate::metrics::Metrics;

/// Tag EC2 Auto Scaling puts on the instances it launches.
const ASG_TAG: &str = "aws:autoscaling:groupName";
/// Most values one DescribeInstances filter takes.
const FILTER_VALUES_MAX: usize = 200;

/// A failed AWS call, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The balancer does not exist in this account and region.
    #[error("load balancer {0} does not exist")]
    LoadBalancerNotFound(String),
    /// Anything else: network, throttling, permissions, emulator down.
    #[error("{operation} failed: {detail}")]
    Call {
        /// The AWS operation, e.g. `DescribeInstanceHealth`.
        operation: &'static str,
        /// The SDK's description, with the service's error code when there is one.
        detail: String,
    },
}

impl AwsError {
    fn call<E>(operation: &'static str, err: &aws_sdk_ec2::error::SdkError<E>) -> Self
    where
        E: std::error::Error + 'static,
    {
        Self::Call {
            operation,
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

/// The classic ELB and EC2 clients, built once from the shared SDK configuration.
#[derive(Clone, Debug)]
pub struct Fleet {
    elb: aws_sdk_elasticloadbalancing::Client,
    ec2: aws_sdk_ec2::Client,
    metrics: Arc<Metrics>,
}

impl Fleet {
    /// Creates the clients; every call's latency and failure is counted in `metrics`.
    pub fn new(sdk: &SdkConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            elb: aws_sdk_elasticloadbalancing::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            metrics,
        }
    }

    /// Runs one AWS call, recording its latency and whether it failed.
    async fn timed<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .observe_aws(operation, started.elapsed(), result.is_err());
        result
    }

    /// DescribeInstanceHealth for the balancer, then DescribeInstances for every registered instance.
    pub async fn snapshot(&self, load_balancer: &str) -> Result<Snapshot, AwsError> {
        let health = self
            .timed(
                "DescribeInstanceHealth",
                self.elb
                    .describe_instance_health()
                    .load_balancer_name(load_balancer)
                    .send(),
            )
            .await
            .map_err(|err| match err.code() {
                Some("LoadBalancerNotFound" | "AccessPointNotFound") => {
                    AwsError::LoadBalancerNotFound(load_balancer.to_owned())
                }
                _ => AwsError::call("DescribeInstanceHealth", &err),
            })?;
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
                    health: Health {
                        state: HealthState::parse(state.state().unwrap_or_default()),
                        reason_code: state.reason_code().map(str::to_owned),
                        description: state.description().map(str::to_owned),
                    },
                    ec2: facts.remove(&instance_id),
                    instance_id,
                })
            })
            .collect();
        Ok(Snapshot {
            load_balancer: load_balancer.to_owned(),
            instances,
        })
    }

    /// EC2 facts by instance id. Uses an `instance-id` filter so that an unknown id is simply absent
    /// instead of failing the whole call.
    async fn describe_instances(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Ec2Facts>, AwsError> {
        let mut facts = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(FILTER_VALUES_MAX) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = self
                .timed("DescribeInstances", async {
                    pages.next().await.transpose()
                })
                .await
                .transpose()
            {
                let page = page.map_err(|err| AwsError::call("DescribeInstances", &err))?;
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
                    let auto_scaling_group = tags
                        .iter()
                        .find(|(k, _)| k == ASG_TAG)
                        .map(|(_, v)| v.clone());
                    facts.insert(
                        id.to_owned(),
                        Ec2Facts {
                            state: instance
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_owned())
                                .unwrap_or_default(),
                            launch_time: instance.launch_time().and_then(to_offset_date_time),
                            tags,
                            auto_scaling_group,
                        },
                    );
                }
            }
        }
        Ok(facts)
    }

    /// TerminateInstances for one instance; returns the state EC2 reports it moving to.
    pub async fn terminate(&self, instance_id: &str) -> Result<String, AwsError> {
        let output = self
            .timed(
                "TerminateInstances",
                self.ec2
                    .terminate_instances()
                    .instance_ids(instance_id)
                    .send(),
            )
            .await
            .map_err(|err| AwsError::call("TerminateInstances", &err))?;
        Ok(output
            .terminating_instances()
            .iter()
            .find(|change| change.instance_id() == Some(instance_id))
            .and_then(|change| change.current_state())
            .and_then(|state| state.name())
            .map(|name| name.as_str().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()))
    }
}

fn to_offset_date_time(at: &aws_sdk_ec2::primitives::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok()
}
