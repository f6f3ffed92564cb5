//! A run whose brakes cannot be read between two acts (the store failing after its first AWS write) stops
//! there and still records what it did: its act counts against the cooldown and the budgets, so the sender's
//! retry does not act again with a full cap.

use super::*;

#[tokio::test]
async fn a_run_that_cannot_read_its_brakes_after_acting_stops_and_records_what_it_did() {
    let fleet = FakeFleet {
        wide: Some((6, 2)),
        unreadable_brakes_after_first_terminate: true,
        ..FakeFleet::default()
    };
    let h = harness(fleet, "cooldown_secs = 600").await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.acted, 1);
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad1"]);
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1, "no second AWS write");
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["stopped"], "brakes-unreadable");
    assert_eq!(record.acted, 1);
    assert_eq!(record.detail["actions"][0]["instance_id"], "i-bad1");
    h.fleet.rename_table("silences_away", "silences").await;
    // The act counts: the retry meets the cooldown.
    let retry = run_once(&h, "web").await;
    assert_eq!(retry.summary.refused_rule, Some("cooldown"));
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1);
}
