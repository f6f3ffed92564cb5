//! The capacity speed limit end to end: a balancer of twelve instances may lose ceil(0.34 x 12) = 5 of them in
//! any hour, counted from the store by every process that shares it; an hour later (a process whose clock is
//! two hours ahead, libfaketime) the next one may go.

use serde_json::{Value, json};

use crate::common::process::{ReflexProcess, remediate_at};
use crate::common::{Fleet, Moto, config_text, unique};

/// The instances a run left alone for the speed limit.
fn slowed(summary: &Value) -> Vec<String> {
    summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|skip| skip["reason"] == "speed-limit")
        .map(|skip| skip["instance-id"].as_str().unwrap().to_owned())
        .collect()
}

fn terminated(summary: &Value) -> usize {
    summary["terminated-instance-ids"].as_array().unwrap().len()
}

#[tokio::test]
async fn five_of_twelve_an_hour_across_two_processes_and_the_next_after_the_hour() {
    let moto = Moto::shared();
    let fleet = Fleet::new(&moto.endpoint).await;
    let lb = unique("speed");
    let (_, broken) = fleet.balancer_with(&lb, 6, 6).await;
    let dir = tempfile::tempdir().unwrap();
    // Budgets far above the limit, a cap of three a run: only the speed limit can hold the runs back. The
    // recovery checks are due after the test (moto replaces nothing; the process two hours ahead would find
    // them due and open the breaker).
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&lb],
        "grace_period_secs = 0\ncooldown_secs = 0\nmax_terminations_per_run = 3\nmax_unhealthy_fraction = 0.9\n\
         max_acted_per_hour = 100\nmax_acted_per_day = 100\nmax_acted_per_hour_all = 100\n\
         max_acted_per_day_all = 100\nverify_after_secs = 86400\n",
    );
    let client = reqwest::Client::new();
    let (one_dir, two_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = ReflexProcess::start(one_dir.path(), &text, &client).await;
    let two = ReflexProcess::start(two_dir.path(), &text, &client).await;

    let first = remediate_at(&client, &one.base, &lb).await.1;
    assert_eq!(terminated(&first), 3, "{first}");
    assert!(slowed(&first).is_empty(), "{first}");
    // The other process counts the first one's three: two are left of the hour's five.
    let second = remediate_at(&client, &two.base, &lb).await.1;
    assert_eq!(terminated(&second), 2, "{second}");
    assert_eq!(slowed(&second).len(), 1, "{second}");
    assert_eq!(second["refused"], Value::Null, "{second}");
    let last = slowed(&second).remove(0);
    assert!(broken.contains(&last));
    // Within the hour, neither process acts again, and no breaker opened.
    for base in [&one.base, &two.base] {
        let again = remediate_at(&client, base, &lb).await.1;
        assert_eq!(again["terminated-instance-ids"], json!([]), "{again}");
        assert_eq!(slowed(&again), std::slice::from_ref(&last), "{again}");
    }
    drop((one, two));

    // Two hours on, the five are outside the window: the last broken instance goes.
    let later_dir = tempfile::tempdir().unwrap();
    let later =
        ReflexProcess::start_with_clock(later_dir.path(), &text, &client, Some("+2h")).await;
    let after = remediate_at(&client, &later.base, &lb).await.1;
    assert_eq!(after["terminated-instance-ids"], json!([last]), "{after}");
    assert!(slowed(&after).is_empty(), "{after}");
    drop(later);
}
