//! reflex turns load-balancer alerts into safe, audited self-healing on AWS.
//!
//! Receivers (`http`) verify a request and turn it into a `Trigger`; the `engine` snapshots the balancer's
//! health through `aws`, plans within the safety limits and acts; the `audit` trail records every step.
//! Background work (recovery checks, notifications, approval expiries) is durable `jobs` in the store;
//! `approvals` votes on the decisions a target in approve mode holds.
//! `main.rs` only parses the command line and calls `commands`.

// No function over 80 lines (clippy.toml); tests aside.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod actions;
pub mod approvals;
pub mod approvers;
pub mod audit;
pub mod aws;
pub mod commands;
pub mod config;
pub mod contract;
pub mod controls;
pub mod detail;
pub mod engine;
pub mod events;
pub mod evidence;
#[doc(hidden)]
pub mod fuzz_entry;
mod hex;
pub mod http;
pub mod iam_policy;
pub mod job;
pub mod jobs;
mod logging;
pub mod metrics;
pub mod notify;
pub mod replay;
pub mod rules;
mod server;
pub mod sink;
pub mod sinks;
pub mod slack;
pub mod sns;
pub mod target;
pub mod untrusted;
pub mod webhook;

pub use logging::init_logging;
pub use server::{App, Fleets, load_tls, serve};
