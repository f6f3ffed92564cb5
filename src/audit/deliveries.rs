//! Deduplication of deliveries, the one primitive every receiver uses: claim a delivery key (an SNS MessageId,
//! an alert group notification), or get the first delivery's answer to replay. Claims are durable rows, so the
//! answer holds across processes sharing the store. A claim is a lease: it names the process holding it, and a
//! redelivery takes over a claim whose holder stopped heartbeating (see `processes`), so an alert whose
//! first attempt died with its process is handled by the next attempt instead of being lost.

use std::time::Duration;

use bytes::Bytes;

/// A claimed delivery key: only a successful claim makes one, and settling it (with the request's final
/// record) consumes it.
#[derive(Debug)]
pub struct DeliveryKey {
    pub(super) key: String,
    pub(super) previous: Option<String>,
}

impl DeliveryKey {
    /// The audit id of an earlier attempt at this delivery whose process died before settling it: this
    /// attempt takes its place and finishes its job.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }

    /// The claim is kept with the answer redeliveries get (already marked as duplicates).
    pub fn complete(self, answer: Bytes) -> DeliveryUpdate {
        DeliveryUpdate::Complete {
            key: self.key,
            answer,
        }
    }

    /// The claim is dropped (the request failed), so a retry is handled afresh.
    pub fn release(self) -> DeliveryUpdate {
        DeliveryUpdate::Release { key: self.key }
    }
}

/// How a claimed delivery is settled together with its request's final record.
#[derive(Debug, Clone)]
pub enum DeliveryUpdate {
    /// Keep the answer, for redeliveries to return.
    Complete {
        /// The delivery key.
        key: String,
        /// The answer a redelivery gets, serialised.
        answer: Bytes,
    },
    /// Forget the claim, so a retry is handled afresh.
    Release {
        /// The delivery key.
        key: String,
    },
    /// Claim and complete at once, for a request whose answer needed no claim while it was made (an alert
    /// that leads to nothing): only if no other delivery holds the key, and the record only with it.
    First {
        /// The delivery key.
        key: String,
        /// The answer a redelivery gets, serialised.
        answer: Bytes,
    },
}

/// The answer to claiming a delivery.
#[derive(Debug)]
pub enum Delivery {
    /// This request owns the delivery: handle it and settle the key with the final record.
    Claimed(DeliveryKey),
    /// An earlier request handled it: answer with its answer; do nothing else.
    Replay {
        /// The first request's audit id.
        first_id: String,
        /// The answer a redelivery gets.
        answer: Bytes,
    },
    /// An earlier request owns it and had not answered within the wait: the sender should retry later.
    InProgress {
        /// The first request's audit id.
        first_id: String,
    },
}

/// A delivery this process completed, as remembered: a redelivery of it is answered without a query.
#[derive(Debug)]
pub struct Replay {
    /// The first request's audit id.
    pub first_id: String,
    /// The answer a redelivery gets.
    pub answer: Bytes,
}

/// What the store holds for a key, as one claim attempt found it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Claim {
    /// The claim was taken; over the unsettled claim of a dead attempt with this audit id, when there was one.
    New {
        /// The dead attempt.
        previous: Option<String>,
    },
    /// An earlier request holds it.
    Existing {
        /// The first request's audit id.
        audit_id: String,
        /// Its redelivery answer, `None` while it is still being handled.
        answer: Option<Bytes>,
    },
}

/// How long a redelivery waits for the first delivery's answer (SNS waits about 15 s for an answer).
pub(super) const WAIT: Duration = Duration::from_secs(10);
/// How often the store is asked during that wait.
pub(super) const POLL: Duration = Duration::from_millis(20);
