//! `isolate`: an instance is taken out of service and kept for forensics. It is tagged `reflex:isolated` with
//! the run's id (EC2 CreateTags), deregistered from the classic load balancer or the target group, and
//! detached from its Auto Scaling group without lowering the desired capacity (DetachInstances), so that the
//! group launches a replacement; the instance itself is left running. It removes capacity (the budgets and the
//! speed limit count it) and is judged by the target's capacity coming back.

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

use crate::aws::{AwsFleet, clients_of};
use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Started};
use crate::engine::plan::SkipReason;
use crate::engine::port::{
    BoxFuture, FailureKind, FleetError, InstanceView, TargetRef, current_run,
};

/// The `isolate` action kind.
#[derive(Debug, Clone, Copy)]
pub struct Isolate;

/// The tag an isolated instance carries; its value is the id of the run that isolated it.
pub const TAG: &str = "reflex:isolated";

/// The call, and the state an isolated instance is reported in.
const ISOLATE: &str = "isolate";

impl Action for Isolate {
    fn name(&self) -> &'static str {
        ISOLATE
    }

    fn verb(&self) -> &'static str {
        ISOLATE
    }

    fn done(&self) -> &'static str {
        "isolated"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: false,
            removes_capacity: true,
            adds_capacity: false,
            judged: Judged::CapacityBack,
            checked_after: None,
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "ec2:CreateTags",
            "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
            "elasticloadbalancing:DeregisterTargets",
            "autoscaling:DetachInstances",
        ]
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok(ISOLATE)
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "isolated-instance-ids"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["isolated-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let aws = clients_of(on.fleet).ok_or_else(|| {
                FleetError::new(
                    FailureKind::Permanent,
                    "isolate",
                    None,
                    "isolate acts through AWS's own clients; this fleet has none",
                )
            })?;
            let id = on.act.subject.id();
            tag(aws, id).await?;
            deregister(aws, on.target, id).await?;
            if let Some(group) = &on.act.auto_scaling_group {
                detach(aws, group, id).await?;
            }
            Ok(Started::Done("isolated".to_owned()))
        })
    }
}

/// Tags the instance `reflex:isolated` with the run's id, first, so that an isolation cut short still says
/// who took the instance and when.
async fn tag(aws: &AwsFleet, id: &str) -> Result<(), FleetError> {
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key(TAG)
        .value(current_run().unwrap_or_default())
        .build();
    let call = aws.ec2().create_tags().resources(id).tags(tag).send();
    aws.call("CreateTags", call).await.map(drop)
}

/// Takes the instance out of the target's rotation.
async fn deregister(aws: &AwsFleet, target: &TargetRef, id: &str) -> Result<(), FleetError> {
    match target {
        TargetRef::LoadBalancer(name) => {
            let call = aws
                .elb()
                .deregister_instances_from_load_balancer()
                .load_balancer_name(name)
                .instances(
                    aws_sdk_elasticloadbalancing::types::Instance::builder()
                        .instance_id(id)
                        .build(),
                )
                .send();
            aws.call("DeregisterInstancesFromLoadBalancer", call)
                .await
                .map(drop)
        }
        TargetRef::TargetGroup(arn) => {
            let target = TargetDescription::builder().id(id).build();
            let call = aws
                .elbv2()
                .deregister_targets()
                .target_group_arn(arn)
                .targets(target)
                .send();
            aws.call("DeregisterTargets", call).await.map(drop)
        }
        // A rule's ladder may not isolate (start-up refuses it): its instances are in no balancer's rotation.
        TargetRef::Rule(rule) => Err(FleetError::new(
            FailureKind::Permanent,
            "DeregisterTargets",
            None,
            format!("rule {rule:?} has no balancer to take the instance out of"),
        )),
    }
}

/// Detaches the instance from its Auto Scaling group, keeping the desired capacity: the group launches a
/// replacement.
async fn detach(aws: &AwsFleet, group: &str, id: &str) -> Result<(), FleetError> {
    let call = aws
        .autoscaling()
        .detach_instances()
        .auto_scaling_group_name(group)
        .instance_ids(id)
        .should_decrement_desired_capacity(false)
        .send();
    aws.call("DetachInstances", call).await.map(drop)
}
