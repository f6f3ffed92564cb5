//! One set of SDK clients per place (account and region), built from the one `SdkConfig` factory: the local
//! account's with reflex's own credentials, another account's with the credentials of the role assumed there.
//! Targets in the same place share their clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::identity::IdentityCache;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

use super::assumed::{AssumedRole, RoleCredentials};
use super::fleet::AwsFleet;
use crate::config::{Config, TargetConfig};
use crate::engine::port::{
    AlarmState, BoxFuture, Ec2Facts, Fleet, FleetError, GroupChange, Resources, Snapshot,
    TargetGroupInfo, TargetRef,
};
use crate::metrics::Metrics;

/// The fleets of every place the configured targets are in.
#[derive(Debug)]
pub struct Places {
    local: SdkConfig,
    roles: HashMap<String, Arc<AssumedRole>>,
    fleets: Mutex<HashMap<(String, String), Arc<dyn Fleet>>>,
    metrics: Arc<Metrics>,
}

impl Places {
    /// The places of `config`'s accounts, reached from `local` (reflex's own SDK configuration).
    pub fn new(config: &Config, local: &SdkConfig, metrics: Arc<Metrics>) -> Self {
        let roles = config
            .accounts
            .iter()
            .map(|account| {
                let role = AssumedRole::new(account, local, Arc::clone(&metrics));
                (account.name.clone(), Arc::new(role))
            })
            .collect();
        Self {
            local: local.clone(),
            roles,
            fleets: Mutex::default(),
            metrics,
        }
    }

    /// The fleet that serves `target`: its account's clients in its region, made the first time.
    pub fn fleet_of(&self, config: &Config, target: &TargetConfig) -> Arc<dyn Fleet> {
        let account = target.account_name().to_owned();
        let region = config.region_of(target).to_owned();
        let mut fleets = self
            .fleets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (account, region);
        if let Some(fleet) = fleets.get(&key) {
            return Arc::clone(fleet);
        }
        let fleet = self.make(&key.0, &key.1);
        fleets.insert(key, Arc::clone(&fleet));
        fleet
    }

    fn make(&self, account: &str, region: &str) -> Arc<dyn Fleet> {
        let mut sdk = self.local.to_builder();
        sdk.set_region(Some(Region::new(region.to_owned())));
        let Some(role) = self.roles.get(account) else {
            return Arc::new(AwsFleet::new(&sdk.build(), Arc::clone(&self.metrics)));
        };
        // The role caches its credentials and refreshes them by its own margin, so the SDK's cache is not
        // put in front of it.
        let sdk = sdk
            .credentials_provider(SharedCredentialsProvider::new(RoleCredentials(Arc::clone(
                role,
            ))))
            .identity_cache(IdentityCache::no_cache())
            .build();
        Arc::new(Assumed {
            role: Arc::clone(role),
            clients: AwsFleet::new(&sdk, Arc::clone(&self.metrics)),
        })
    }
}

/// Another account's fleet: every call first makes sure the role's credentials are at hand, so that a role
/// that cannot be assumed fails as `sts:AssumeRole` for that account, not as the call it was needed for.
#[derive(Debug)]
struct Assumed {
    role: Arc<AssumedRole>,
    clients: AwsFleet,
}

impl Assumed {
    async fn with_role<T>(
        &self,
        call: impl Future<Output = Result<T, FleetError>>,
    ) -> Result<T, FleetError> {
        self.role.credentials().await?;
        call.await
    }
}

impl Fleet for Assumed {
    fn target_group<'a>(
        &'a self,
        name_or_arn: &'a str,
    ) -> BoxFuture<'a, Result<TargetGroupInfo, FleetError>> {
        Box::pin(self.with_role(self.clients.target_group(name_or_arn)))
    }

    fn snapshot<'a>(
        &'a self,
        target: &'a TargetRef,
    ) -> BoxFuture<'a, Result<Snapshot, FleetError>> {
        Box::pin(self.with_role(self.clients.snapshot(target)))
    }

    fn instances<'a>(
        &'a self,
        resources: &'a Resources,
    ) -> BoxFuture<'a, Result<HashMap<String, Ec2Facts>, FleetError>> {
        Box::pin(self.with_role(self.clients.instances(resources)))
    }

    fn alarm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<AlarmState>, FleetError>> {
        Box::pin(self.with_role(self.clients.alarm(name)))
    }

    fn auto_scaling_groups<'a>(
        &'a self,
        instance_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, FleetError>> {
        Box::pin(self.with_role(self.clients.auto_scaling_groups(instance_ids)))
    }

    fn group_changes<'a>(
        &'a self,
        groups: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<GroupChange>, FleetError>> {
        Box::pin(self.with_role(self.clients.group_changes(groups)))
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.with_role(self.clients.terminate(instance_id)))
    }

    fn mark_unhealthy<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.with_role(self.clients.mark_unhealthy(instance_id)))
    }

    fn reboot<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.with_role(self.clients.reboot(instance_id)))
    }

    fn start<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(self.with_role(self.clients.start(instance_id)))
    }

    fn clients(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        Some(&self.clients)
    }
}
