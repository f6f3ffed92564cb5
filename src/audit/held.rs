//! Run results held back by a failed commit. A run's final record settles its delivery claim and gives back its
//! leases in the commit that writes it; lost with a failed commit (PostgreSQL restarting, SQLite locked past its
//! busy timeout), it would leave the claim and the leases held by a live process, the run's record `acting`, and
//! every other run waiting for the budget lease. The writer keeps such writes here and commits them again, with
//! a growing pause, until the store takes them; the request itself was answered with the failure, and its
//! record says so.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ops::{Op, Pending, Put};
use super::rows::PreparedRow;

/// Most writes held at once; beyond it a failed run's result is dropped (and logged): its claim and leases
/// then wait for this process to stop, after which another process takes them over.
const HELD_MAX: usize = 4096;
/// The first pause before a held write is tried again; it doubles up to `LONGEST_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// A held write still refused this long after it was first held is given up (and logged).
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

/// The held writes, oldest first, and when to try them again.
#[derive(Debug)]
pub(super) struct Held {
    puts: VecDeque<(Instant, Box<Put>)>,
    next_try: Instant,
    pause: Duration,
}

impl Held {
    pub fn new() -> Self {
        Self {
            puts: VecDeque::new(),
            next_try: Instant::now(),
            pause: FIRST_PAUSE,
        }
    }

    /// Whether a failed write must be committed later: a run's final record (it gives back the run's leases)
    /// or any record that settles a delivery claim or finishes a job. An intent is not (its run did not act
    /// without it), nor a record that claims its delivery as it completes it (its request, refused, is
    /// retried whole).
    pub fn keeps(op: &Op) -> bool {
        let Op::Put(put) = op else {
            return false;
        };
        if put.decision.is_some() || matches!(put.settle, Some(super::DeliveryUpdate::First { .. }))
        {
            return false;
        }
        put.record.ends_a_run() || put.settle.is_some() || put.finishes.is_some()
    }

    /// Holds `op` (one `keeps` kept) whose commit failed with `error`; its record notes that the request was
    /// answered with that failure and that the record was written once the store came back.
    pub fn hold(&mut self, op: Op, error: &str) {
        let Op::Put(mut put) = op else {
            return;
        };
        if self.puts.len() >= HELD_MAX {
            tracing::error!(
                id = %put.record.id,
                "too many run results wait for the audit store; this one is dropped"
            );
            return;
        }
        if let Some(detail) = put.record.detail.as_object_mut() {
            detail.insert(
                "committed_late".into(),
                serde_json::json!({
                    "first_commit_failed": error,
                    "note": "the request was answered with the store's failure; this record was written once the store took it",
                }),
            );
        }
        put.row = PreparedRow::of(&put.record);
        if self.puts.is_empty() {
            self.pause = FIRST_PAUSE;
            self.next_try = Instant::now() + self.pause;
        }
        self.puts.push_back((Instant::now(), put));
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.puts.len()
    }

    /// When to try the held writes again.
    pub fn next_try(&self) -> Instant {
        self.next_try
    }

    /// Tries again at once (the store just took another write).
    pub fn try_now(&mut self) {
        self.next_try = Instant::now();
    }

    /// The oldest held write, to be committed again (nobody waits for its answer), and when it was first held.
    pub fn take(&mut self) -> Option<(Pending, Instant)> {
        let (since, put) = self.puts.pop_front()?;
        let (done, _) = oneshot::channel();
        let pending = Pending {
            op: Op::Put(put),
            done,
        };
        Some((pending, since))
    }

    /// Puts back, first in line, a write `take` gave that failed again, unless it was held too long; the next
    /// try waits longer.
    pub fn failed(&mut self, pending: Pending, since: Instant) {
        if let Op::Put(put) = pending.op {
            if since.elapsed() > GIVE_UP_AFTER {
                tracing::error!(
                    id = %put.record.id,
                    "a run's result waited an hour for the audit store; it is given up"
                );
            } else {
                self.puts.push_front((since, put));
            }
        }
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        self.next_try = Instant::now() + self.pause;
    }
}
