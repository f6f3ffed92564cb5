//! A test-only action kind, `slow`, whose act is not over when it answers (as an SSM command is not): it is
//! one file and one registration line (the harness's `kinds()`), and the step's check polls its act until it
//! is over before judging.

use std::sync::atomic::AtomicUsize;

use super::*;
use crate::engine::action::{Action, ActsOn, Effect, Judged, On, Polled, Started};
use crate::engine::port::InstanceView;

/// Polls answered so far: the first says the act is still under way, the next that it succeeded.
static POLLS: AtomicUsize = AtomicUsize::new(0);

/// Starts a command on the instance and answers at once with the command's id.
#[derive(Debug)]
pub(super) struct Slow;

impl Action for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn verb(&self) -> &'static str {
        "slow"
    }

    fn done(&self) -> &'static str {
        "commanded"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Instance,
            keeps_instance: false,
            removes_capacity: true,
            adds_capacity: false,
            judged: Judged::CapacityBack,
            checked_after: None,
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[]
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok("command")
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "commanded-instance-ids"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["commanded-instance-ids"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        let handle = format!("cmd-{}", on.act.subject.id());
        Box::pin(async move { Ok(Started::Pending(handle)) })
    }

    fn poll<'a>(&'a self, _: On<'a>, handle: &'a str) -> BoxFuture<'a, Result<Polled, FleetError>> {
        assert!(handle.starts_with("cmd-"), "{handle}");
        let polled = POLLS.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(if polled == 0 {
                Polled::Pending
            } else {
                Polled::Done("Success".to_owned())
            })
        })
    }
}

#[tokio::test]
async fn an_act_under_way_is_polled_by_the_check_until_it_is_over_then_judged() {
    let h = harness_with(
        FakeFleet::default(),
        "verify_after_secs = 1",
        "[[targets]]\nload_balancer = \"slow\"\nladder = [\"slow\"]\n",
    )
    .await;
    let run = run_once(&h, "slow").await;
    assert_eq!(run.acted, 1);
    assert_eq!(run.summary.list("commanded-instance-ids"), ["i-bad"]);
    let act = &run.summary.actions[0];
    assert_eq!(act.state.as_deref(), Some("pending"));
    assert_eq!(act.handle.as_deref(), Some("cmd-i-bad"));
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(jobs.run_next().await.unwrap(), "the check was due");
    let checked = |records: &[crate::audit::AuditRecord]| {
        records
            .iter()
            .any(|record| record.source == Source::RecoveryCheck)
    };
    assert!(!checked(&h.store.list(5).await.unwrap()), "not judged yet");
    assert_eq!(
        h.store.jobs_waiting().await.unwrap(),
        [(CHECK_JOB.to_owned(), 1)],
        "put back to poll again"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(jobs.run_next().await.unwrap());
    let record = &h.store.list(1).await.unwrap()[0];
    assert_eq!(record.source, Source::RecoveryCheck);
    assert_eq!(record.detail["polled"][0]["state"], "Success");
    assert_eq!(record.detail["polled"][0]["handle"], "cmd-i-bad");
    // The fake fleet never brings capacity back: judged, the target escalates.
    assert_eq!(record.outcome, Outcome::NotRecovered);
}
