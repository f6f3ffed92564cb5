//! Alertmanager and Grafana webhooks: the shared payload, grouping by target, and Grafana's HMAC.

pub mod group;
pub mod payload;
pub mod signature;

pub use group::{Grouping, TargetLabels, group};
pub use payload::{Alert, Payload};
