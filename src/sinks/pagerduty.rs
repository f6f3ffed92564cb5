//! `pagerduty`: PagerDuty Events API v2, the body a `pagerduty` `[[notify]]` entry posts. An escalation is a
//! `trigger` and its resolution a `resolve`, both with the same `dedup_key` (one per target and episode), so
//! that repeats update one incident and the incident closes when the target has its capacity back. Other
//! events are not sent.

use serde_json::{Value, json};

use crate::config::{NotifyEvent, Secret};
use crate::events::Event;
use crate::sink::{Links, Sink};

/// One PagerDuty integration: its routing key, sent in the body, never logged or stored.
pub struct Pagerduty {
    routing_key: Option<Secret>,
}

impl Pagerduty {
    /// The integration of `routing_key`.
    pub fn new(routing_key: Option<Secret>) -> Self {
        Self { routing_key }
    }
}

impl std::fmt::Debug for Pagerduty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pagerduty")
    }
}

impl Sink for Pagerduty {
    fn sends(&self, event: NotifyEvent) -> bool {
        matches!(event, NotifyEvent::Escalated | NotifyEvent::Resolved)
    }

    fn body(&self, event: &Event, links: &Links) -> Value {
        let routing_key = self.routing_key.as_ref().map(|k| k.expose().to_owned());
        self::event(event, routing_key.unwrap_or_default(), |id| {
            links.record(id)
        })
    }
}

/// PagerDuty's limit on an event's summary.
const SUMMARY_MAX: usize = 1024;

/// The Events API v2 body of `event` for the integration `routing_key`; `link` gives a record's audit page
/// when reflex knows its public address.
pub fn event(event: &Event, routing_key: String, link: impl Fn(&str) -> Option<String>) -> Value {
    let dedup_key = event.dedup_key();
    if event.event == NotifyEvent::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let mut summary = format!("reflex escalated {}: {}", event.target, event.text);
    if summary.len() > SUMMARY_MAX {
        let mut end = SUMMARY_MAX - 3;
        while !summary.is_char_boundary(end) {
            end -= 1;
        }
        summary.truncate(end);
        summary.push_str("...");
    }
    let tried: Vec<Value> = event
        .tried
        .iter()
        .map(|step| json!({"step": step.step, "audit-id": step.audit_id, "link": link(&step.audit_id)}))
        .collect();
    let links: Vec<Value> = std::iter::once((event.event.as_str(), event.audit_id.as_str()))
        .chain(
            event
                .tried
                .iter()
                .filter(|s| s.audit_id != event.audit_id)
                .map(|s| (s.step.as_str(), s.audit_id.as_str())),
        )
        .filter_map(|(step, id)| {
            link(id).map(|href| json!({"href": href, "text": format!("{step} {id}")}))
        })
        .collect();
    let place = match (&event.account, &event.region) {
        (Some(account), Some(region)) => format!("{account}/{region}"),
        _ => String::new(),
    };
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary,
            "source": "reflex",
            "severity": "critical",
            "component": event.target,
            "group": place,
            "class": event.event.as_str(),
            "custom_details": {
                "text": event.text,
                "audit-id": event.audit_id,
                "episode": event.episode,
                "tried": tried,
            },
        },
        "links": links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Tried;

    fn escalation() -> Event {
        let mut event = Event::new(
            NotifyEvent::Escalated,
            "web",
            "2 of 3 InService".into(),
            "R3",
        )
        .at(Some(&("123456789012".into(), "us-east-1".into())))
        .of_episode("R1");
        event.tried = vec![
            Tried {
                step: "reboot".into(),
                audit_id: "R1".into(),
            },
            Tried {
                step: "replace".into(),
                audit_id: "R2".into(),
            },
        ];
        event
    }

    #[test]
    fn an_escalation_triggers_one_incident_per_target_and_episode_with_what_was_tried() {
        let link = |id: &str| Some(format!("https://reflex.example/audit/{id}"));
        let body = event(&escalation(), "KEY".into(), link);
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["routing_key"], "KEY");
        assert_eq!(body["dedup_key"], "reflex/123456789012/us-east-1/web/R1");
        assert_eq!(body["payload"]["severity"], "critical");
        assert_eq!(body["payload"]["source"], "reflex");
        assert_eq!(
            body["payload"]["custom_details"]["tried"][1]["step"],
            "replace"
        );
        assert_eq!(body["links"][0]["href"], "https://reflex.example/audit/R3");
        assert_eq!(body["links"].as_array().map(Vec::len), Some(3));
        let mut listed = escalation();
        listed.tried.push(Tried {
            step: "escalated".into(),
            audit_id: "R3".into(),
        });
        let body = event(&listed, "KEY".into(), link);
        assert_eq!(
            body["links"].as_array().map(Vec::len),
            Some(3),
            "the escalation once"
        );
    }

    #[test]
    fn its_resolution_resolves_the_same_incident_and_says_nothing_else() {
        let mut resolved = escalation();
        resolved.event = NotifyEvent::Resolved;
        resolved.audit_id = "R9".into();
        let body = event(&resolved, "KEY".into(), |_| None);
        assert_eq!(
            body,
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "reflex/123456789012/us-east-1/web/R1"})
        );
    }

    #[test]
    fn a_long_summary_is_cut_to_the_limit_on_a_character_boundary() {
        let mut long = escalation();
        long.text = "é".repeat(2000);
        let body = event(&long, "KEY".into(), |_| None);
        let summary = body["payload"]["summary"].as_str().unwrap_or_default();
        assert!(summary.len() <= SUMMARY_MAX && summary.ends_with("..."));
    }
}
