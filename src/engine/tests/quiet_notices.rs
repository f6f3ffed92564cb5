//! An observe-mode target whose alert repeats sends one "would have acted" notice per interval, not one per
//! alert (the repro: every alert of a storm queued a notice, and a slow webhook's queue filled).

use super::*;

#[tokio::test]
async fn a_repeated_would_act_is_noticed_once_per_interval() {
    let observe = "mode = \"observe\"\n[[notify]]\nurl = \"https://hooks.example/reflex\"";
    let h = harness(FakeFleet::default(), observe).await;
    for _ in 0..3 {
        let run = run_once(&h, "web").await;
        assert_eq!(run.outcome(), Outcome::WouldAct);
    }
    assert_eq!(
        h.store.jobs_waiting().await.unwrap(),
        vec![("notify".to_owned(), 1)]
    );
    // Another target has its own interval.
    run_once(&h, "api").await;
    assert_eq!(
        h.store.jobs_waiting().await.unwrap(),
        vec![("notify".to_owned(), 2)]
    );
}
