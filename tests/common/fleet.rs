//! Builds test fleets in moto through the real AWS SDK: instances, a classic ELB, an ALB with a target group,
//! an Auto Scaling group, stopped instances.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_ec2::types::{InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_elasticloadbalancing::types::{Instance, Listener};

/// What an Auto Scaling group's instances are registered on.
#[derive(Debug, Clone, Copy)]
pub enum Behind<'a> {
    /// A target group, by ARN.
    TargetGroup(&'a str),
    /// A classic load balancer, by name.
    Balancer(&'a str),
}

/// SDK clients talking to one moto server.
#[derive(Clone)]
pub struct Fleet {
    /// EC2 client.
    pub ec2: aws_sdk_ec2::Client,
    /// Classic ELB client.
    pub elb: aws_sdk_elasticloadbalancing::Client,
    /// ELBv2 (ALB/NLB) client.
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// Auto Scaling client.
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// The shared SDK config (for other clients, e.g. SNS).
    pub sdk: SdkConfig,
}

impl Fleet {
    /// Clients for the moto server at `endpoint`.
    pub async fn new(endpoint: &str) -> Self {
        Self::with_credentials(endpoint, "testing", "testing").await
    }

    /// Clients with specific credentials (for IAM-enforced moto).
    pub async fn with_credentials(endpoint: &str, key: &str, secret: &str) -> Self {
        Self::in_region_with(endpoint, "us-east-1", key, secret).await
    }

    /// Clients of moto's own account in another region.
    pub async fn in_region(endpoint: &str, region: &str) -> Self {
        Self::in_region_with(endpoint, region, "testing", "testing").await
    }

    async fn in_region_with(endpoint: &str, region: &str, key: &str, secret: &str) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .load()
            .await;
        Self::of(sdk)
    }

    /// Clients acting in another account and region of moto: credentials of a role assumed in `account` (moto
    /// keeps accounts apart by the assumed role's credentials; the role need not exist).
    pub async fn in_account(endpoint: &str, account: &str, region: &str) -> Self {
        let local = Self::new(endpoint).await;
        let assumed = aws_sdk_sts::Client::new(&local.sdk)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/test-builder"))
            .role_session_name("test-builder")
            .send()
            .await
            .expect("AssumeRole")
            .credentials
            .unwrap();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(
                assumed.access_key_id,
                assumed.secret_access_key,
                Some(assumed.session_token),
                None,
                "test",
            ))
            .load()
            .await;
        Self::of(sdk)
    }

    fn of(sdk: SdkConfig) -> Self {
        Self {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(&sdk),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
            sdk,
        }
    }

    /// Launches `count` instances, tagging them with `tags`.
    pub async fn launch(&self, count: i32, tags: &[(&str, &str)]) -> Vec<String> {
        let mut request = self
            .ec2
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (key, value) in tags {
                spec = spec.tags(Tag::builder().key(*key).value(*value).build());
            }
            request = request.tag_specifications(spec.build());
        }
        let output = request.send().await.expect("RunInstances");
        output
            .instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect()
    }

    /// Launches `count` instances in the Availability Zone `zone`.
    pub async fn launch_in(&self, count: i32, zone: &str) -> Vec<String> {
        let output = self
            .ec2
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .placement(
                aws_sdk_ec2::types::Placement::builder()
                    .availability_zone(zone)
                    .build(),
            )
            .send()
            .await
            .expect("RunInstances");
        output
            .instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect()
    }

    /// Creates a classic ELB named `name` with these instances registered.
    pub async fn balancer(&self, name: &str, instances: &[String]) {
        self.elb
            .create_load_balancer()
            .load_balancer_name(name)
            .listeners(
                Listener::builder()
                    .protocol("HTTP")
                    .load_balancer_port(80)
                    .instance_port(80)
                    .build()
                    .unwrap(),
            )
            .availability_zones(format!("{}a", self.region()))
            .send()
            .await
            .expect("CreateLoadBalancer");
        self.register(name, instances).await;
    }

    /// The region the clients act in.
    pub fn region(&self) -> String {
        self.sdk
            .region()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Registers more instances with the classic ELB `name`.
    pub async fn register(&self, name: &str, instances: &[String]) {
        let mut register = self
            .elb
            .register_instances_with_load_balancer()
            .load_balancer_name(name);
        for id in instances {
            register = register.instances(Instance::builder().instance_id(id).build());
        }
        register
            .send()
            .await
            .expect("RegisterInstancesWithLoadBalancer");
    }

    /// A balancer with `healthy` running and `broken` stopped (OutOfService) instances; returns (healthy, broken).
    pub async fn balancer_with(
        &self,
        name: &str,
        healthy: i32,
        broken: i32,
    ) -> (Vec<String>, Vec<String>) {
        let good = self.launch(healthy, &[]).await;
        let bad = if broken > 0 {
            self.launch(broken, &[]).await
        } else {
            Vec::new()
        };
        let all: Vec<String> = good.iter().chain(&bad).cloned().collect();
        self.balancer(name, &all).await;
        self.stop(&bad).await;
        (good, bad)
    }

    /// Stops instances, which makes moto's ELB report them OutOfService.
    pub async fn stop(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.ec2
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("StopInstances");
    }

    /// Starts stopped instances again, which makes moto's ELB report them InService.
    pub async fn start(&self, ids: &[String]) {
        self.ec2
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("StartInstances");
    }

    /// The EC2 state name of one instance.
    pub async fn state(&self, id: &str) -> InstanceStateName {
        let output = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("DescribeInstances");
        output.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .clone()
    }

    /// True when no instance of `ids` has been terminated or is shutting down.
    pub async fn none_terminated(&self, ids: &[String]) -> bool {
        for id in ids {
            if matches!(
                self.state(id).await,
                InstanceStateName::Terminated | InstanceStateName::ShuttingDown
            ) {
                return false;
            }
        }
        true
    }

    /// The default VPC's id and its subnets.
    async fn default_network(&self) -> (String, Vec<String>) {
        let subnets = self
            .ec2
            .describe_subnets()
            .send()
            .await
            .expect("DescribeSubnets");
        let vpc = subnets.subnets()[0].vpc_id().unwrap().to_owned();
        let ids = subnets
            .subnets()
            .iter()
            .filter(|s| s.vpc_id() == Some(vpc.as_str()))
            .map(|s| s.subnet_id().unwrap().to_owned())
            .collect();
        (vpc, ids)
    }

    /// An ALB named `name` forwarding to a new instance target group `name` with these instances registered.
    pub async fn target_group(&self, name: &str, instances: &[String]) -> TargetGroup {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, ProtocolEnum, TargetDescription, TargetTypeEnum,
        };
        let (vpc, subnets) = self.default_network().await;
        let balancer = self
            .elbv2
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(subnets[..2].to_vec()))
            .send()
            .await
            .expect("CreateLoadBalancer (ALB)");
        let balancer_arn = balancer.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_owned();
        let group = self
            .elbv2
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Instance)
            .send()
            .await
            .expect("CreateTargetGroup");
        let arn = group.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_owned();
        self.elbv2
            .create_listener()
            .load_balancer_arn(&balancer_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&arn)
                    .build(),
            )
            .send()
            .await
            .expect("CreateListener");
        if !instances.is_empty() {
            let mut register = self.elbv2.register_targets().target_group_arn(&arn);
            for id in instances {
                register = register.targets(TargetDescription::builder().id(id).build());
            }
            register.send().await.expect("RegisterTargets");
        }
        let (_, balancer_dimension) = balancer_arn.split_once(":loadbalancer/").unwrap();
        TargetGroup {
            dimension: arn
                .split_once(":targetgroup/")
                .map(|(_, r)| format!("targetgroup/{r}"))
                .unwrap(),
            balancer_dimension: balancer_dimension.to_owned(),
            arn,
        }
    }

    /// A target group with `healthy` running and `broken` stopped instances; returns it with (healthy, broken).
    pub async fn target_group_with(
        &self,
        name: &str,
        healthy: i32,
        broken: i32,
    ) -> (TargetGroup, Vec<String>, Vec<String>) {
        let good = self.launch(healthy, &[]).await;
        let bad = self.launch(broken, &[]).await;
        let all: Vec<String> = good.iter().chain(&bad).cloned().collect();
        let group = self.target_group(name, &all).await;
        self.stop(&bad).await;
        (group, good, bad)
    }

    /// An Auto Scaling group `name` of `size` instances behind the target group `arn`, tagged
    /// `reflex:managed=true`;
    /// returns its instances.
    pub async fn auto_scaling_group(
        &self,
        name: &str,
        target_group_arn: &str,
        size: i32,
    ) -> Vec<String> {
        self.auto_scaling_group_behind(name, Behind::TargetGroup(target_group_arn), size)
            .await
    }

    /// An Auto Scaling group `name` of `size` instances behind `behind` (a target group or a classic load
    /// balancer), tagged `reflex:managed=true`; returns its instances.
    pub async fn auto_scaling_group_behind(
        &self,
        name: &str,
        behind: Behind<'_>,
        size: i32,
    ) -> Vec<String> {
        use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
        let (_, subnets) = self.default_network().await;
        self.ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-12345678")
                    .instance_type(InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        self.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(name)
                    .build(),
            )
            .min_size(size)
            .max_size(size + 1)
            .desired_capacity(size)
            .vpc_zone_identifier(&subnets[0])
            .set_target_group_arns(match behind {
                Behind::TargetGroup(arn) => Some(vec![arn.to_owned()]),
                Behind::Balancer(_) => None,
            })
            .set_load_balancer_names(match behind {
                Behind::Balancer(name) => Some(vec![name.to_owned()]),
                Behind::TargetGroup(_) => None,
            })
            .tags(
                Tag::builder()
                    .key("reflex:managed")
                    .value("true")
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        let groups = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        groups.auto_scaling_groups()[0]
            .instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect()
    }

    /// The health status Auto Scaling holds for `id` (`HEALTHY`, `UNHEALTHY`), `None` when it is in no group.
    pub async fn asg_health(&self, id: &str) -> Option<String> {
        let output = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("DescribeAutoScalingInstances");
        output
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.health_status())
            .map(|s| s.to_ascii_uppercase())
    }
}

/// A target group built in moto.
pub struct TargetGroup {
    /// Its ARN.
    pub arn: String,
    /// `targetgroup/NAME/ID`, as CloudWatch's TargetGroup dimension names it.
    pub dimension: String,
    /// `app/NAME/ID`, as CloudWatch's LoadBalancer dimension names its ALB.
    pub balancer_dimension: String,
}
