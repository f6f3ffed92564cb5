//! A test-only action kind, `drain`, added as any kind is: this file and one registration line (the harness's
//! `kinds()`). Nothing else in the engine names it, and every gate applies to it: the pause, the budgets, the
//! approval, the check and the escalation.

use super::*;
use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Started};
use crate::engine::port::InstanceView;

/// Hands a broken instance to its group (through the fleet's SetInstanceHealth), and is judged by the target's
/// capacity coming back.
#[derive(Debug)]
pub(super) struct Drain;

impl Action for Drain {
    fn name(&self) -> &'static str {
        "drain"
    }
    fn verb(&self) -> &'static str {
        "drain"
    }

    fn done(&self) -> &'static str {
        "drained"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: false,
            removes_capacity: true,
            adds_capacity: false,
            judged: Judged::CapacityBack,
            checked_after: None,
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["autoscaling:SetInstanceHealth"]
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok("drain")
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "drained-instance-ids"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["drained-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        let call = on.fleet.mark_unhealthy(on.act.subject.id());
        Box::pin(async move { call.await.map(Started::Done) })
    }
}

/// The harness with a target `drained` whose ladder is `["drain"]`, under `extra` `[remediation]` settings.
async fn drained(fleet: FakeFleet, extra: &str) -> Harness {
    harness_with(
        fleet,
        extra,
        "[[targets]]\nload_balancer = \"drained\"\nladder = [\"drain\"]\n",
    )
    .await
}

#[tokio::test]
async fn a_new_kind_acts_and_answers_through_the_engine_alone() {
    let h = drained(FakeFleet::default(), "").await;
    let run = run_once(&h, "drained").await;
    assert_eq!(run.acted, 1);
    assert_eq!(run.summary.list("drained-instance-ids"), ["i-bad"]);
    assert!(run.summary.list("terminated-instance-ids").is_empty());
    assert_eq!(run.summary.actions[0].action, "drain");
    assert_eq!(run.summary.actions[0].state.as_deref(), Some("Unhealthy"));
    assert_eq!(run.summary.verb(), ("drained", "drain"));
    let done = h.fleet.done.lock().unwrap().clone();
    assert_eq!(done, [("mark-unhealthy", "i-bad".to_owned())]);
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["actions"][0]["kind"], "drain");
    assert_eq!(record.detail["episode"]["step"], "drain");
}

#[tokio::test]
async fn a_new_kind_is_paused_and_held_to_its_budget() {
    let h = drained(FakeFleet::default(), "max_acted_per_hour = 1").await;
    h.store
        .pause(Scope::Target(&id("drained")), "not now")
        .await
        .unwrap();
    let paused = run_once(&h, "drained").await;
    assert_eq!(paused.summary.refused_rule, Some("paused"));
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    assert!(h.store.resume(Scope::Target(&id("drained"))).await.unwrap());
    assert_eq!(run_once(&h, "drained").await.acted, 1);
    let over = run_once(&h, "drained").await;
    assert_eq!(over.acted, 0);
    assert_eq!(over.summary.skipped[0].reason, SkipReason::Budget);
    assert_eq!(over.tripped.unwrap().trip, Trip::Budget);
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_kind_is_held_for_approvers_and_acts_once_approved() {
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = drained(FakeFleet::default(), approve).await;
    let held = run_once(&h, "drained").await;
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    let ask = held.summary.approval.clone().unwrap();
    assert_eq!(
        (ask.verb.as_str(), ask.would_replace.as_slice()),
        ("drain", &["i-bad".to_owned()][..])
    );
    let approval = h.store.approval(&ask.id).await.unwrap().unwrap();
    let would = crate::evidence::WouldDo::of(&approval.body["evidence"]);
    assert_eq!(
        (would.verb.as_str(), would.instances),
        ("drain", vec!["i-bad".to_owned()])
    );
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.list("drained-instance-ids"), ["i-bad"]);
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_kind_is_checked_and_escalates_when_capacity_does_not_come_back() {
    let h = drained(FakeFleet::default(), "verify_after_secs = 1").await;
    assert_eq!(run_once(&h, "drained").await.acted, 1);
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(jobs.run_next().await.unwrap(), "the check was due");
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.source, Source::RecoveryCheck);
    assert_eq!(record.outcome, Outcome::NotRecovered);
    assert_eq!(record.detail["breaker"]["tripped"], "escalated");
    let refused = run_once(&h, "drained").await;
    assert_eq!(refused.summary.refused_rule, Some("breaker-open"));
}
