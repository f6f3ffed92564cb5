//! Fills an audit store with a trail of COUNT records over the last 30 days, as a busy reflex would leave it:
//! alerts that acted, were refused or held, recovery checks (each reading the target's health), notification
//! deliveries, and page views and logins (most of the trail). Used by `bench/ui.sh` to time the audit page's
//! timeline and charts on a large trail.
//! Usage: `cargo run --release --example seed_trail -- URL COUNT TARGET [ACCOUNT REGION]`.

use reflex::audit::{AuditRecord, AuditStore, Auth, Outcome, Source, next_id};
use serde_json::json;
use time::OffsetDateTime;

/// Records written per wave (the writer commits them in batches).
const WAVE: usize = 2_000;

/// Record `n` of `count`, spread evenly over the last 30 days, oldest first.
fn record(
    n: usize,
    count: usize,
    target: &str,
    place: (&str, &str),
    now: OffsetDateTime,
) -> AuditRecord {
    let span = time::Duration::days(30);
    let at = now - span + span * (n as f64 / count as f64);
    let (source, outcome, acted, detail) = match n % 20 {
        0 => (Source::Sns, Outcome::Completed, 1, seen(3, 2)),
        1 | 2 => (Source::Sns, Outcome::Refused, 0, seen(4, 1)),
        3 => (Source::Alertmanager, Outcome::Held, 0, seen(4, 1)),
        4 => (Source::RecoveryCheck, Outcome::Recovered, 0, seen(5, 0)),
        5 => (
            Source::Notify,
            Outcome::Completed,
            0,
            json!({"notification": {"event": "acted"}}),
        ),
        _ => (
            Source::AuditRead,
            Outcome::Completed,
            0,
            json!({"page": "/ui/"}),
        ),
    };
    AuditRecord {
        id: next_id(),
        at,
        source,
        caller: Some("10.0.0.1:443".into()),
        auth: Auth::Passed,
        target: (source != Source::AuditRead).then(|| target.to_owned()),
        account: Some(place.0.to_owned()),
        region: Some(place.1.to_owned()),
        outcome,
        status: 200,
        error: None,
        dry_run: false,
        acted,
        duration_ms: 12,
        acted_at: (acted > 0).then_some(at),
        detail,
    }
}

/// A run's reading of its target: `up` instances InService and `down` not.
fn seen(up: usize, down: usize) -> serde_json::Value {
    let instance = |n: usize, state: &str| json!({"instance_id": format!("i-{n:017x}"), "health": {"state": state, "reported": state}});
    let instances: Vec<_> = (0..up)
        .map(|n| instance(n, "InService"))
        .chain((up..up + down).map(|n| instance(n, "OutOfService")))
        .collect();
    json!({"seen": {"target": "bench", "instances": instances}, "plan": {"act_on": []}})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count, target, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: seed_trail URL COUNT TARGET [ACCOUNT REGION]");
    };
    let count: usize = count.parse()?;
    let place = match rest {
        [account, region] => (account.as_str(), region.as_str()),
        _ => ("123456789012", "us-east-1"),
    };
    let (store, writer) = AuditStore::open(url).await?;
    let now = OffsetDateTime::now_utc();
    for wave in (0..count).step_by(WAVE) {
        let puts = (wave..(wave + WAVE).min(count)).map(|n| {
            let store = store.clone();
            let record = record(n, count, target, place, now);
            tokio::spawn(async move { store.put(record).await })
        });
        for put in puts.collect::<Vec<_>>() {
            put.await??;
        }
    }
    writer.finish().await;
    println!("seeded {count} records for {target} in {}", place.0);
    Ok(())
}
