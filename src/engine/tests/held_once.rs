//! In approve mode, an alert repeated while its decision waits joins that decision: one pending decision per
//! target and instance set, however many alerts (the repro: 2,000 alerts made 2,000 decisions, expiry jobs and
//! messages for one instance).

use super::*;

#[tokio::test]
async fn alerts_repeated_while_a_decision_waits_join_it_and_ask_the_approvers_once() {
    let approve = "mode = \"approve\"\n[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = harness(FakeFleet::default(), approve).await;
    let first = run_once(&h, "web").await;
    let held = first.summary.approval.clone().unwrap();
    assert!(first.hold.is_some());
    for _ in 0..5 {
        let again = run_once(&h, "web").await;
        assert!(again.hold.is_none(), "no new decision");
        let joined = again.summary.approval.clone().unwrap();
        assert_eq!(
            (joined.id.as_str(), joined.would_replace.as_slice()),
            (held.id.as_str(), held.would_replace.as_slice())
        );
        assert_eq!(again.outcome(), Outcome::Held);
        let record = h.store.get(&again.summary.audit_id).await.unwrap().unwrap();
        assert_eq!(record.detail["joined"]["approval"], held.id.as_str());
        assert!(
            h.engine
                .events("web", &again, &again.summary.audit_id)
                .is_empty()
        );
    }
    assert_eq!(h.store.pending_approvals().await.unwrap().len(), 1);
    // Another target's decision is its own.
    let api = run_once(&h, "api").await;
    assert_ne!(api.summary.approval.unwrap().id, held.id);
    assert_eq!(h.store.pending_approvals().await.unwrap().len(), 2);
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
}
