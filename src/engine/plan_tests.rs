use std::time::Duration;

use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::actions::reboot::Reboot;
use crate::actions::replace::{How, Replace};
use crate::engine::health;
use crate::engine::snapshot::{Ec2Facts, Health};

const NOW: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);
const OLD: OffsetDateTime = datetime!(2025-12-01 00:00 UTC);

fn policy() -> Policy {
    Policy {
        max_terminations_per_run: 2,
        max_unhealthy_fraction: 0.5,
        min_in_service: 1,
        grace_period: Duration::from_secs(300),
        cooldown: Duration::from_secs(600),
        protect_tag: "reflex:protect".into(),
        step: Arc::new(Replace::default()),
        capacity_rules: true,
        held_back: std::collections::BTreeMap::new(),
        on_alert: false,
        named: crate::engine::AlertNames::new(),
    }
}

/// The policy of a rule on no instance whose step reboots the database its alert names.
fn on_alert(named: &[(&str, &str)]) -> Policy {
    let own: toml::Table = "db_instance_from = \"DBInstanceIdentifier\"\n"
        .parse()
        .unwrap();
    let defaults = toml::Table::new();
    let step = crate::actions::rds_reboot::RdsReboot::default()
        .with_entry(&crate::engine::keys::Keys::of_entry(&own, &defaults))
        .unwrap()
        .unwrap();
    Policy {
        step,
        capacity_rules: false,
        on_alert: true,
        named: named
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..policy()
    }
}

#[test]
fn a_rule_on_no_instance_acts_once_on_what_its_alert_names() {
    let snapshot = Snapshot {
        target: "db-down".into(),
        instances: Vec::new(),
    };
    let planned = plan(
        &snapshot,
        &on_alert(&[("DBInstanceIdentifier", "orders")]),
        clock(),
    );
    assert_eq!(planned.refused, None);
    assert_eq!(planned.act_on.len(), 1, "{planned:?}");
    let act = &planned.act_on[0];
    assert_eq!(act.subject, Subject::Resource("db-down".into()));
    assert_eq!(act.covers, ["db-down"]);
    assert_eq!(act.arguments["db_instance"], ["orders"]);

    // Within the cooldown, nothing; an alert that lacks the name, nothing, saying why.
    let cooling = Clock {
        last_action_at: Some(NOW - time::Duration::minutes(1)),
        ..clock()
    };
    let held = plan(
        &snapshot,
        &on_alert(&[("DBInstanceIdentifier", "orders")]),
        cooling,
    );
    assert!(held.act_on.is_empty());
    assert!(matches!(held.refused, Some(Refusal::Cooldown { .. })));
    let unnamed = plan(
        &snapshot,
        &on_alert(&[("DBClusterIdentifier", "c")]),
        clock(),
    );
    assert!(unnamed.act_on.is_empty());
    assert!(unnamed.refused_arguments[0].contains("names no DBInstanceIdentifier"));
    // A step that chooses per instance never acts on no instance.
    let per_instance = Policy {
        step: Arc::new(Reboot::default()),
        ..on_alert(&[])
    };
    assert!(plan(&snapshot, &per_instance, clock()).act_on.is_empty());
}

/// The instance ids of a plan's actions.
fn ids(acts: &[Act]) -> Vec<String> {
    acts.iter().map(|act| act.subject.id().to_owned()).collect()
}

fn clock() -> Clock {
    Clock {
        now: NOW,
        last_action_at: None,
    }
}

fn instance(id: &str, state: HealthState) -> InstanceView {
    InstanceView {
        instance_id: id.into(),
        health: Health {
            state,
            reported: format!("{state:?}"),
            reason_code: None,
            description: None,
        },
        ec2: Some(Ec2Facts {
            state: "running".into(),
            launch_time: Some(OLD),
            tags: vec![],
            zone: None,
            image_id: None,
        }),
        auto_scaling_group: None,
    }
}

fn snapshot(instances: Vec<InstanceView>) -> Snapshot {
    Snapshot {
        target: "web-elb".into(),
        instances,
    }
}

/// Four healthy instances plus the given unhealthy one.
fn fleet_with(bad: InstanceView) -> Snapshot {
    let mut instances: Vec<_> = (1..=4)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    instances.push(bad);
    snapshot(instances)
}

fn skip_of(bad: InstanceView) -> Vec<Skip> {
    let plan = plan(&fleet_with(bad), &policy(), clock());
    assert!(plan.act_on.is_empty(), "{plan:?}");
    assert!(plan.refused.is_none());
    plan.skipped
}

fn skipped(reason: SkipReason) -> Vec<Skip> {
    vec![Skip {
        instance_id: "i-bad".into(),
        reason,
    }]
}

#[test]
fn acts_on_an_old_unprotected_out_of_service_instance() {
    let plan = plan(
        &fleet_with(instance("i-bad", HealthState::OutOfService)),
        &policy(),
        clock(),
    );
    assert_eq!(ids(&plan.act_on), vec!["i-bad".to_string()]);
    assert_eq!(plan.unhealthy, vec!["i-bad".to_string()]);
    assert_eq!(plan.registered.len(), 5);
    assert!(plan.skipped.is_empty());
}

#[test]
fn a_stopped_instance_is_replaced() {
    let mut bad = instance("i-bad", HealthState::OutOfService);
    bad.ec2.as_mut().unwrap().state = "stopped".into();
    let plan = plan(&fleet_with(bad), &policy(), clock());
    assert_eq!(ids(&plan.act_on), vec!["i-bad".to_string()]);
}

#[test]
fn healthy_fleet_needs_nothing() {
    let plan = plan(
        &snapshot(vec![instance("i-1", HealthState::InService)]),
        &policy(),
        clock(),
    );
    assert_eq!(
        plan,
        Plan {
            registered: vec!["i-1".into()],
            ..Plan::default()
        }
    );
}

#[test]
fn unknown_state_is_skipped() {
    assert_eq!(
        skip_of(instance("i-bad", HealthState::Unknown)),
        skipped(SkipReason::UnknownState)
    );
}

#[test]
fn registration_in_progress_is_skipped() {
    let mut by_code = instance("i-bad", HealthState::OutOfService);
    by_code.health = health::classic("OutOfService", Some("ELB"), None);
    assert_eq!(
        skip_of(by_code),
        skipped(SkipReason::RegistrationInProgress)
    );
    let mut by_text = instance("i-bad", HealthState::OutOfService);
    by_text.health = health::classic(
        "OutOfService",
        Some("Instance"),
        Some("Instance registration is still in progress."),
    );
    assert_eq!(
        skip_of(by_text),
        skipped(SkipReason::RegistrationInProgress)
    );
}

#[test]
fn target_group_states_outside_the_act_rows_are_skipped_with_their_reason() {
    let cases = [
        (
            "initial",
            Some("Elb.RegistrationInProgress"),
            SkipReason::RegistrationInProgress,
        ),
        (
            "draining",
            Some("Target.DeregistrationInProgress"),
            SkipReason::Draining,
        ),
        (
            "unavailable",
            Some("Target.HealthCheckDisabled"),
            SkipReason::HealthCheckDisabled,
        ),
        ("unused", Some("Target.NotRegistered"), SkipReason::NotInUse),
        (
            "unhealthy",
            Some("Elb.InternalError"),
            SkipReason::BalancerError,
        ),
        (
            "unhealthy",
            Some("Target.Surprise"),
            SkipReason::UnknownState,
        ),
    ];
    for (state, reason, skip) in cases {
        let mut bad = instance("i-bad", HealthState::OutOfService);
        bad.health = health::target_group(state, reason, None);
        assert_eq!(skip_of(bad), skipped(skip), "{state} {reason:?}");
    }
    for (state, reason) in [
        ("unhealthy", "Target.FailedHealthChecks"),
        ("unhealthy", "Target.Timeout"),
        ("unhealthy", "Target.ResponseCodeMismatch"),
        ("unused", "Target.InvalidState"),
    ] {
        let mut bad = instance("i-bad", HealthState::OutOfService);
        bad.health = health::target_group(state, Some(reason), None);
        let plan = plan(&fleet_with(bad), &policy(), clock());
        assert_eq!(
            ids(&plan.act_on),
            vec!["i-bad".to_string()],
            "{state} {reason}"
        );
    }
}

#[test]
fn the_action_decides_how_each_instance_is_replaced() {
    let grouped = || {
        let mut bad = instance("i-bad", HealthState::OutOfService);
        bad.auto_scaling_group = Some("web-asg".into());
        bad
    };
    let with = |how| Policy {
        step: Arc::new(Replace { how }),
        ..policy()
    };
    let act = |action, bad| plan(&fleet_with(bad), &with(action), clock()).act_on;
    let lone = || instance("i-bad", HealthState::OutOfService);
    assert_eq!(act(How::Terminate, grouped())[0].action, "terminate");
    assert_eq!(act(How::Auto, lone())[0].action, "terminate");
    let handed = act(How::Auto, grouped());
    assert_eq!(handed[0].action, "asg-unhealthy");
    assert_eq!(handed[0].kind, "replace");
    assert_eq!(handed[0].auto_scaling_group.as_deref(), Some("web-asg"));
    assert_eq!(act(How::AsgUnhealthy, grouped())[0].action, "asg-unhealthy");
    let plan = plan(&fleet_with(lone()), &with(How::AsgUnhealthy), clock());
    assert!(plan.act_on.is_empty());
    assert_eq!(plan.skipped, skipped(SkipReason::NotInAutoScalingGroup));
}

#[test]
fn ec2_states_other_than_running_or_stopped_are_skipped() {
    for (state, reason) in [
        ("shutting-down", SkipReason::AlreadyTerminating),
        ("terminated", SkipReason::AlreadyTerminating),
        ("pending", SkipReason::StateInTransition),
        ("stopping", SkipReason::StateInTransition),
        ("something-new", SkipReason::StateInTransition),
    ] {
        let mut bad = instance("i-bad", HealthState::OutOfService);
        bad.ec2.as_mut().unwrap().state = state.into();
        assert_eq!(skip_of(bad), skipped(reason), "{state}");
    }
    let mut gone = instance("i-bad", HealthState::OutOfService);
    gone.ec2 = None;
    assert_eq!(skip_of(gone), skipped(SkipReason::InstanceNotFound));
}

#[test]
fn young_or_undated_instances_are_in_their_grace_period() {
    let mut young = instance("i-bad", HealthState::OutOfService);
    young.ec2.as_mut().unwrap().launch_time = Some(NOW - time::Duration::seconds(299));
    assert_eq!(skip_of(young), skipped(SkipReason::GracePeriod));
    let mut undated = instance("i-bad", HealthState::OutOfService);
    undated.ec2.as_mut().unwrap().launch_time = None;
    assert_eq!(skip_of(undated), skipped(SkipReason::GracePeriod));
    let mut just_old_enough = instance("i-bad", HealthState::OutOfService);
    just_old_enough.ec2.as_mut().unwrap().launch_time = Some(NOW - time::Duration::seconds(300));
    let plan = plan(&fleet_with(just_old_enough), &policy(), clock());
    assert_eq!(plan.act_on.len(), 1);
}

#[test]
fn protected_instances_are_skipped_whatever_the_value() {
    let mut bad = instance("i-bad", HealthState::OutOfService);
    bad.ec2.as_mut().unwrap().tags = vec![("reflex:protect".into(), "".into())];
    assert_eq!(skip_of(bad), skipped(SkipReason::Protected));
}

#[test]
fn too_many_unhealthy_refuses_everything() {
    let fleet = snapshot(vec![
        instance("i-1", HealthState::InService),
        instance("i-2", HealthState::OutOfService),
        instance("i-3", HealthState::OutOfService),
    ]);
    let plan = plan(&fleet, &policy(), clock());
    assert!(plan.act_on.is_empty());
    assert_eq!(
        plan.refused,
        Some(Refusal::TooManyUnhealthy {
            unhealthy: 2,
            total: 3,
            max_fraction: 0.5
        })
    );
    assert!(plan.refused.unwrap().sentence().contains("2 of 3"));
}

#[test]
fn exactly_the_fraction_is_allowed() {
    let fleet = snapshot(vec![
        instance("i-1", HealthState::InService),
        instance("i-2", HealthState::OutOfService),
    ]);
    assert_eq!(
        ids(&plan(&fleet, &policy(), clock()).act_on),
        vec!["i-2".to_string()]
    );
}

#[test]
fn never_all_of_them_even_with_a_zero_floor() {
    let fleet = snapshot(vec![instance("i-1", HealthState::OutOfService)]);
    let permissive = Policy {
        max_unhealthy_fraction: 1.0,
        min_in_service: 0,
        ..policy()
    };
    let plan = plan(&fleet, &permissive, clock());
    assert!(plan.act_on.is_empty());
    assert!(matches!(
        plan.refused,
        Some(Refusal::BelowMinInService { in_service: 0, .. })
    ));
}

#[test]
fn min_in_service_refuses() {
    let fleet = snapshot(vec![
        instance("i-1", HealthState::InService),
        instance("i-2", HealthState::OutOfService),
    ]);
    let strict = Policy {
        min_in_service: 2,
        ..policy()
    };
    let plan = plan(&fleet, &strict, clock());
    assert_eq!(
        plan.refused,
        Some(Refusal::BelowMinInService {
            in_service: 1,
            min_in_service: 2
        })
    );
}

#[test]
fn cooldown_refuses_until_it_ends() {
    let fleet = fleet_with(instance("i-bad", HealthState::OutOfService));
    let recent = Clock {
        now: NOW,
        last_action_at: Some(NOW - time::Duration::seconds(100)),
    };
    assert_eq!(
        plan(&fleet, &policy(), recent).refused,
        Some(Refusal::Cooldown {
            remaining_secs: 500
        })
    );
    let long_ago = Clock {
        now: NOW,
        last_action_at: Some(NOW - time::Duration::seconds(600)),
    };
    assert_eq!(plan(&fleet, &policy(), long_ago).act_on.len(), 1);
}

#[test]
fn the_cap_skips_the_rest_in_id_order() {
    let mut instances: Vec<_> = (1..=7)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    for id in ["i-c", "i-a", "i-b"] {
        instances.push(instance(id, HealthState::OutOfService));
    }
    let plan = plan(&snapshot(instances), &policy(), clock());
    assert_eq!(
        ids(&plan.act_on),
        vec!["i-a".to_string(), "i-b".to_string()]
    );
    assert_eq!(
        plan.skipped,
        vec![Skip {
            instance_id: "i-c".into(),
            reason: SkipReason::CapReached
        }]
    );
}

/// What a balancer may report: classic ELB states and reason codes, and ELBv2 states and reasons (those of
/// the table and others), read through the one health table.
fn arb_health() -> impl Strategy<Value = Health> {
    let classic = (
        prop_oneof![Just("InService"), Just("OutOfService"), Just("Unknown")],
        prop::option::of(prop_oneof![Just("ELB"), Just("Instance"), Just("N/A")]),
    )
        .prop_map(|(state, code)| health::classic(state, code, None));
    let target_group = (
        prop_oneof![
            Just("healthy"),
            Just("unhealthy"),
            Just("unused"),
            Just("initial"),
            Just("draining"),
            Just("unavailable"),
            Just("weird")
        ],
        prop::option::of(prop_oneof![
            Just("Target.FailedHealthChecks"),
            Just("Target.Timeout"),
            Just("Target.ResponseCodeMismatch"),
            Just("Target.InvalidState"),
            Just("Target.NotRegistered"),
            Just("Target.NotInUse"),
            Just("Target.HealthCheckDisabled"),
            Just("Target.DeregistrationInProgress"),
            Just("Elb.RegistrationInProgress"),
            Just("Elb.InitialHealthChecking"),
            Just("Elb.InternalError"),
            Just("Target.IpUnusable")
        ]),
    )
        .prop_map(|(state, code)| health::target_group(state, code, None));
    prop_oneof![classic, target_group]
}

fn arb_instance() -> impl Strategy<Value = InstanceView> {
    (
        0u32..1000,
        arb_health(),
        prop::option::of(prop_oneof![
            Just("running"),
            Just("stopped"),
            Just("pending"),
            Just("stopping"),
            Just("shutting-down"),
            Just("terminated")
        ]),
        0i64..2000,
        any::<bool>(),
        prop::option::of(Just("web-asg")),
    )
        .prop_map(
            |(n, health, ec2_state, age, protected, group)| InstanceView {
                instance_id: format!("i-{n:04}"),
                health,
                ec2: ec2_state.map(|s| Ec2Facts {
                    state: s.into(),
                    launch_time: Some(NOW - time::Duration::seconds(age)),
                    tags: if protected {
                        vec![("reflex:protect".into(), "yes".into())]
                    } else {
                        vec![("team".into(), "web".into())]
                    },
                    zone: None,
                    image_id: None,
                }),
                auto_scaling_group: group.map(str::to_owned),
            },
        )
}

/// A policy, with how its `replace` step replaces.
fn arb_policy() -> impl Strategy<Value = (Policy, How)> {
    (
        (0usize..5, 0.05f64..=1.0, 0usize..4, 0u64..1500, 0u64..1000),
        prop_oneof![
            Just(How::Terminate),
            Just(How::AsgUnhealthy),
            Just(How::Auto)
        ],
    )
        .prop_map(|((cap, fraction, floor, grace, cooldown), how)| {
            let policy = Policy {
                max_terminations_per_run: cap,
                max_unhealthy_fraction: fraction,
                min_in_service: floor,
                grace_period: Duration::from_secs(grace),
                cooldown: Duration::from_secs(cooldown),
                protect_tag: "reflex:protect".into(),
                step: Arc::new(Replace { how }),
                capacity_rules: true,
                held_back: std::collections::BTreeMap::new(),
                on_alert: false,
                named: crate::engine::AlertNames::new(),
            };
            (policy, how)
        })
}

/// The reported states and reasons the table acts on, whichever kind of balancer reported them.
fn is_actionable_report(health: &Health) -> bool {
    let reason = health.reason_code.as_deref();
    match health.reported.as_str() {
        "OutOfService" => reason != Some("ELB"),
        "unhealthy" => matches!(
            reason,
            Some("Target.FailedHealthChecks" | "Target.Timeout" | "Target.ResponseCodeMismatch")
        ),
        "unused" => reason == Some("Target.InvalidState"),
        _ => false,
    }
}

proptest! {
    #[test]
    fn no_plan_ever_breaks_a_safety_rule(
        instances in prop::collection::vec(arb_instance(), 0..12)
            .prop_map(|mut v| { v.sort_by(|a, b| a.instance_id.cmp(&b.instance_id)); v.dedup_by(|a, b| a.instance_id == b.instance_id); v }),
        (policy, how) in arb_policy(),
        last_action_ago in prop::option::of(0i64..2000),
    ) {
        let clock = Clock { now: NOW, last_action_at: last_action_ago.map(|s| NOW - time::Duration::seconds(s)) };
        let fleet = snapshot(instances);
        let plan = plan(&fleet, &policy, clock);
        let total = fleet.instances.len();
        let in_service = fleet.instances.iter().filter(|i| i.health.state == HealthState::InService).count();

        prop_assert!(plan.act_on.len() <= policy.max_terminations_per_run);
        prop_assert!(plan.act_on.is_empty() || in_service >= 1, "never all of them");
        if plan.refused.is_some() {
            prop_assert!(plan.act_on.is_empty());
        }
        if (plan.unhealthy.len() as f64) > policy.max_unhealthy_fraction * total as f64 || in_service < policy.min_in_service {
            prop_assert!(plan.act_on.is_empty());
        }
        if let Some(ago) = last_action_ago
            && (ago as u64) < policy.cooldown.as_secs() { prop_assert!(plan.act_on.is_empty()); }
        for act in &plan.act_on {
            let id = act.subject.instance().expect("a replacement acts on an instance");
            let view = fleet.instances.iter().find(|i| i.instance_id == id).expect("acts only on registered instances");
            prop_assert_eq!(view.health.state, HealthState::OutOfService);
            prop_assert!(is_actionable_report(&view.health), "acted on {:?}", view.health);
            let ec2 = view.ec2.as_ref().expect("acts only on instances EC2 knows");
            prop_assert!(ec2.state == "running" || ec2.state == "stopped");
            prop_assert!(!ec2.tags.iter().any(|(k, _)| k == "reflex:protect"));
            prop_assert!(NOW - ec2.launch_time.unwrap() >= time::Duration::try_from(policy.grace_period).unwrap());
            prop_assert!(!plan.skipped.iter().any(|s| s.instance_id == id));
            let expected = match (how, &view.auto_scaling_group) {
                (How::Terminate, _) | (How::Auto, None) => "terminate",
                (How::AsgUnhealthy, None) => {
                    return Err(TestCaseError::fail("handed an instance in no group to Auto Scaling"));
                }
                (_, Some(_)) => "asg-unhealthy",
            };
            prop_assert_eq!(act.action.as_str(), expected);
        }
        if plan.refused.is_none() {
            // Every unhealthy instance is either acted on or skipped with a reason, exactly once.
            prop_assert_eq!(plan.act_on.len() + plan.skipped.len(), plan.unhealthy.len());
        }
    }
}

#[test]
fn skip_reason_names_match_their_json() {
    for reason in [
        SkipReason::UnknownState,
        SkipReason::RegistrationInProgress,
        SkipReason::Draining,
        SkipReason::NotInUse,
        SkipReason::HealthCheckDisabled,
        SkipReason::BalancerError,
        SkipReason::NotInAutoScalingGroup,
        SkipReason::InstanceNotFound,
        SkipReason::AlreadyTerminating,
        SkipReason::StateInTransition,
        SkipReason::GracePeriod,
        SkipReason::Protected,
        SkipReason::CapReached,
        SkipReason::Budget,
        SkipReason::SpeedLimit,
    ] {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
    }
}

#[test]
fn the_speed_limit_is_a_fraction_of_the_fleet_rounded_up_and_never_zero() {
    assert_eq!(speed_limit(4, 0.34), 2);
    assert_eq!(speed_limit(12, 0.34), 5);
    assert_eq!(speed_limit(3, 0.34), 2);
    assert_eq!(speed_limit(1, 0.34), 1);
    assert_eq!(
        speed_limit(0, 0.34),
        1,
        "a fleet that shows nothing still may lose one"
    );
    assert_eq!(speed_limit(2, 0.1), 1, "at least one");
    assert_eq!(
        speed_limit(30, 0.1),
        3,
        "0.1 x 30 is 3, not 4 by a rounding error"
    );
    assert_eq!(speed_limit(4, 0.25), 1);
    assert_eq!(speed_limit(7, 1.0), 7);
}

proptest! {
    /// Never below one, never above the fleet (for a fleet of one or more), and growing with the fleet.
    #[test]
    fn the_speed_limit_stays_within_the_fleet(registered in 1usize..5000, fraction in 0.001f64..=1.0) {
        let limit = speed_limit(registered, fraction);
        prop_assert!(limit >= 1);
        prop_assert!(limit <= registered as u64);
        prop_assert!(speed_limit(registered + 1, fraction) >= limit);
    }
}

#[test]
fn trimming_keeps_the_first_actions_and_skips_the_rest_with_the_limit_reason() {
    let bad = |n: usize| instance(&format!("i-bad{n}"), HealthState::OutOfService);
    let mut instances: Vec<_> = (1..=8)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    instances.extend((1..=3).map(bad));
    let policy = Policy {
        max_terminations_per_run: 3,
        ..policy()
    };
    let mut plan = plan(&snapshot(instances), &policy, clock());
    assert_eq!(ids(&plan.act_on), ["i-bad1", "i-bad2", "i-bad3"]);
    assert_eq!(trim_to(&mut plan, 5, SkipReason::SpeedLimit), 0);
    assert_eq!(trim_to(&mut plan, 2, SkipReason::Budget), 1);
    assert_eq!(trim_to(&mut plan, 1, SkipReason::SpeedLimit), 1);
    assert_eq!(ids(&plan.act_on), ["i-bad1"]);
    assert_eq!(
        plan.skipped,
        [
            Skip {
                instance_id: "i-bad3".into(),
                reason: SkipReason::Budget
            },
            Skip {
                instance_id: "i-bad2".into(),
                reason: SkipReason::SpeedLimit
            },
        ]
    );
}

#[test]
fn an_approval_acts_only_on_what_was_approved_and_is_still_broken() {
    let mut instances: Vec<_> = (1..=8)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    instances.push(instance("i-bad1", HealthState::OutOfService));
    instances.push(instance("i-bad3", HealthState::OutOfService));
    let mut now = plan(&snapshot(instances.clone()), &policy(), clock());
    // i-bad2 recovered since the hold; i-bad3 broke since; i-ok1 was never approved.
    let approved = ["i-bad1".to_owned(), "i-bad2".to_owned()];
    keep_only(&mut now, &approved, 2, SkipReason::NotApproved);
    assert_eq!(ids(&now.act_on), ["i-bad1"]);
    assert_eq!(
        now.skipped,
        [
            Skip {
                instance_id: "i-bad3".into(),
                reason: SkipReason::NotApproved
            },
            Skip {
                instance_id: "i-bad2".into(),
                reason: SkipReason::NoLongerBroken
            },
        ]
    );
    // A refused plan acts on nothing and says nothing of the approved instances.
    let mut refused = plan(&snapshot(instances), &policy(), clock());
    refused.refuse(Refusal::Paused {
        reason: "deploy".into(),
    });
    keep_only(&mut refused, &approved, 2, SkipReason::NotApproved);
    assert!(refused.act_on.is_empty());
    assert!(refused.skipped.is_empty(), "{:?}", refused.skipped);
}

#[test]
fn an_instance_broken_since_the_hold_takes_no_slot_of_the_approved_ones() {
    let mut instances: Vec<_> = (1..=8)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    // i-a broke after the hold and sorts first; the cap is one.
    instances.push(instance("i-a", HealthState::OutOfService));
    instances.push(instance("i-b", HealthState::OutOfService));
    let uncapped = Policy {
        max_terminations_per_run: usize::MAX,
        ..policy()
    };
    let mut now = plan(&snapshot(instances), &uncapped, clock());
    keep_only(&mut now, &["i-b".to_owned()], 1, SkipReason::NotApproved);
    assert_eq!(ids(&now.act_on), ["i-b"]);
    assert_eq!(
        now.skipped,
        [Skip {
            instance_id: "i-a".into(),
            reason: SkipReason::NotApproved
        }]
    );
}

#[test]
fn a_reboot_step_reboots_a_running_instance_and_starts_a_stopped_one_under_every_rule() {
    let mut instances: Vec<_> = (1..=6)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::OutOfService))
        .collect();
    for view in &mut instances[2..] {
        view.health.state = HealthState::InService;
    }
    if let Some(ec2) = instances[1].ec2.as_mut() {
        ec2.state = "stopped".into();
    }
    // In no Auto Scaling group: a reboot needs none.
    let policy = Policy {
        step: Arc::new(Reboot::default()),
        ..policy()
    };
    let planned = plan(&snapshot(instances.clone()), &policy, clock());
    let steps: Vec<_> = planned
        .act_on
        .iter()
        .map(|a| (a.subject.id(), a.action.as_str(), a.kind.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("i-ok1", "reboot", "reboot"), ("i-ok2", "start", "reboot")]
    );
    // The cap and the protect tag hold for a reboot as for a replacement.
    let capped = plan(
        &snapshot(instances.clone()),
        &Policy {
            max_terminations_per_run: 1,
            ..policy.clone()
        },
        clock(),
    );
    assert_eq!(ids(&capped.act_on), ["i-ok1"]);
    if let Some(ec2) = instances[0].ec2.as_mut() {
        ec2.tags.push(("reflex:protect".into(), String::new()));
    }
    let protected = plan(&snapshot(instances), &policy, clock());
    assert_eq!(ids(&protected.act_on), ["i-ok2"]);
}

#[test]
fn a_ladder_step_keeps_only_its_episode_and_says_why_the_rest_is_left() {
    let bad = |n: usize| instance(&format!("i-bad{n}"), HealthState::OutOfService);
    let mut instances: Vec<_> = (1..=8)
        .map(|n| instance(&format!("i-ok{n}"), HealthState::InService))
        .collect();
    instances.extend((1..=2).map(bad));
    let mut planned = plan(&snapshot(instances), &policy(), clock());
    keep_only(
        &mut planned,
        &["i-bad2".into(), "i-gone".into()],
        2,
        SkipReason::NotInEpisode,
    );
    assert_eq!(ids(&planned.act_on), ["i-bad2"]);
    let reasons: Vec<_> = planned
        .skipped
        .iter()
        .map(|s| (s.instance_id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("i-bad1", "not-in-episode"), ("i-gone", "no-longer-broken")]
    );
}
