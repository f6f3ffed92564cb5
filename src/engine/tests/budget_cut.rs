//! A run whose plan the budgets cut short acts on what they allow, and only then opens the breaker: opened
//! before its intent, the breaker refused the run's own intent, and the run acted on nothing.

use super::*;

#[tokio::test]
async fn a_run_the_budget_cuts_acts_on_what_it_allows_and_then_stops_the_next() {
    let fleet = FakeFleet {
        wide: Some((10, 3)),
        ..FakeFleet::default()
    };
    let limits =
        "max_acted_per_hour = 2\nmax_terminations_per_run = 3\nmax_removed_fraction_per_hour = 1.0";
    let h = harness(fleet, limits).await;
    let run = run_once(&h, "web").await;
    assert_eq!(run.summary.refused_rule, None);
    assert_eq!(run.acted, 2);
    assert_eq!(
        run.summary.list("terminated-instance-ids"),
        ["i-bad1", "i-bad2"]
    );
    assert_eq!(run.summary.elb_instance_ids.len(), 13, "what the run read");
    assert_eq!(
        run.summary.skipped,
        [Skip {
            instance_id: "i-bad3".into(),
            reason: SkipReason::Budget
        }]
    );
    assert_eq!(run.tripped.map(|tripped| tripped.trip), Some(Trip::Budget));
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["breaker"]["tripped"], "budget");
    assert_eq!(h.fleet.done.lock().unwrap().len(), 2);
    let next = run_once(&h, "web").await;
    assert_eq!(next.summary.refused_rule, Some("breaker-open"));
    assert_eq!(h.fleet.done.lock().unwrap().len(), 2);
}
