//! SNS ConfirmSubscription, for `sns.confirm = "api"`.

use aws_config::SdkConfig;
use aws_sdk_sns::error::DisplayErrorContext;

use super::AwsError;

/// The SNS client, narrowed to the one call reflex makes.
#[derive(Clone, Debug)]
pub struct Subscriptions {
    sns: aws_sdk_sns::Client,
}

impl Subscriptions {
    /// Creates the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }

    /// Confirms a subscription with its token; only the topic owner can then unsubscribe it. The call goes to
    /// the topic's own region (its ARN's), which may be another than `aws.region`.
    pub async fn confirm(&self, topic_arn: &str, token: &str) -> Result<String, AwsError> {
        let mut request = self
            .sns
            .confirm_subscription()
            .topic_arn(topic_arn)
            .token(token)
            .authenticate_on_unsubscribe("true")
            .customize();
        let region = topic_arn
            .split(':')
            .nth(3)
            .filter(|region| !region.is_empty());
        let own = self.sns.config().region().map(|own| own.as_ref());
        if let Some(region) = region
            && Some(region) != own
        {
            request = request.config_override(
                aws_sdk_sns::config::Builder::default()
                    .region(aws_config::Region::new(region.to_owned())),
            );
        }
        let output = request.send().await.map_err(|err| AwsError {
            operation: "ConfirmSubscription",
            detail: DisplayErrorContext(&err).to_string(),
        })?;
        Ok(output.subscription_arn().unwrap_or_default().to_owned())
    }
}
