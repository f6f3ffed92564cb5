//! The engine's `Fleet` port over the AWS SDK: classic ELB, ELBv2 target groups, EC2 and Auto Scaling. Each
//! service's calls live in a module of their own (`elb`, `elbv2`, `ec2`, `autoscaling`); this one holds the
//! clients, times every call, and dispatches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;

use crate::engine::port::{
    BoxFuture, Fleet, FleetError, GroupChange, Snapshot, TargetGroupInfo, TargetRef,
};
use crate::metrics::Metrics;

/// The SDK clients, built once from the shared SDK configuration.
#[derive(Clone, Debug)]
pub struct AwsFleet {
    pub(super) elb: aws_sdk_elasticloadbalancing::Client,
    pub(super) elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub(super) ec2: aws_sdk_ec2::Client,
    pub(super) autoscaling: aws_sdk_autoscaling::Client,
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
            metrics,
        }
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
        }
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
}
