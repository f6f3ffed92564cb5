//! One clock for what replicas share: a replica whose own clock is 30 s ahead (libfaketime) still counts the
//! budgets with the others, because when a run acted, and every window it is counted in, are taken from the
//! database's clock, not each process's.

use serde_json::{Value, json};

use crate::common::postgres::Postgres;
use crate::common::process::{ReflexProcess, remediate_at};
use crate::common::{Fleet, Moto, config_text, unique};

/// Whether the run left an instance alone for the budget.
fn skipped_for_budget(summary: &Value) -> bool {
    summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|skip| skip["reason"] == "budget")
}

#[tokio::test]
async fn a_replica_whose_clock_is_30_s_ahead_shares_the_budget_with_the_others() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("skewed");
    fleet.balancer_with(&lb, 3, 2).await;
    let postgres = Postgres::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let text = postgres.config(&config_text(
        &moto.endpoint,
        &dir.path().join("unused.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 0\nmax_terminations_per_run = 1\nmax_acted_per_hour = 1\n",
    ));
    let client = reqwest::Client::new();
    let ahead_dir = tempfile::tempdir().unwrap();
    let ahead =
        ReflexProcess::start_with_clock(ahead_dir.path(), &text, &client, Some("+30s")).await;
    let honest_dir = tempfile::tempdir().unwrap();
    let honest = ReflexProcess::start(honest_dir.path(), &text, &client).await;

    // The replica 30 s ahead acts on one instance: the target's hourly budget of 1 is spent.
    let first = remediate_at(&client, &ahead.base, &lb).await.1;
    assert_eq!(
        first["terminated-instance-ids"].as_array().unwrap().len(),
        1,
        "{first}"
    );
    // Counted on its own clock, that run would lie 30 s in the other replica's future, outside its window,
    // and the other replica would act again. On the database's clock it is inside.
    let second = remediate_at(&client, &honest.base, &lb).await.1;
    assert_eq!(second["terminated-instance-ids"], json!([]), "{second}");
    assert!(skipped_for_budget(&second), "{second}");
    // The budget cut the honest replica's run short and opened the breaker, which holds for the one ahead.
    let third = remediate_at(&client, &ahead.base, &lb).await.1;
    assert_eq!(third["refused-rule"], "breaker-open", "{third}");
    drop((ahead, honest));
}
