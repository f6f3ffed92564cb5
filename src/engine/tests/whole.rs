//! A test-only action kind, `restart`, that acts on the whole target rather than on one instance (as an ECS
//! service's redeploy does), added as any kind is: this file and one registration line (the harness's
//! `kinds()`). A run that would act on any instance acts once on the target, for all of them, under every gate:
//! the pause, the budgets, the approval, the check and the escalation.

use super::*;
use crate::contract::Subject;
use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Started};
use crate::engine::port::InstanceView;

/// Restarts the whole target (the fake fleet records one reboot of the target's name), keeps its instances,
/// and is judged by the target's capacity coming back.
#[derive(Debug)]
pub(super) struct Restart;

impl Action for Restart {
    fn name(&self) -> &'static str {
        "restart"
    }
    fn verb(&self) -> &'static str {
        "restart"
    }

    fn done(&self) -> &'static str {
        "restarted"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Target,
            keeps_instance: true,
            removes_capacity: false,
            adds_capacity: false,
            judged: Judged::CapacityBack,
            checked_after: None,
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:RebootInstances"]
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok("restart")
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "restarted-resources"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["restarted-resources"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        let call = on.fleet.reboot(on.act.subject.id());
        Box::pin(async move { call.await.map(Started::Done) })
    }
}

/// The harness with a target `whole` (six InService, two OutOfService) whose ladder is `["restart"]`, under
/// `extra` `[remediation]` settings.
async fn whole(extra: &str) -> Harness {
    let fleet = FakeFleet {
        wide: Some((6, 2)),
        ..FakeFleet::default()
    };
    harness_with(
        fleet,
        extra,
        "[[targets]]\nload_balancer = \"whole\"\nladder = [\"restart\"]\n",
    )
    .await
}

fn done(h: &Harness) -> Vec<(&'static str, String)> {
    h.fleet.done.lock().unwrap().clone()
}

#[tokio::test]
async fn a_kind_on_the_whole_target_acts_once_for_all_its_broken_instances() {
    let h = whole("").await;
    let run = run_once(&h, "whole").await;
    assert_eq!(run.acted, 1);
    assert_eq!(done(&h), [("reboot", "whole".to_owned())]);
    assert_eq!(run.summary.list("restarted-resources"), ["whole"]);
    assert!(run.summary.skipped.is_empty(), "{:?}", run.summary.skipped);
    let answered = serde_json::to_value(&run.summary).unwrap();
    let act = &answered["actions"][0];
    assert_eq!(
        (&act["resource"], &act["action"], &act["state"]),
        (
            &serde_json::json!("whole"),
            &serde_json::json!("restart"),
            &serde_json::json!("rebooting")
        )
    );
    assert!(act.get("instance-id").is_none(), "{act}");
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    let decided: crate::engine::decision::Decision = serde_json::from_str(
        &h.store
            .decision(&run.summary.audit_id)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        decided.steps[0].subject,
        Subject::Resource("whole".to_owned())
    );
    assert_eq!(decided.steps[0].covers, ["i-bad1", "i-bad2"]);
    // Its check expects both instances it was for back: six InService and the two.
    assert_eq!(record.detail["recovery_check"]["expected_in_service"], 8);
}

#[tokio::test]
async fn a_kind_on_the_whole_target_is_paused_held_to_its_budget_and_checked() {
    let h = whole("max_acted_per_hour = 1\nverify_after_secs = 1").await;
    h.store
        .pause(Scope::Target(&id("whole")), "not now")
        .await
        .unwrap();
    let paused = run_once(&h, "whole").await;
    assert_eq!(paused.summary.refused_rule, Some("paused"));
    assert!(done(&h).is_empty(), "no AWS write");
    assert!(h.store.resume(Scope::Target(&id("whole"))).await.unwrap());
    assert_eq!(run_once(&h, "whole").await.acted, 1);
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(jobs.run_next().await.unwrap(), "the check was due");
    let check = &h.store.list(1).await.unwrap()[0];
    assert_eq!(check.outcome, Outcome::NotRecovered);
    assert_eq!(check.detail["recovery"]["expected_in_service"], 8);
    assert_eq!(check.detail["breaker"]["tripped"], "escalated");
    h.store.reset_breaker(&id("whole")).await.unwrap();
    let over = run_once(&h, "whole").await;
    assert_eq!(over.acted, 0);
    let skipped: Vec<_> = over
        .summary
        .skipped
        .iter()
        .map(|skip| (skip.instance_id.as_str(), skip.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            ("i-bad1", SkipReason::Budget),
            ("i-bad2", SkipReason::Budget)
        ]
    );
    assert_eq!(done(&h).len(), 1);
}

#[tokio::test]
async fn a_kind_on_the_whole_target_is_held_for_approvers_and_acts_once_approved() {
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = whole(approve).await;
    let held = run_once(&h, "whole").await;
    assert!(done(&h).is_empty(), "no AWS write");
    let ask = held.summary.approval.clone().unwrap();
    assert_eq!(
        (ask.verb.as_str(), ask.would_replace.as_slice()),
        ("restart", &["whole".to_owned()][..])
    );
    let approval = h.store.approval(&ask.id).await.unwrap().unwrap();
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.list("restarted-resources"), ["whole"]);
    assert_eq!(done(&h), [("reboot", "whole".to_owned())]);
}

#[test]
fn an_act_on_the_whole_target_is_kept_for_any_instance_it_covers_and_skips_them_all_when_cut() {
    use crate::engine::plan::{Clock, Policy, keep_only, plan, trim_to};
    let fleet = FakeFleet {
        wide: Some((6, 2)),
        ..FakeFleet::default()
    };
    let snapshot = fleet.healthy_but_one("whole");
    let policy = Policy::new(
        &crate::config::RemediationConfig {
            grace_period_secs: 0,
            ..Default::default()
        },
        Arc::new(Restart),
    );
    let clock = Clock {
        now: OffsetDateTime::now_utc(),
        last_action_at: None,
    };
    let planned = plan(&snapshot, &policy, clock);
    assert_eq!(planned.act_on.len(), 1);
    let skips = |plan: &crate::engine::plan::Plan| -> Vec<(String, SkipReason)> {
        let mut skips: Vec<_> = plan
            .skipped
            .iter()
            .map(|skip| (skip.instance_id.clone(), skip.reason))
            .collect();
        skips.sort_by(|a, b| a.0.cmp(&b.0));
        skips
    };
    // A ladder's next step asked about one of the instances it covers keeps it.
    let mut next = planned.clone();
    keep_only(
        &mut next,
        &["i-bad2".to_owned()],
        2,
        SkipReason::NotInEpisode,
    );
    assert_eq!(next.act_on, planned.act_on);
    assert!(next.skipped.is_empty());
    // Asked about another, it acts on nothing, and says why for each instance.
    let mut other = planned.clone();
    keep_only(
        &mut other,
        &["i-gone".to_owned()],
        2,
        SkipReason::NotInEpisode,
    );
    assert!(other.act_on.is_empty());
    assert_eq!(
        skips(&other),
        [
            ("i-bad1".to_owned(), SkipReason::NotInEpisode),
            ("i-bad2".to_owned(), SkipReason::NotInEpisode),
            ("i-gone".to_owned(), SkipReason::NoLongerBroken),
        ]
    );
    // A limit that leaves it out skips each instance it was for.
    let mut cut = planned;
    assert_eq!(trim_to(&mut cut, 0, SkipReason::SpeedLimit), 1);
    assert_eq!(
        skips(&cut),
        [
            ("i-bad1".to_owned(), SkipReason::SpeedLimit),
            ("i-bad2".to_owned(), SkipReason::SpeedLimit),
        ]
    );
}
