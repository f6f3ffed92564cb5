//! The only way reflex reaches AWS: one `SdkConfig` factory and narrow adapters over the calls reflex makes.

mod assumed;
mod autoscaling;
mod classify;
mod cloudwatch;
mod ec2;
mod elb;
mod elbv2;
mod fleet;
mod identity;
mod places;
mod signed_get;
mod subscriptions;

pub use fleet::{AwsFleet, clients_of};
pub use identity::caller_account;
pub use places::Places;
pub use signed_get::{FetchError, SnsFetcher};
pub use subscriptions::Subscriptions;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::config::AwsConfig;

/// A failed AWS call outside the fleet port (SNS ConfirmSubscription).
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {detail}")]
pub struct AwsError {
    /// The AWS operation, e.g. `ConfirmSubscription`.
    pub operation: &'static str,
    /// The SDK's description, with the service's error code when there is one.
    pub detail: String,
}

/// Builds the shared SDK configuration: region, credentials (static keys from the config, else the standard
/// chain), connect/attempt/operation timeouts, retries, and the emulator endpoint when one is configured.
pub async fn sdk_config(aws: &AwsConfig) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(aws.connect_timeout())
        .operation_attempt_timeout(aws.operation_timeout() / aws.max_attempts.max(1))
        .operation_timeout(aws.operation_timeout())
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(aws.max_attempts));
    if let Some(endpoint) = &aws.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(key_id), Some(secret)) = (&aws.access_key_id, &aws.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            key_id.clone(),
            secret.expose().to_owned(),
            None,
            None,
            "reflex-config",
        ));
    }
    loader.load().await
}
