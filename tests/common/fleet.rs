//! Builds test fleets in moto through the real AWS SDK: instances, a classic ELB, stopped instances.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_ec2::types::{InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_elasticloadbalancing::types::{Instance, Listener};

/// SDK clients talking to one moto server.
#[derive(Clone)]
pub struct Fleet {
    /// EC2 client.
    pub ec2: aws_sdk_ec2::Client,
    /// Classic ELB client.
    pub elb: aws_sdk_elasticloadbalancing::Client,
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
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .load()
            .await;
        Self {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(&sdk),
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
            .availability_zones("us-east-1a")
            .send()
            .await
            .expect("CreateLoadBalancer");
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
}
