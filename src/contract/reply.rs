//! The answers reflex gives to an accepted request, as typed structs serialised once. The contract's JSON
//! keys (`message`, `elb-instance-ids`, ...) are fixed by `Summary`.

use bytes::Bytes;
use serde::Serialize;

use super::Summary;

/// The body of an answer that is not an error.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// One remediation (SNS, manual, CLI).
    Summary(Box<Summary>),
    /// Alertmanager and Grafana: one summary per load balancer the alert group named.
    Results {
        /// The summaries, in the group's order.
        results: Vec<Summary>,
    },
    /// An SNS subscription message.
    Subscription(SubscriptionReply),
}

/// The answer to a SubscriptionConfirmation or UnsubscribeConfirmation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubscriptionReply {
    /// The SNS Message.
    pub message: String,
    /// The topic.
    pub topic_arn: String,
    /// `confirmed` once the subscription was confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<&'static str>,
    /// Why nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
    /// The audit record of the request.
    pub audit_id: String,
}

impl Reply {
    /// The JSON body.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(self).map_or_else(|_| Bytes::from_static(b"{}"), Bytes::from)
    }

    /// The JSON body a redelivery of the same request gets: every summary marked `duplicate`.
    pub fn redelivered(&self) -> Bytes {
        let mut again = self.clone();
        match &mut again {
            Self::Summary(summary) => summary.duplicate = true,
            Self::Results { results } => {
                for summary in results {
                    summary.duplicate = true;
                }
            }
            Self::Subscription(_) => {}
        }
        again.to_bytes()
    }
}
