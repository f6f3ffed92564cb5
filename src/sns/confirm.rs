//! Confirming a verified SubscriptionConfirmation: a GET of its validated SubscribeURL, or the SNS API.

use super::{SnsError, SubscribeUrl, Verified};
use crate::aws::{SnsFetcher, Subscriptions};
use crate::config::ConfirmMethod;

/// Why a confirmation did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// The SubscribeURL breaks the URL policy (never fetched).
    #[error(transparent)]
    Untrusted(#[from] SnsError),
    /// SNS could not be reached or refused.
    #[error("confirming the subscription failed: {0}")]
    Failed(String),
}

/// Confirms subscriptions the configured way.
#[derive(Debug)]
pub struct Confirmer {
    method: ConfirmMethod,
    fetcher: SnsFetcher,
    api: Subscriptions,
}

impl Confirmer {
    /// A confirmer using `method`.
    pub fn new(method: ConfirmMethod, fetcher: SnsFetcher, api: Subscriptions) -> Self {
        Self {
            method,
            fetcher,
            api,
        }
    }

    /// Confirms the subscription of a verified SubscriptionConfirmation (its topic is already allowed);
    /// returns how it was confirmed, for the audit trail.
    pub async fn confirm(&self, verified: &Verified) -> Result<&'static str, ConfirmError> {
        let message = verified.message();
        let raw_url = message.subscribe_url.as_deref().unwrap_or_default();
        match self.method {
            ConfirmMethod::SubscribeUrl => {
                let url = SubscribeUrl::parse(raw_url)?;
                if url.region() != super::verify::topic_region(&message.topic_arn) {
                    return Err(SnsError::UntrustedUrl {
                        field: "SubscribeURL",
                        reason: "its SNS host is not in the topic's region".to_owned(),
                    }
                    .into());
                }
                self.fetcher
                    .get(url.as_str(), url.path_and_query())
                    .await
                    .map_err(|err| ConfirmError::Failed(err.to_string()))?;
                Ok("subscribe-url")
            }
            ConfirmMethod::Api => {
                let token = message.token.as_deref().unwrap_or_default();
                self.api
                    .confirm(&message.topic_arn, token)
                    .await
                    .map_err(|err| ConfirmError::Failed(err.to_string()))?;
                Ok("api")
            }
        }
    }
}
