//! An approve-mode target's "held" messages: one per interval for one ladder step, not one per decision (the
//! repro: every decision queued a Slack message, and a slow webhook's queue filled); a new step, and a fresh
//! decision once the waiting one is past half its time (no longer joined), are announced.

use super::*;

#[tokio::test]
async fn a_decision_held_after_the_join_horizon_is_announced() {
    let approve = "mode = \"approve\"\n[approvals]\nttl_secs = 2\ntokens = [\"approver-token-0123456789\"]\n\
                   [[notify]]\nurl = \"https://hooks.example/reflex\"\nevents = [\"held\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let first = run_once(&h, "web").await;
    assert!(first.hold.is_some());
    let notices = async || {
        let waiting = h.store.jobs_waiting().await.unwrap();
        waiting
            .into_iter()
            .find(|(kind, _)| kind == "notify")
            .map(|(_, n)| n)
    };
    // An alert repeated at once joins the decision: no new message.
    let joined = run_once(&h, "web").await;
    assert!(joined.hold.is_none());
    assert_eq!(notices().await, Some(1));
    // Past half its time, the next alert holds a decision of its own, and its approvers hear of it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = run_once(&h, "web").await;
    assert!(second.hold.is_some(), "a new decision is held");
    assert_eq!(notices().await, Some(2));
}

#[tokio::test]
async fn a_ladders_next_step_and_a_short_wait_are_never_quieted() {
    let approve =
        "mode = \"approve\"\n[approvals]\nttl_secs = 2\ntokens = [\"approver-token-0123456789\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let held = || {
        vec![crate::events::Event::new(
            crate::config::NotifyEvent::Held,
            "web",
            "held".into(),
            "R1",
        )]
    };
    let step = r##""E1"#0"##;
    assert_eq!(h.engine.unquieted(held(), None, step).len(), 1);
    assert_eq!(
        h.engine.unquieted(held(), None, step).len(),
        0,
        "the same step is quieted"
    );
    let next = r##""E1"#1"##;
    assert_eq!(
        h.engine.unquieted(held(), None, next).len(),
        1,
        "the next step is its own"
    );
    // Quieted no longer than half a decision's wait: one second here.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(h.engine.unquieted(held(), None, step).len(), 1);
}
