//! The notification formats, one file each, chosen for a `[[notify]]` entry by one line of `of`.

mod json;
mod pagerduty;
mod slack;

use crate::config::{NotifyConfig, NotifyFormat};
use crate::sink::Sink;

/// The format of the `[[notify]]` entry `entry`.
pub fn of(entry: &NotifyConfig) -> Box<dyn Sink> {
    match entry.format {
        NotifyFormat::Json => Box::new(json::Json),
        NotifyFormat::Slack => Box::new(slack::Slack),
        NotifyFormat::Pagerduty => Box::new(pagerduty::Pagerduty::new(entry.routing_key.clone())),
    }
}
