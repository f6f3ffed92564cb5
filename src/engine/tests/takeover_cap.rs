//! A takeover counts against the per-run cap every instance its dead attempt decided on and may have acted
//! on, including one deregistered since (the repro: 12 instances, 3 stopped, the cap 2; the first attempt is
//! killed after its first TerminateInstances and that instance deregistered; the redelivery must not
//! terminate two more).

use super::*;

#[tokio::test]
async fn a_takeover_counts_an_instance_its_dead_attempt_decided_on_and_that_left_the_target() {
    let fleet = FakeFleet {
        wide: Some((9, 3)),
        ec2_states: HashMap::from([("i-bad1".to_owned(), "terminated".to_owned())]),
        deregistered: HashSet::from(["i-bad1".to_owned()]),
        ..FakeFleet::with_target_group("instance")
    };
    let h = harness_with(
        fleet,
        "cooldown_secs = 600\nmax_terminations_per_run = 2\nmax_removed_fraction_per_hour = 1.0",
        "[[targets]]\ntarget_group = \"web-tg\"\n",
    )
    .await;
    let dead_id = dead_attempt(&h.store, &["i-bad1", "i-bad2"]).await;
    let mut takeover = meta();
    let run = h
        .engine
        .take_over(&mut takeover, &group_trigger("web-tg", false), &dead_id)
        .await
        .unwrap();
    assert_eq!(run.summary.list("terminated-instance-ids"), ["i-bad2"]);
    assert_eq!(
        run.summary.skipped,
        [Skip {
            instance_id: "i-bad3".into(),
            reason: SkipReason::CapReached
        }]
    );
    assert_eq!(
        takeover.detail["takeover"],
        serde_json::json!({"of": dead_id, "already_replaced": ["i-bad1"]})
    );
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1);
}
