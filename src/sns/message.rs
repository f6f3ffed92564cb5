//! The SNS HTTP/S message as delivered, and the exact string AWS signs for each message type.

use serde::Deserialize;
use serde::de::Deserializer;

use super::SnsError;

/// The three message types SNS delivers to HTTP/S endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message.
    Notification,
    /// Sent once when the subscription is created; must be confirmed.
    SubscriptionConfirmation,
    /// Sent when the subscription is deleted.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The `Type` value and `x-amz-sns-message-type` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "Notification" => Some(Self::Notification),
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

/// The JSON fields of a delivery, exactly as decoded. Nothing here is trusted until `Verifier::verify`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawMessage {
    #[serde(rename = "Type")]
    pub(super) kind: Option<String>,
    pub(super) message_id: Option<String>,
    pub(super) token: Option<String>,
    pub(super) topic_arn: Option<String>,
    /// Absent, `null` and `""` differ: absent and null are left out of the signed string.
    #[serde(default, deserialize_with = "present")]
    pub(super) subject: Option<Option<String>>,
    pub(super) message: Option<String>,
    #[serde(rename = "SubscribeURL")]
    pub(super) subscribe_url: Option<String>,
    pub(super) timestamp: Option<String>,
    pub(super) signature_version: Option<String>,
    pub(super) signature: Option<String>,
    #[serde(rename = "SigningCertURL")]
    pub(super) signing_cert_url: Option<String>,
}

/// Keeps `Some(None)` for an explicit `null`, so that it can be told apart from an absent field.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A delivery whose fields are all present and well-formed, but whose signature is not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The message type.
    pub kind: MessageType,
    /// SNS's id for the message; redeliveries carry the same one.
    pub message_id: String,
    /// The topic.
    pub topic_arn: String,
    /// The subject, when present and not null.
    pub subject: Option<String>,
    /// The message body.
    pub message: String,
    /// ISO-8601 time the message was published.
    pub timestamp: String,
    /// `1` (RSA-SHA1) or `2` (RSA-SHA256).
    pub signature_version: String,
    /// Base64 signature.
    pub signature: String,
    /// Where the signing certificate is.
    pub signing_cert_url: String,
    /// Confirmation messages only.
    pub token: Option<String>,
    /// Confirmation messages only.
    pub subscribe_url: Option<String>,
}

impl Unverified {
    /// Parses a delivery body. Unsigned bodies (raw message delivery, or anything else) are rejected here.
    pub fn parse(body: &[u8]) -> Result<Self, SnsError> {
        let raw: RawMessage = serde_json::from_slice(body).map_err(|err| {
            if err.is_data() {
                SnsError::InvalidMessage(err.to_string())
            } else {
                SnsError::MalformedJson(err.to_string())
            }
        })?;
        if raw.signature.is_none() && raw.signing_cert_url.is_none() {
            return Err(SnsError::Unsigned);
        }
        let field =
            |value: Option<String>, name: &'static str| value.ok_or(SnsError::MissingField(name));
        let kind_text = field(raw.kind, "Type")?;
        let kind = MessageType::parse(&kind_text).ok_or(SnsError::UnknownType(kind_text))?;
        let (token, subscribe_url) = match kind {
            MessageType::Notification => (None, None),
            _ => (
                Some(field(raw.token, "Token")?),
                Some(field(raw.subscribe_url, "SubscribeURL")?),
            ),
        };
        let message = Self {
            kind,
            message_id: field(raw.message_id, "MessageId")?,
            topic_arn: field(raw.topic_arn, "TopicArn")?,
            subject: raw.subject.flatten(),
            message: field(raw.message, "Message")?,
            timestamp: field(raw.timestamp, "Timestamp")?,
            signature_version: field(raw.signature_version, "SignatureVersion")?,
            signature: field(raw.signature, "Signature")?,
            signing_cert_url: field(raw.signing_cert_url, "SigningCertURL")?,
            token,
            subscribe_url,
        };
        message.check_shapes()?;
        Ok(message)
    }

    /// Every signed field that reflex keys on or compares must have SNS's shape. The signed string is
    /// `Key\nValue\n` pairs, so a value holding a newline could move text between fields without changing
    /// the signature (e.g. a new MessageId carved out of the Message): such values are refused here.
    fn check_shapes(&self) -> Result<(), SnsError> {
        let invalid = |field, expected| Err(SnsError::InvalidField { field, expected });
        let id_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if self.message_id.is_empty()
            || self.message_id.len() > 128
            || !self.message_id.chars().all(id_char)
        {
            return invalid("MessageId", "1 to 128 letters, digits and hyphens");
        }
        if !is_topic_arn(&self.topic_arn) {
            return invalid(
                "TopicArn",
                "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
            );
        }
        let time_char =
            |c: char| c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | 'T' | 'Z' | '+');
        if self.timestamp.is_empty()
            || self.timestamp.len() > 40
            || !self.timestamp.chars().all(time_char)
        {
            return invalid(
                "Timestamp",
                "an ISO-8601 time such as 2026-01-01T00:00:00.000Z",
            );
        }
        Ok(())
    }

    /// The key that deduplicates deliveries of this message: its MessageId bound to a digest of everything
    /// that was signed, so that no rewrite that keeps the signature valid can pass for a new delivery, and
    /// unsigned fields (SigningCertURL, MessageAttributes) cannot make one.
    pub fn delivery_key(&self) -> String {
        self.delivery_key_of(&self.string_to_sign())
    }

    /// `delivery_key` from the already built signed string.
    pub(super) fn delivery_key_of(&self, signed: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signed.as_bytes());
        format!(
            "sns:{}:{}",
            self.message_id,
            crate::hex::encode(&digest.as_ref()[..16])
        )
    }

    /// The string AWS signed: `Key\nValue\n` pairs in byte order of the key names, values exactly as decoded.
    pub fn string_to_sign(&self) -> String {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut pair = |key: &str, value: &str| {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        pair("Message", &self.message);
        pair("MessageId", &self.message_id);
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    pair("Subject", subject);
                }
                pair("Timestamp", &self.timestamp);
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                pair(
                    "SubscribeURL",
                    self.subscribe_url.as_deref().unwrap_or_default(),
                );
                pair("Timestamp", &self.timestamp);
                pair("Token", self.token.as_deref().unwrap_or_default());
            }
        }
        pair("TopicArn", &self.topic_arn);
        pair("Type", self.kind.as_str());
        out
    }
}

/// `arn:<partition>:sns:<region>:<12-digit account>:<name>`, as SNS names topics.
pub fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_literal, partition, service, region, account, name] = parts.as_slice() else {
        return false;
    };
    *arn_literal == "arn"
        && (*partition == "aws" || partition.starts_with("aws-"))
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-')
        && *service == "sns"
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: &str) -> String {
        format!(
            r#"{{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"hi\n",
            "Timestamp":"2026-01-01T00:00:00.000Z","SignatureVersion":"2","Signature":"c2ln",
            "SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"{extra}}}"#
        )
    }

    #[test]
    fn subject_absent_null_and_empty_differ() {
        let absent = Unverified::parse(body("").as_bytes()).unwrap();
        let null = Unverified::parse(body(r#","Subject":null"#).as_bytes()).unwrap();
        let empty = Unverified::parse(body(r#","Subject":"""#).as_bytes()).unwrap();
        assert!(!absent.string_to_sign().contains("Subject"));
        assert_eq!(absent.string_to_sign(), null.string_to_sign());
        assert!(empty.string_to_sign().contains("Subject\n\nTimestamp"));
    }

    #[test]
    fn notification_string_keeps_values_verbatim() {
        let message = Unverified::parse(body(r#","Subject":"s""#).as_bytes()).unwrap();
        assert_eq!(
            message.string_to_sign(),
            "Message\nhi\n\nMessageId\nm-1\nSubject\ns\nTimestamp\n2026-01-01T00:00:00.000Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:t\nType\nNotification\n"
        );
    }

    #[test]
    fn rejections_are_precise() {
        assert!(matches!(
            Unverified::parse(b"{not json"),
            Err(SnsError::MalformedJson(_))
        ));
        assert!(matches!(
            Unverified::parse(b"[1]"),
            Err(SnsError::InvalidMessage(_))
        ));
        assert!(matches!(
            Unverified::parse(br#"{"AlarmName":"x","NewStateValue":"ALARM"}"#),
            Err(SnsError::Unsigned)
        ));
        let no_id = body("").replace(r#""MessageId":"m-1","#, "");
        assert!(matches!(
            Unverified::parse(no_id.as_bytes()),
            Err(SnsError::MissingField("MessageId"))
        ));
        let odd = body("").replace(r#""Type":"Notification""#, r#""Type":"Other""#);
        assert!(matches!(
            Unverified::parse(odd.as_bytes()),
            Err(SnsError::UnknownType(_))
        ));
        let confirmation = body("").replace(
            r#""Type":"Notification""#,
            r#""Type":"SubscriptionConfirmation""#,
        );
        assert!(matches!(
            Unverified::parse(confirmation.as_bytes()),
            Err(SnsError::MissingField("Token"))
        ));
    }
}
