//! Classic ELB and EC2: read a balancer's health with its instances' facts, and terminate one instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use time::OffsetDateTime;

use crate::engine::port::{
    BoxFuture, Ec2Facts, FailureKind, Fleet, FleetError, Health, HealthState, InstanceView,
    Snapshot,
};
use crate::metrics::Metrics;

/// Tag EC2 Auto Scaling puts on the instances it launches.
const ASG_TAG: &str = "aws:autoscaling:groupName";
/// Most values one DescribeInstances filter takes.
const FILTER_VALUES_MAX: usize = 200;

/// Error codes AWS uses for throttling: a 4xx answer that is worth retrying.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "SlowDown",
    "EC2ThrottledException",
];

/// Classifies a failed SDK call for the engine. Transient: no answer (network, timeout), throttling, a 5xx.
/// Permanent: any other answer of the service (AccessDenied, UnauthorizedOperation, validation), and a request
/// the SDK could not even build. `not_found` names the codes that mean the target itself does not exist.
fn classify<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    not_found: &[&str],
) -> FleetError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let mut code = err.code().map(str::to_owned);
    let kind = match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            // An answer whose error code could not be read is still told apart by its status.
            code.get_or_insert_with(|| format!("HTTP {status}"));
            match code.as_deref() {
                Some(code) if not_found.contains(&code) => FailureKind::NotFound,
                Some(code) if THROTTLING_CODES.contains(&code) => FailureKind::Transient,
                _ if status >= 500 || status == 429 => FailureKind::Transient,
                _ => FailureKind::Permanent,
            }
        }
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        _ => FailureKind::Transient,
    };
    FleetError::new(kind, operation, code, DisplayErrorContext(err).to_string())
}

/// The classic ELB and EC2 clients, built once from the shared SDK configuration: the engine's `Fleet` port
/// for classic load balancers.
#[derive(Clone, Debug)]
pub struct ClassicElbFleet {
    elb: aws_sdk_elasticloadbalancing::Client,
    ec2: aws_sdk_ec2::Client,
    metrics: Arc<Metrics>,
}

impl ClassicElbFleet {
    /// Creates the clients; every call's latency and failure is counted in `metrics`.
    pub fn new(sdk: &SdkConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            elb: aws_sdk_elasticloadbalancing::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            metrics,
        }
    }

    /// Runs one AWS call, recording its latency and, when it failed, how.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, FleetError>>,
    ) -> Result<T, FleetError> {
        let started = Instant::now();
        let result = call.await;
        let failed = result.as_ref().err().map(|err| err.kind.as_str());
        self.metrics
            .observe_aws(operation, started.elapsed(), failed);
        result
    }

    /// DescribeInstanceHealth for the balancer, then DescribeInstances for every registered instance.
    async fn read_snapshot(&self, load_balancer: &str) -> Result<Snapshot, FleetError> {
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
    ) -> Result<HashMap<String, Ec2Facts>, FleetError> {
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
    async fn terminate_instance(&self, instance_id: &str) -> Result<String, FleetError> {
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

impl Fleet for ClassicElbFleet {
    fn snapshot<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Snapshot, FleetError>> {
        Box::pin(self.read_snapshot(target))
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.terminate_instance(instance_id))
    }
}

fn to_offset_date_time(at: &aws_sdk_ec2::primitives::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok()
}
