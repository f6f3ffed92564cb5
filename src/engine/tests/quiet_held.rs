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
