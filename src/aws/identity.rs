//! Who reflex is on AWS: STS GetCallerIdentity, asked once at start-up for the account reflex itself runs in.

use aws_config::SdkConfig;

use super::AwsError;

/// The AWS account id the configured credentials belong to.
pub async fn caller_account(sdk: &SdkConfig) -> Result<String, AwsError> {
    let identity = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| AwsError {
            operation: "GetCallerIdentity",
            detail: aws_sdk_sts::error::DisplayErrorContext(&err).to_string(),
        })?;
    identity.account.ok_or_else(|| AwsError {
        operation: "GetCallerIdentity",
        detail: "the answer names no account".to_owned(),
    })
}
