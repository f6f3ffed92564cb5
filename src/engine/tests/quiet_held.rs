//! An approve-mode target whose alerts hold decision after decision (each joining none: the earlier one had
//! less than half its time left) sends one "held" message per interval, not one per decision (the repro: every
//! decision queued a Slack message, and a slow webhook's queue filled).

use super::*;

#[tokio::test]
async fn decisions_held_one_after_another_send_one_held_message_per_interval() {
    let approve = "mode = \"approve\"\n[approvals]\nttl_secs = 2\ntokens = [\"approver-token-0123456789\"]\n\
                   [[notify]]\nurl = \"https://hooks.example/reflex\"\nevents = [\"held\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let first = run_once(&h, "web").await;
    assert!(first.hold.is_some());
    // Past half its time, the next alert holds a decision of its own.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = run_once(&h, "web").await;
    assert!(second.hold.is_some(), "a new decision is held");
    assert_ne!(
        second.summary.approval.unwrap().id,
        first.summary.approval.unwrap().id
    );
    let notices = async || {
        let waiting = h.store.jobs_waiting().await.unwrap();
        waiting
            .into_iter()
            .find(|(kind, _)| kind == "notify")
            .map(|(_, n)| n)
    };
    assert_eq!(
        notices().await,
        Some(1),
        "one held message for two decisions"
    );
    // Another target has its own interval.
    run_once(&h, "api").await;
    assert_eq!(notices().await, Some(2));
}

#[tokio::test]
async fn a_ladders_next_step_and_a_short_wait_are_never_quieted() {
    let approve =
        "mode = \"approve\"\n[approvals]\nttl_secs = 1\ntokens = [\"approver-token-0123456789\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let held = || {
        vec![crate::events::Event::new(
            crate::config::NotifyEvent::Held,
            "web",
            "held".into(),
            "R1",
        )]
    };
    assert_eq!(h.engine.unquieted(held(), None, "null").len(), 1);
    assert_eq!(
        h.engine.unquieted(held(), None, "null").len(),
        0,
        "the same step is quieted"
    );
    let next = r#"{"kind":"replace","step":1}"#;
    assert_eq!(
        h.engine.unquieted(held(), None, next).len(),
        1,
        "the next step is its own"
    );
    // Quieted no longer than a decision waits: one second here.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(h.engine.unquieted(held(), None, "null").len(), 1);
}
