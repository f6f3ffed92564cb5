//! The writes the batching writer takes (`Op`, a record's `Put` among them), what it answers once each is
//! committed (`Written`), and a write paired with who waits for it (`Pending`). A module of their own so that
//! the writer and the run results it holds back after a failed commit (`held`) both use them without reaching
//! each other.

use tokio::sync::oneshot;

use super::AuditRecord;
use super::approvals::{ApprovalWrite, Change, Vote};
use super::brakes::Brakes;
use super::breakers::BreakerChange;
use super::decisions::DecisionRow;
use super::deliveries::{Claim, DeliveryUpdate};
use super::episodes::EpisodeWrite;
use super::home::Home;
use super::jobs::{ClaimedJob, NewJob};
use super::keys::Key;
use super::rows::PreparedRow;
use super::silences::{NewSilence, Silence};

/// A record version and what rides with it in the same commit.
#[derive(Debug)]
pub(super) struct Put {
    /// The version of the record to append to the chain.
    pub record: AuditRecord,
    /// Its columns, as appended.
    pub row: PreparedRow,
    /// The request's delivery claim, completed or released.
    pub settle: Option<DeliveryUpdate>,
    /// The run's decision, with its intent.
    pub decision: Option<DecisionRow>,
    /// Jobs the record gives rise to (notifications).
    pub jobs: Vec<NewJob>,
    /// The claimed job whose result the record is, removed.
    pub finishes: Option<String>,
    /// A decision held, or acted on, by the record's run.
    pub approval: Option<ApprovalWrite>,
    /// The record's step in an episode, with what the relapse memory learns from it.
    pub episode: Option<EpisodeWrite>,
}

impl Put {
    /// Just the record.
    pub fn record(record: AuditRecord) -> Self {
        Self {
            row: PreparedRow::of(&record),
            record,
            settle: None,
            decision: None,
            jobs: Vec::new(),
            finishes: None,
            approval: None,
            episode: None,
        }
    }
}

/// One write for the writer task.
pub(super) enum Op {
    /// Append a version of a record (an intent, then its outcome) to the chain, with what rides with it.
    Put(Box<Put>),
    /// Claim a delivery key for the request with this audit id; with a window (ms), a claim older than it
    /// is taken over.
    Claim {
        key: String,
        audit_id: String,
        window_ms: Option<i64>,
    },
    /// Rewrite the readiness row: proves a commit still goes through.
    Probe,
    /// Take the lease stored as `key` for the run `audit_id` (or keep it, when this process holds it).
    Lease { key: Key, audit_id: String },
    /// Pause `key` (the row of every target: everything) with this reason: the kill switch.
    Pause { key: Key, reason: String },
    /// Resume `key` (the row of every target lifts the pause of everything, not of single targets).
    Resume { key: Key },
    /// Silence a target (or everything) until a time, with the job that announces its end.
    Silence(NewSilence),
    /// Lift the silence with this id before its end, and cancel its end's job.
    Unsilence { id: String },
    /// Record where reflex runs, unless recorded already.
    SettleHome(Home),
    /// Prune the chain's entries, settled delivery claims and dead processes from before this time (ms).
    Prune { before_ms: i64 },
    /// Change a target's breaker.
    Breaker(Key, BreakerChange),
    /// Add jobs.
    Enqueue(Vec<NewJob>),
    /// Claim the oldest due job.
    ClaimJob,
    /// Put a claimed job back, to be tried again `after_ms` from now.
    RetryJob {
        id: String,
        after_ms: i64,
        error: String,
    },
    /// The audit page's key, made from `fresh` when there is none; with `rotate`, replaced by it (every
    /// session ends).
    UiKey { fresh: String, rotate: bool },
    /// Record an audit page session that lasts `lifetime_ms`.
    SessionStart { id: String, lifetime_ms: i64 },
    /// End an audit page session.
    SessionEnd { id: String },
    /// Approve or reject a held decision.
    Vote { id: String, change: Change },
}

/// What the writer answers for one write once it is committed.
#[derive(Debug)]
pub(super) enum Written {
    /// A probe, a pause, a breaker's clean run.
    Done,
    /// A put or jobs added: how many jobs were dropped because their queue was full.
    Enqueued(usize),
    /// A delivery claim, as it turned out.
    Claim(Claim),
    /// A prune, with how many records it removed.
    Pruned(u64),
    /// A lease request: whether the lease is now held.
    Lease(bool),
    /// A resume: whether there was such a pause.
    Resumed(bool),
    /// A silence, as stored.
    Silenced(Box<Silence>),
    /// A silence lifted early, if it was in force.
    Unsilenced(Option<Box<Silence>>),
    /// A breaker change: whether the breaker opened (or, for a reset, closed).
    Breaker(bool),
    /// A record with a delivery claimed and completed at once: whether the claim was won (and the record
    /// written).
    First(bool),
    /// A run's intent not written: its target is paused or its breaker open.
    Braked(Box<Brakes>),
    /// A claimed job, if one was due.
    Job(Option<ClaimedJob>),
    /// Where reflex runs, as recorded.
    Home(Home),
    /// The audit page's key.
    UiKey(String),
    /// What a vote on a held decision came to.
    Vote(Vote),
}

/// A write and who waits for its commit.
pub(super) struct Pending {
    pub op: Op,
    pub done: oneshot::Sender<Result<Written, String>>,
}
