//! The port a notification format plugs into: which events it sends at all and the body a receiver takes for
//! one. A format is one file under `sinks/` and one line in `sinks::of`; the notifier does the rest for every
//! format (which events each `[[notify]]` entry wants, durable jobs, bounded attempts, retries, records).

use serde_json::Value;

use crate::config::NotifyEvent;
use crate::events::Event;

/// A notification format.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Whether it sends `event` at all, whatever its entry's `events` say: every event, unless it says
    /// otherwise.
    fn sends(&self, event: NotifyEvent) -> bool {
        let _ = event;
        true
    }

    /// The request body for `event`; `links` says where each record's audit page is.
    fn body(&self, event: &Event, links: &Links) -> Value;

    /// Whether its receiver is Slack, whose approval buttons answer to the webhook's origin.
    fn is_slack(&self) -> bool {
        false
    }
}

/// Where the audit page of a record is, when `server.public_url` says where reflex is.
#[derive(Debug, Clone, Default)]
pub struct Links {
    base: Option<String>,
}

impl Links {
    /// Links under `public_url` (none when it is not set).
    pub fn under(public_url: Option<&str>) -> Self {
        Self {
            base: public_url.map(|url| url.trim_end_matches('/').to_owned()),
        }
    }

    /// The audit page of the record `audit_id`.
    pub fn record(&self, audit_id: &str) -> Option<String> {
        self.base
            .as_ref()
            .map(|base| format!("{base}/audit/{audit_id}"))
    }
}
