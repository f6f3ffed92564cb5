//! Notifications: events (a run acted, was refused, a breaker tripped, a target did not recover) sent to the
//! `[[notify]]` webhooks, each in its format (`sinks/`: Slack, PagerDuty, JSON). Each event becomes one durable job
//! per webhook that wants it, written in the same commit as the record it comes from, so a notification
//! queued before a crash or a restart is delivered after it; any process sharing the store delivers it. Each
//! attempt is bounded; failures are retried with backoff; the delivery's result is an audit record (written
//! with the job's removal, once) and a metric. The queue is bounded in the store: past it, events are dropped
//! (counted), never waited for.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, ClaimedJob, NewJob, Outcome, RequestMeta, Source};
use crate::config::{Config, NotifyEvent};
pub use crate::events::{Ask, Event, Tried};
use crate::job::Ran;
use crate::metrics::Metrics;
use crate::sink::{Links, Sink};

/// The job kind of a notification.
pub const JOB_KIND: &str = "notify";
/// One attempt's bound.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// A notification for a webhook this process does not know is put back this often ...
const UNKNOWN_SINK_AGAIN: Duration = Duration::from_secs(60);
/// ... this many times (an hour), then recorded as ignored.
const UNKNOWN_SINK_ATTEMPTS: u32 = 60;

/// Why notifications cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The HTTP client could not be built.
    #[error("cannot build the notification HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One `[[notify]]` webhook. Its `Debug` shows the host only: the URL carries the webhook's secret.
struct Webhook {
    /// Names the webhook in its jobs without its URL (a webhook URL carries its secret): a digest of it.
    id: String,
    url: reqwest::Url,
    format: Box<dyn Sink>,
    events: Vec<NotifyEvent>,
}

impl Webhook {
    /// Whether this webhook hears about `event`: its entry wants it and its format sends it.
    fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event) && self.format.sends(event)
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("host", &self.url.host_str().unwrap_or_default())
            .field("format", &self.format)
            .field("events", &self.events)
            .finish()
    }
}

/// A notification job's data: the event and the webhook it goes to.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    event: Event,
    sink: String,
}

/// Why a notification was not delivered this time.
#[derive(Debug)]
pub struct Undelivered {
    /// The receiver's answer, if it answered.
    status: Option<u16>,
    /// What failed, without the webhook's URL.
    why: String,
    /// Whether the receiver will never take it (a 4xx other than 429): given up at once.
    permanent: bool,
    /// The receiver's host (never its URL, which carries the webhook's secret).
    host: String,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Turns events into jobs and delivers them; cheap to clone. Without `[[notify]]` entries it makes no jobs.
#[derive(Debug, Clone)]
pub struct Notifier {
    sinks: Arc<[Webhook]>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    links: Links,
}

impl Notifier {
    /// A notifier that sends nothing (no `[[notify]]` entries; tests).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        // It still answers Slack's buttons (`respond_to_slack`): bounded, and never redirected elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            sinks: Arc::from(Vec::new()),
            client,
            metrics,
            links: Links::default(),
        }
    }

    /// The notifier of the configured webhooks (none: a disabled notifier).
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Self, NotifyError> {
        let sinks: Vec<Webhook> = config
            .notify
            .iter()
            .filter_map(|entry| {
                let secret = entry.url.as_ref()?.expose();
                let url = reqwest::Url::parse(secret).ok()?;
                // Entries to one URL (every PagerDuty integration posts to the same endpoint) differ by their
                // routing key: it is part of the digest, never stored itself.
                let id = match &entry.routing_key {
                    Some(key) => sink_id(&format!("{secret}\n{}", key.expose())),
                    None => sink_id(secret),
                };
                Some(Webhook {
                    id,
                    url,
                    format: crate::sinks::of(entry),
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
        Ok(Self {
            sinks: sinks.into(),
            client,
            metrics,
            links: Links::under(config.server.public_url.as_deref()),
        })
    }

    /// The jobs that deliver `event` to every webhook that wants it, due now. Past the queue's bound the
    /// notifications of routine events (acted, refused, held, would-act, ...) are dropped and counted; an
    /// escalation, its resolution and a breaker opening never are: a person must hear of them however many
    /// routine notifications wait before them.
    pub fn jobs_for(&self, event: &Event) -> Vec<NewJob> {
        let bounded = !matches!(
            event.event,
            NotifyEvent::Escalated | NotifyEvent::Resolved | NotifyEvent::BreakerTripped
        );
        self.sinks
            .iter()
            .filter(|sink| sink.wants(event.event))
            .map(|sink| NewJob {
                kind: JOB_KIND,
                dedup_key: None,
                delay_ms: 0,
                payload: serde_json::to_string(&Queued {
                    event: event.clone(),
                    sink: sink.id.clone(),
                })
                .unwrap_or_default(),
                bounded,
            })
            .collect()
    }

    /// Posts the update of a Slack message (an approval's outcome) to its `response_url`, when that is Slack's
    /// own host or a configured Slack webhook's origin; one bounded attempt, logged when it fails.
    pub async fn respond_to_slack(&self, response_url: &str, message: &serde_json::Value) {
        let webhooks: Vec<&reqwest::Url> = self
            .sinks
            .iter()
            .filter(|sink| sink.format.is_slack())
            .map(|sink| &sink.url)
            .collect();
        if !crate::slack::response_url_allowed(response_url, &webhooks) {
            tracing::warn!(
                "a Slack response_url outside Slack and the configured webhooks: not used"
            );
            return;
        }
        let sent = self.client.post(response_url).json(message).send().await;
        if let Err(err) = sent.and_then(reqwest::Response::error_for_status) {
            tracing::warn!(error = failure(&err), "cannot update the Slack message");
        }
    }

    /// Counts events dropped because the queue in the store was full.
    pub fn count_dropped(&self, dropped: usize) {
        if dropped > 0 {
            tracing::warn!(dropped, "notification queue full: events were dropped");
            self.metrics
                .notifications
                .get_or_create(&crate::metrics::OutcomeLabels { outcome: "dropped" })
                .inc_by(dropped as u64);
        }
    }

    /// One attempt at delivering `queued`, the notification job `job`: delivered, given up at once (the
    /// receiver will never take it, or its webhook is not configured here for an hour), put back, or failed
    /// for now (retried by the job's kind, then `undelivered`).
    pub async fn attempt(&self, job: &ClaimedJob, queued: &Queued) -> Ran<Undelivered> {
        let Some(sink) = self.sinks.iter().find(|sink| sink.id == queued.sink) else {
            // Another replica (or this one after a restart with other [[notify]] entries) may know the
            // webhook: put it back for an hour before giving up on it.
            let why = "its [[notify]] entry is not configured in this process";
            if job.attempts < UNKNOWN_SINK_ATTEMPTS {
                return Ran::Later(UNKNOWN_SINK_AGAIN, why.to_owned());
            }
            return Ran::finished(self.record(&queued.event, None, why, job));
        };
        let body = sink.format.body(&queued.event, &self.links);
        let host = sink.url.host_str().unwrap_or_default();
        let failed = match self.client.post(sink.url.clone()).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                Metrics::count(&self.metrics.notifications, "delivered");
                let delivered =
                    Delivered::of(&queued.event, host, job.attempts, Some(status), None);
                return Ran::finished(delivered.record(&queued.event));
            }
            Ok(response) => {
                let status = response.status();
                Undelivered {
                    status: Some(status.as_u16()),
                    why: format!("the receiver answered {status}"),
                    // A request the receiver will never take (a revoked webhook) is not retried.
                    permanent: status.is_client_error()
                        && status != reqwest::StatusCode::TOO_MANY_REQUESTS,
                    host: host.to_owned(),
                }
            }
            // The client's error names the URL, which carries the webhook's secret: say what failed, not where.
            Err(err) => Undelivered {
                status: None,
                why: format!("cannot reach the receiver: {}", failure(&err)),
                permanent: false,
                host: host.to_owned(),
            },
        };
        if failed.permanent {
            return Ran::finished(self.undelivered(job, queued, &failed));
        }
        Ran::Failed(failed)
    }

    /// The record of `queued`, the job `job`, given up: the last attempt `failed`.
    pub fn undelivered(
        &self,
        job: &ClaimedJob,
        queued: &Queued,
        failed: &Undelivered,
    ) -> AuditRecord {
        Metrics::count(&self.metrics.notifications, "failed");
        tracing::warn!(
            host = failed.host,
            error = failed.why,
            "notification not delivered"
        );
        let error = Some(failed.why.clone());
        let delivered = Delivered::of(
            &queued.event,
            &failed.host,
            job.attempts,
            failed.status,
            error,
        );
        delivered.record(&queued.event)
    }

    /// The record of a job that could not even be attempted.
    fn record(
        &self,
        event: &Event,
        status: Option<u16>,
        why: &str,
        job: &ClaimedJob,
    ) -> AuditRecord {
        let mut meta = RequestMeta::new(Source::Notify, None);
        meta.target = Some(event.target.clone());
        meta.place = event.place();
        meta.note(
            "notification",
            serde_json::json!({"job": job.id, "ignored": why}),
        );
        meta.into_record(Outcome::Ignored, status.unwrap_or(0), None, 0)
    }
}

/// How one delivery ended, as its audit record says.
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

impl Delivered {
    fn of(
        event: &Event,
        host: &str,
        attempts: u32,
        status: Option<u16>,
        error: Option<String>,
    ) -> Self {
        Self {
            event: event.event,
            about: event.audit_id.clone(),
            host: host.to_owned(),
            attempts,
            status,
            error,
        }
    }

    fn record(&self, event: &Event) -> AuditRecord {
        let mut meta = RequestMeta::new(Source::Notify, None);
        meta.target = Some(event.target.clone());
        meta.place = event.place();
        meta.note("notification", self);
        let (outcome, code) = match self.error {
            None => (Outcome::Completed, None),
            Some(_) => (Outcome::Rejected, Some("notify-failed")),
        };
        meta.into_record(outcome, self.status.unwrap_or(0), code, 0)
    }
}

/// What went wrong with a request, without the URL the client's error names.
fn failure(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_request() {
        "the request failed"
    } else {
        "the exchange failed"
    }
}

/// A webhook's id in its jobs: a digest of its URL (the URL itself is a secret and never stored).
fn sink_id(url: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, url.as_bytes());
    crate::hex::encode(&digest.as_ref()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_pagerduty_integrations_are_two_webhooks_each_with_its_own_routing_key() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str, key: &str| {
            let file = dir.path().join(name);
            std::fs::write(&file, key).unwrap();
            format!(
                "[[notify]]\nformat = \"pagerduty\"\nrouting_key_file = {file:?}\nevents = [\"escalated\"]\n"
            )
        };
        let text = format!(
            "[[targets]]\nload_balancer = \"web\"\n{}{}",
            entry("a", "KEY-A-0123456789"),
            entry("b", "KEY-B-0123456789")
        );
        let config = crate::config::parse(&text, std::iter::empty()).unwrap();
        let notifier = Notifier::start(&config, Arc::new(Metrics::default())).unwrap();
        let event = Event::new(NotifyEvent::Escalated, "web", "down".into(), "R1");
        let jobs = notifier.jobs_for(&event);
        assert_eq!(jobs.len(), 2);
        let sinks: Vec<String> = jobs
            .iter()
            .map(|job| serde_json::from_str::<Queued>(&job.payload).unwrap().sink)
            .collect();
        assert_ne!(sinks[0], sinks[1]);
        for (job, key) in jobs.iter().zip(["KEY-A-0123456789", "KEY-B-0123456789"]) {
            assert!(!job.payload.contains(key), "the key is never stored");
            let queued: Queued = serde_json::from_str(&job.payload).unwrap();
            let sink = notifier.sinks.iter().find(|s| s.id == queued.sink).unwrap();
            assert_eq!(
                sink.format.body(&event, &notifier.links)["routing_key"],
                key
            );
        }
        let acted = Event::new(NotifyEvent::Acted, "web", "replaced".into(), "R1");
        assert!(
            notifier.jobs_for(&acted).is_empty(),
            "PagerDuty hears only escalations"
        );
    }

    /// The repro: 2,000 held decisions' messages filled the shared queue, and the escalation to PagerDuty was
    /// dropped. Routine notifications are bounded; escalations, resolutions and breaker openings never are.
    #[test]
    fn escalations_are_never_dropped_past_the_queue_bound_and_routine_events_are() {
        let text = "[[targets]]\nload_balancer = \"web\"\n\
                    [[notify]]\nurl = \"https://hooks.example/reflex\"\n";
        let config = crate::config::parse(text, std::iter::empty()).unwrap();
        let notifier = Notifier::start(&config, Arc::new(Metrics::default())).unwrap();
        for (event, bounded) in [
            (NotifyEvent::Held, true),
            (NotifyEvent::WouldAct, true),
            (NotifyEvent::Acted, true),
            (NotifyEvent::Escalated, false),
            (NotifyEvent::Resolved, false),
            (NotifyEvent::BreakerTripped, false),
        ] {
            let jobs = notifier.jobs_for(&Event::new(event, "web", "x".into(), "R1"));
            assert_eq!(jobs.len(), 1, "{event:?}");
            assert_eq!(jobs[0].bounded, bounded, "{event:?}");
        }
    }

    #[test]
    fn a_webhook_is_named_by_a_digest_never_by_its_url() {
        let id = sink_id("https://hooks.example/T000/B000/secret");
        assert_eq!(id.len(), 16);
        assert!(!id.contains("secret"));
        assert_ne!(id, sink_id("https://hooks.example/T000/B000/other"));
    }

    /// A format written for this test only, as any format is written: what it sends and its body.
    #[derive(Debug)]
    struct Shout;

    impl Sink for Shout {
        fn sends(&self, event: NotifyEvent) -> bool {
            event == NotifyEvent::Acted
        }

        fn body(&self, event: &Event, links: &Links) -> serde_json::Value {
            serde_json::json!({"shout": event.text.to_uppercase(), "link": links.record(&event.audit_id)})
        }
    }

    #[test]
    fn a_format_chooses_what_it_sends_and_its_body_and_the_notifier_does_the_rest() {
        let mut notifier = Notifier::disabled(Arc::new(Metrics::default()));
        notifier.links = Links::under(Some("https://reflex.example/"));
        notifier.sinks = Arc::from(vec![Webhook {
            id: sink_id("https://receiver.example/hook"),
            url: reqwest::Url::parse("https://receiver.example/hook").unwrap(),
            format: Box::new(Shout),
            events: NotifyEvent::all(),
        }]);
        let refused = Event::new(NotifyEvent::Refused, "web", "refused".into(), "R0");
        assert!(
            notifier.jobs_for(&refused).is_empty(),
            "its format does not send it"
        );
        let acted = Event::new(NotifyEvent::Acted, "web", "replaced i-1".into(), "R1");
        let jobs = notifier.jobs_for(&acted);
        assert_eq!(jobs.len(), 1);
        let queued: Queued = serde_json::from_str(&jobs[0].payload).unwrap();
        let sink = notifier.sinks.iter().find(|s| s.id == queued.sink).unwrap();
        assert_eq!(
            sink.format.body(&queued.event, &notifier.links),
            serde_json::json!({"shout": "REPLACED I-1", "link": "https://reflex.example/audit/R1"})
        );
    }
}
