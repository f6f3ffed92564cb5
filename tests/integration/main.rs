//! End-to-end tests: reflex served on a loopback port, AWS emulated by a real moto server.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod alertmanager;
mod anchors;
mod approvals;
mod asg_capacity;
mod brakes;
mod changes;
mod cli;
mod clock;
mod disk;
mod ecs_rds;
mod grafana;
mod iam;
mod iam_kinds;
mod isolate;
mod kind_gates;
mod kind_takeovers;
mod ladder;
mod migration;
mod modes;
mod monitoring;
mod notify;
mod remediate;
mod replicas;
mod rules;
mod rules_accounts;
mod rules_replay;
mod rules_resources;
mod rules_run;
mod safety;
mod scoped_tokens;
mod secrets;
mod serving;
mod sns;
mod speed_limit;
mod ssm_command;
mod store_locks;
mod store_recovery;
mod takeover;
mod target_groups;
mod ui_sessions;
mod webhook_action;
