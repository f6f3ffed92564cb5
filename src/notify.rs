//! Notifications: events (a run acted, was refused, a breaker tripped, a target did not recover) sent to the
//! `[[notify]]` webhooks, as Slack incoming-webhook messages or plain JSON. A bounded queue and a background
//! task deliver them with retries and backoff, so a slow or failing receiver never delays an answer; each
//! delivery's result is an audit record and a metric. A full queue drops the event (counted), never blocks.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};

use crate::audit::{AuditStore, Outcome, RequestMeta, Source};
use crate::config::{Config, NotifyEvent, NotifyFormat};
use crate::metrics::Metrics;

/// Events waiting for delivery before new ones are dropped.
const QUEUE_DEPTH: usize = 1024;
/// Deliveries under way at once.
const PARALLEL: usize = 8;
/// Attempts per delivery: the first and three retries.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// One attempt's bound.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Something an operator wants to hear about.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Which kind.
    pub event: NotifyEvent,
    /// The target it concerns.
    pub target: String,
    /// One sentence saying what happened.
    pub text: String,
    /// The audit record it comes from.
    pub audit_id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Event {
    /// An event of `kind` about `target` now.
    pub fn new(event: NotifyEvent, target: &str, text: String, audit_id: &str) -> Self {
        Self {
            event,
            target: target.to_owned(),
            text,
            audit_id: audit_id.to_owned(),
            at: OffsetDateTime::now_utc(),
        }
    }
}

/// Why notifications cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The HTTP client could not be built.
    #[error("cannot build the notification HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One `[[notify]]` webhook.
#[derive(Debug)]
struct Sink {
    url: reqwest::Url,
    format: NotifyFormat,
    events: Vec<NotifyEvent>,
}

/// Hands events to the delivery task; cheap to clone. Without `[[notify]]` entries it drops them at once.
#[derive(Debug, Clone)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Event>>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// A notifier that sends nothing (no `[[notify]]` entries; tests).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            queue: None,
            metrics,
        }
    }

    /// Starts the delivery task for the configured webhooks (none: a disabled notifier). It ends when every
    /// clone of the notifier is gone.
    pub fn start(
        config: &Config,
        audit: AuditStore,
        metrics: Arc<Metrics>,
    ) -> Result<Self, NotifyError> {
        let sinks: Vec<Sink> = config
            .notify
            .iter()
            .filter_map(|entry| {
                let url = reqwest::Url::parse(entry.url.as_ref()?.expose()).ok()?;
                Some(Sink {
                    url,
                    format: entry.format,
                    events: entry.events.clone(),
                })
            })
            .collect();
        if sinks.is_empty() {
            return Ok(Self::disabled(metrics));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(ATTEMPT_TIMEOUT)
            .build()?;
        let (queue, events) = mpsc::channel(QUEUE_DEPTH);
        let delivery = Delivery {
            client,
            sinks: sinks.into(),
            audit,
            metrics: Arc::clone(&metrics),
            public_url: config
                .server
                .public_url
                .as_deref()
                .map(|url| url.trim_end_matches('/').to_owned()),
        };
        tokio::spawn(delivery.run(events));
        Ok(Self {
            queue: Some(queue),
            metrics,
        })
    }

    /// Queues `event` for every webhook that wants it; never waits (a full queue drops it, counted).
    pub fn send(&self, event: Event) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(event).is_err() {
            tracing::warn!("notification queue full: an event was dropped");
            Metrics::count(&self.metrics.notifications, "dropped");
        }
    }
}

/// The delivery task's state.
struct Delivery {
    client: reqwest::Client,
    sinks: Arc<[Sink]>,
    audit: AuditStore,
    metrics: Arc<Metrics>,
    public_url: Option<String>,
}

/// How one delivery ended.
#[derive(Debug, Serialize)]
struct Delivered {
    event: NotifyEvent,
    about: String,
    /// The receiver's host only: a webhook URL carries its secret in the path.
    host: String,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Delivery {
    async fn run(self, mut events: mpsc::Receiver<Event>) {
        let this = Arc::new(self);
        let parallel = Arc::new(Semaphore::new(PARALLEL));
        while let Some(event) = events.recv().await {
            for index in 0..this.sinks.len() {
                if !this.sinks[index].events.contains(&event.event) {
                    continue;
                }
                let Ok(permit) = Arc::clone(&parallel).acquire_owned().await else {
                    return;
                };
                let this = Arc::clone(&this);
                let event = event.clone();
                tokio::spawn(async move {
                    this.deliver(&this.sinks[index], &event).await;
                    drop(permit);
                });
            }
        }
    }

    /// Posts `event` to `sink`, retrying failures with backoff, and records the result.
    async fn deliver(&self, sink: &Sink, event: &Event) {
        let body = self.body(sink.format, event);
        let mut result = Delivered {
            event: event.event,
            about: event.audit_id.clone(),
            host: sink.url.host_str().unwrap_or_default().to_owned(),
            attempts: 0,
            status: None,
            error: None,
        };
        let mut backoff = FIRST_BACKOFF;
        while result.attempts < ATTEMPTS {
            if result.attempts > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            result.attempts += 1;
            match self.client.post(sink.url.clone()).json(&body).send().await {
                Ok(response) => {
                    let status = response.status();
                    result.status = Some(status.as_u16());
                    if status.is_success() {
                        result.error = None;
                        break;
                    }
                    result.error = Some(format!("the receiver answered {status}"));
                    // A request the receiver will never take (a revoked webhook) is not retried.
                    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                    {
                        break;
                    }
                }
                Err(err) => {
                    result.status = None;
                    result.error = Some(format!("cannot reach the receiver: {err}"));
                }
            }
        }
        let delivered = result.error.is_none();
        Metrics::count(
            &self.metrics.notifications,
            if delivered { "delivered" } else { "failed" },
        );
        if !delivered {
            tracing::warn!(host = result.host, error = ?result.error, "notification not delivered");
        }
        let mut meta = RequestMeta::new(Source::Notify, None);
        meta.target = Some(event.target.clone());
        meta.note("notification", &result);
        let (outcome, code) = if delivered {
            (Outcome::Completed, None)
        } else {
            (Outcome::Rejected, Some("notify-failed"))
        };
        let record = meta.into_record(outcome, result.status.unwrap_or(0), code, 0);
        if let Err(err) = self.audit.put(record).await {
            tracing::error!(error = %err, "cannot record a notification's delivery");
        }
    }

    /// The request body for `format`.
    fn body(&self, format: NotifyFormat, event: &Event) -> serde_json::Value {
        let link = self
            .public_url
            .as_ref()
            .map(|base| format!("{base}/audit/{}", event.audit_id));
        match format {
            NotifyFormat::Json => {
                let mut body = serde_json::to_value(event).unwrap_or_default();
                if let (Some(link), Some(fields)) = (&link, body.as_object_mut()) {
                    fields.insert("link".into(), link.clone().into());
                }
                body
            }
            NotifyFormat::Slack => {
                let record = match &link {
                    Some(link) => format!("<{link}|audit {}>", event.audit_id),
                    None => format!("audit {}", event.audit_id),
                };
                serde_json::json!({
                    "text": format!(
                        "*reflex: {}* on `{}`: {} ({record})",
                        event.event.as_str(),
                        slack_escape(&event.target),
                        slack_escape(&event.text),
                    )
                })
            }
        }
    }
}

/// Escapes the three characters Slack's mrkdwn gives meaning to.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
