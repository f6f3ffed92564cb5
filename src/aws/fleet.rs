//! The engine's `Fleet` port over the AWS SDK: classic ELB, ELBv2 target groups, EC2 and Auto Scaling. Each
//! service's calls live in a module of their own (`elb`, `elbv2`, `ec2`, `autoscaling`); this one holds the
//! clients, times every call, and dispatches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::engine::port::{
    AlarmState, BoxFuture, Ec2Facts, FailureKind, Fleet, FleetError, GroupChange, Resources,
    Snapshot, TargetGroupInfo, TargetRef,
};
use crate::metrics::Metrics;

/// The SDK clients, built once from the shared SDK configuration.
#[derive(Clone, Debug)]
pub struct AwsFleet {
    pub(super) elb: aws_sdk_elasticloadbalancing::Client,
    pub(super) elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub(super) ec2: aws_sdk_ec2::Client,
    pub(super) autoscaling: aws_sdk_autoscaling::Client,
    ssm: aws_sdk_ssm::Client,
    ecs: aws_sdk_ecs::Client,
    rds: aws_sdk_rds::Client,
    pub(super) cloudwatch: aws_sdk_cloudwatch::Client,
    metrics: Arc<Metrics>,
}

impl AwsFleet {
    /// Creates the clients; every call's latency and failure is counted in `metrics`.
    pub fn new(sdk: &SdkConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            elb: aws_sdk_elasticloadbalancing::Client::new(sdk),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            rds: aws_sdk_rds::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            metrics,
        }
    }

    /// EC2's client, for an action kind's own calls.
    pub fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.ec2
    }

    /// Auto Scaling's client, for an action kind's own calls.
    pub fn autoscaling(&self) -> &aws_sdk_autoscaling::Client {
        &self.autoscaling
    }

    /// Systems Manager's client, for an action kind's own calls (an SSM command).
    pub fn ssm(&self) -> &aws_sdk_ssm::Client {
        &self.ssm
    }

    /// ECS's client, for an action kind's own calls (a service's redeploy).
    pub fn ecs(&self) -> &aws_sdk_ecs::Client {
        &self.ecs
    }

    /// RDS's client, for an action kind's own calls (a database's reboot).
    pub fn rds(&self) -> &aws_sdk_rds::Client {
        &self.rds
    }

    /// Classic ELB's client, for an action kind's own calls.
    pub fn elb(&self) -> &aws_sdk_elasticloadbalancing::Client {
        &self.elb
    }

    /// ELBv2's client (target groups), for an action kind's own calls.
    pub fn elbv2(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        &self.elbv2
    }

    /// Runs an action kind's SDK call `operation` as the fleet runs its own: timed in the metrics, and a
    /// failure classified (transient, permanent).
    pub async fn call<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, FleetError>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        self.timed(operation, async {
            call.await
                .map_err(|err| super::classify::classify(operation, &err, &[]))
        })
        .await
    }

    /// Runs one AWS call, recording its latency and, when it failed, how.
    pub(super) async fn timed<T>(
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
}

impl Fleet for AwsFleet {
    fn target_group<'a>(
        &'a self,
        name_or_arn: &'a str,
    ) -> BoxFuture<'a, Result<TargetGroupInfo, FleetError>> {
        Box::pin(self.describe_target_group(name_or_arn))
    }

    fn snapshot<'a>(
        &'a self,
        target: &'a TargetRef,
    ) -> BoxFuture<'a, Result<Snapshot, FleetError>> {
        match target {
            TargetRef::LoadBalancer(name) => Box::pin(self.classic_snapshot(name)),
            TargetRef::TargetGroup(arn) => Box::pin(self.target_group_snapshot(arn)),
            TargetRef::Rule(rule) => Box::pin(std::future::ready(Err(FleetError::new(
                FailureKind::Permanent,
                "DescribeInstances",
                None,
                format!(
                    "rule {rule:?} has no balancer to read: its run reads the instances its alert names"
                ),
            )))),
        }
    }

    fn instances<'a>(
        &'a self,
        resources: &'a Resources,
    ) -> BoxFuture<'a, Result<HashMap<String, Ec2Facts>, FleetError>> {
        Box::pin(self.describe_resources(resources))
    }

    fn alarm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<AlarmState>, FleetError>> {
        Box::pin(self.describe_alarm(name))
    }

    fn auto_scaling_groups<'a>(
        &'a self,
        instance_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, FleetError>> {
        Box::pin(self.describe_auto_scaling_instances(instance_ids))
    }

    fn group_changes<'a>(
        &'a self,
        groups: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<GroupChange>, FleetError>> {
        Box::pin(self.describe_group_changes(groups))
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.terminate_instance(instance_id))
    }

    fn mark_unhealthy<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.set_instance_unhealthy(instance_id))
    }

    fn reboot<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.reboot_instance(instance_id))
    }

    fn start<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.start_instance(instance_id))
    }

    fn clients(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        Some(self)
    }
}

/// The SDK clients behind `fleet`, for an action kind that makes calls of its own: none when the fleet is not
/// AWS's (a test's).
pub fn clients_of(fleet: &dyn Fleet) -> Option<&AwsFleet> {
    fleet.clients()?.downcast_ref()
}
