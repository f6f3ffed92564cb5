//! `slack`: a Slack incoming-webhook message in mrkdwn; a held decision's message carries its approval
//! buttons.

use serde_json::{Value, json};

use crate::events::Event;
use crate::sink::{Links, Sink};
use crate::slack::{approval_message, escape};

/// Slack's incoming-webhook message.
#[derive(Debug)]
pub struct Slack;

impl Sink for Slack {
    fn body(&self, event: &Event, links: &Links) -> Value {
        let record = match links.record(&event.audit_id) {
            Some(link) => format!("<{link}|audit {}>", event.audit_id),
            None => format!("audit {}", event.audit_id),
        };
        let place = match (&event.account, &event.region) {
            (Some(account), Some(region)) => format!(" ({account}/{region})"),
            _ => String::new(),
        };
        let text = format!(
            "*reflex: {}* on `{}`{}: {} ({record}){}",
            event.event.as_str(),
            escape(&event.target),
            escape(&place),
            escape(&event.text),
            tried(event, links),
        );
        match &event.approval {
            Some(ask) => approval_message(&text, ask),
            None => json!({ "text": text }),
        }
    }

    fn is_slack(&self) -> bool {
        true
    }
}

/// An escalation's line of what was tried, each step linked to its record.
fn tried(event: &Event, links: &Links) -> String {
    let tried: Vec<String> = event
        .tried
        .iter()
        .map(|step| match links.record(&step.audit_id) {
            Some(link) => format!("<{link}|{}>", step.step),
            None => format!("{} ({})", step.step, step.audit_id),
        })
        .collect();
    if tried.is_empty() {
        String::new()
    } else {
        format!("\ntried: {}", tried.join(" → "))
    }
}
