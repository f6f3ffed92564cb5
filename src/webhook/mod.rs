//! Alertmanager and Grafana webhooks: the shared payload, grouping by load balancer, and Grafana's HMAC.

pub mod group;
pub mod payload;
pub mod signature;

pub use group::{Grouping, group};
pub use payload::{Alert, Payload};
