//! `json`: the event as a JSON object, with a link to its record's audit page, for any receiver.

use serde_json::Value;

use crate::events::Event;
use crate::sink::{Links, Sink};

/// The event as it is.
#[derive(Debug)]
pub struct Json;

impl Sink for Json {
    fn body(&self, event: &Event, links: &Links) -> Value {
        let mut body = serde_json::to_value(event).unwrap_or_default();
        if let (Some(link), Some(fields)) = (links.record(&event.audit_id), body.as_object_mut()) {
            fields.insert("link".into(), link.into());
        }
        body
    }
}
