//! The audit store's API: write records (durably, before an answer is sent), claim deliveries, read the trail
//! and the last action per target. One writer connection owned by the batching writer, a small pool of
//! reading connections; SQLite or PostgreSQL (`backend`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::anchor::{Anchor, Checked as AnchorsChecked, Mismatch};
use super::approvals::{Approval, ApprovalWrite, Approver, Change, Vote};
use super::backend::Backend;
use super::brakes::Brakes;
use super::breakers::{BreakerChange, BreakerState};
use super::chain::{Break, Entry};
use super::claims::StuckClaim;
use super::completed::{Completed, CompletedDeliveries};
use super::decisions::DecisionRow;
use super::deliveries::{Claim, Delivery, DeliveryKey, DeliveryUpdate, POLL, Replay, WAIT};
use super::entries::Verified;
use super::episodes::{EpisodeStep, EpisodeWrite};
use super::home::Home;
use super::jobs::{ClaimedJob, NewJob};
use super::keys::Key;
use super::leases::{Lease, Leased};
use super::ops::{Op, Pending, Put, Written};
use super::pauses::{Pause, Scope};
use super::records::{Filter, LastAction, SharedClock};
use super::replacements::Replacement;
use super::silences::{NewSilence, Silence};
use super::times::millis;
use super::writer::{QUEUE_DEPTH, Store, WriterTask, submit};
use super::{AuditError, AuditRecord};
use crate::target::TargetId;

/// How often a held target lease is asked for again while waiting.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Handle to the audit trail; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditStore {
    writer: mpsc::Sender<Pending>,
    readers: AnyPool,
    completed: Arc<CompletedDeliveries>,
    write_failures: Counter,
    /// Woken when this process adds a job.
    jobs_added: Arc<tokio::sync::Notify>,
    /// Permits for the audit page's and `GET /audit`'s reads (`backend::PAGE_READERS`).
    page_reads: Arc<tokio::sync::Semaphore>,
    backend: Backend,
}

impl AuditStore {
    /// Opens the store at `url`: a SQLite file (`sqlite://PATH`, created when missing) or a PostgreSQL
    /// database (`postgres://...`); applies the migrations and starts the writer.
    pub async fn open(url: &str) -> Result<(Self, WriterTask), AuditError> {
        let backend = Backend::of(url).ok_or_else(|| {
            AuditError::Database(sqlx::Error::Configuration(
                "audit.url is neither sqlite:// nor postgres://".into(),
            ))
        })?;
        // This process's name in claims and leases; alive from now on, as long as its writer heartbeats.
        let owner: Arc<str> = super::next_id().into();
        let mut writer = backend.writer(url, &owner).await?;
        backend.migrate(&mut writer).await?;
        let adopted = super::entries::adopt(&mut writer, backend).await?;
        if adopted > 0 {
            tracing::info!(
                records = adopted,
                "audit records from before the hash chain were chained"
            );
        }
        super::processes::beat(&mut writer, backend, &owner).await?;
        super::processes::forget_silent(&mut writer, backend).await?;
        let readers = backend.readers(url).await?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let write_failures = Counter::default();
        Ok((
            Self {
                writer: tx,
                readers,
                completed: Arc::default(),
                write_failures: write_failures.clone(),
                jobs_added: Arc::default(),
                page_reads: Arc::new(tokio::sync::Semaphore::new(
                    super::backend::PAGE_READERS as usize,
                )),
                backend,
            },
            WriterTask::start(
                Store {
                    backend,
                    url: url.to_owned(),
                    write_failures,
                },
                writer,
                rx,
                owner,
            ),
        ))
    }

    /// Writes that failed to commit (each waiting request was told), for `reflex_audit_write_failures_total`.
    pub fn write_failures(&self) -> Counter {
        self.write_failures.clone()
    }

    /// Appends this version of the record (an intent, then its outcome, share an id) to the chain, and returns
    /// once it is durably committed. Reads see the newest version of each record.
    pub async fn put(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.put_with(Put::record(record)).await.map(|_| ())
    }

    /// Like `put`, and in the same commit completes or releases the request's delivery claim.
    pub async fn put_settling(
        &self,
        record: AuditRecord,
        delivery: Option<DeliveryUpdate>,
    ) -> Result<(), AuditError> {
        self.put_run(record, delivery, Vec::new(), None, None)
            .await
            .map(|_| ())
    }

    /// The answer of a delivery this process completed (from memory, no query): a redelivery it can replay.
    pub fn replay_of(&self, key: &str) -> Option<Replay> {
        self.completed.get(key).map(|done| Replay {
            first_id: done.audit_id,
            answer: done.answer,
        })
    }

    /// Records a request whose answer needed no delivery claim while it was made (an alert that leads to
    /// nothing) and, in the same commit, claims and completes its delivery `key` with `answer` (the answer a
    /// redelivery gets). When another delivery of the message already holds the key, nothing is written and
    /// `false` is answered: the request is a redelivery after all, to be handled by claiming as usual.
    pub async fn put_first(
        &self,
        record: AuditRecord,
        key: String,
        answer: Bytes,
    ) -> Result<bool, AuditError> {
        let completed = Completed {
            audit_id: record.id.clone(),
            answer: answer.clone(),
        };
        let put = Put {
            settle: Some(DeliveryUpdate::First {
                key: key.clone(),
                answer,
            }),
            ..Put::record(record)
        };
        match submit(&self.writer, Op::Put(Box::new(put))).await? {
            Written::First(true) => {
                self.completed.insert(key, completed);
                Ok(true)
            }
            Written::First(false) => Ok(false),
            _ => Err(AuditError::Commit(
                "the writer did not answer the claim".into(),
            )),
        }
    }

    /// Like `put_settling`, and in the same commit adds the jobs the record gives rise to (notifications);
    /// how many of those were dropped, their queue full.
    pub async fn put_run(
        &self,
        record: AuditRecord,
        delivery: Option<DeliveryUpdate>,
        jobs: Vec<NewJob>,
        approval: Option<ApprovalWrite>,
        episode: Option<EpisodeWrite>,
    ) -> Result<usize, AuditError> {
        self.put_with(Put {
            settle: delivery,
            jobs,
            approval,
            episode,
            ..Put::record(record)
        })
        .await
    }

    /// The episode the record `record_id` is a step of, and that episode's steps, oldest first; `None` for a
    /// record of no episode.
    pub async fn episode_story(
        &self,
        record_id: &str,
    ) -> Result<Option<(String, Vec<EpisodeStep>)>, AuditError> {
        let Some(episode) = super::episodes::episode_of(&self.readers, record_id).await? else {
            return Ok(None);
        };
        let story = super::episodes::story(&self.readers, &episode).await?;
        Ok(Some((episode, story)))
    }

    /// The replacements of `target` that joined at or after `since_ms` (the database's clock), oldest first:
    /// what a relapse is counted from.
    pub async fn replacements_since(
        &self,
        target: &TargetId,
        since_ms: i64,
    ) -> Result<Vec<Replacement>, AuditError> {
        Ok(super::replacements::since(&self.readers, target, since_ms).await?)
    }

    /// The decisions of `target`'s runs that acted at or after `since_ms` (the database's clock), newest
    /// first: the run, when it decided (milliseconds since the epoch), and the decision as JSON.
    pub async fn decisions_since(
        &self,
        target: &TargetId,
        since_ms: i64,
    ) -> Result<Vec<(String, i64, String)>, AuditError> {
        let key = super::keys::Key::from(target);
        Ok(super::decisions::of_target_since(&self.readers, &key, since_ms).await?)
    }

    async fn put_with(&self, put: Put) -> Result<usize, AuditError> {
        let completed = match &put.settle {
            Some(DeliveryUpdate::Complete { key, answer }) => Some((
                key.clone(),
                Completed {
                    audit_id: put.record.id.clone(),
                    answer: answer.clone(),
                },
            )),
            _ => None,
        };
        let adds_jobs = !put.jobs.is_empty();
        let written = submit(&self.writer, Op::Put(Box::new(put))).await?;
        if let Some((key, completed)) = completed {
            self.completed.insert(key, completed);
        }
        if adds_jobs {
            self.jobs_added.notify_one();
        }
        Ok(match written {
            Written::Enqueued(dropped) => dropped,
            _ => 0,
        })
    }

    /// Claims `key` (e.g. `sns:<MessageId>`) for the request `audit_id`, durably: exactly one of several
    /// concurrent claimants gets `Claimed`, also across processes sharing the store. The others get the first
    /// request's answer, waited for (bounded) while it is still being handled. With a `window`, a claim older
    /// than it no longer counts (the same alert group notified again later is handled again).
    pub async fn claim_delivery(
        &self,
        key: String,
        audit_id: &str,
        window: Option<Duration>,
    ) -> Result<Delivery, AuditError> {
        if window.is_none()
            && let Some(Replay { first_id, answer }) = self.replay_of(&key)
        {
            return Ok(Delivery::Replay { first_id, answer });
        }
        let window_ms = window.map(|window| i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let claim = submit(
            &self.writer,
            Op::Claim {
                key: key.clone(),
                audit_id: audit_id.to_owned(),
                window_ms,
            },
        )
        .await?;
        let (first_id, mut answer) = match claim {
            Written::Claim(Claim::New { previous }) => {
                return Ok(Delivery::Claimed(DeliveryKey { key, previous }));
            }
            Written::Claim(Claim::Existing { audit_id, answer }) => (audit_id, answer),
            _ => {
                return Err(AuditError::Commit(
                    "the writer did not answer the claim".into(),
                ));
            }
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while answer.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            let row = super::claims::holder_of(&self.readers, &key).await?;
            match row {
                Some((holder, summary)) if holder == first_id => answer = summary.map(Into::into),
                // Released (the first delivery failed) or taken over: the sender retries afresh.
                _ => break,
            }
        }
        Ok(match answer {
            Some(answer) => Delivery::Replay { first_id, answer },
            None => Delivery::InProgress { first_id },
        })
    }

    /// Removes the chain's entries older than `days` days (never a run that may still be acting), keeping a
    /// checkpoint the rest of the chain verifies from, and the settled delivery claims as old; returns how many
    /// entries went. `audit.retain_days` and `reflex audit prune`.
    pub async fn prune_older_than(&self, days: u32) -> Result<u64, AuditError> {
        let cutoff = OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
        match submit(
            &self.writer,
            Op::Prune {
                before_ms: millis(cutoff),
            },
        )
        .await?
        {
            Written::Pruned(removed) => Ok(removed),
            _ => Ok(0),
        }
    }

    /// The newest records first.
    pub async fn list(&self, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        self.search(&Filter::default(), limit).await
    }

    /// The database's clock now.
    pub async fn clock(&self) -> Result<SharedClock, AuditError> {
        let now = self.backend.now_ms(&self.readers).await?;
        Ok(SharedClock::at(Some(now)))
    }

    /// The newest records that pass `filter`, at most `limit`, older than the record `filter.before` when set
    /// (the next page): the audit page's timeline.
    pub async fn search(
        &self,
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        super::records::search(&self.readers, filter, limit).await
    }

    /// The recovery check recorded for the run `run_id`, once it ran.
    pub async fn recovery_of(&self, run_id: &str) -> Result<Option<AuditRecord>, AuditError> {
        super::records::recovery_of(&self.readers, run_id).await
    }

    /// The newest run of `target` (acting, completed or refused; from an alert, a person or the CLI).
    pub async fn last_run(&self, target: &TargetId) -> Result<Option<AuditRecord>, AuditError> {
        super::records::last_run(&self.readers, target).await
    }

    /// When instances of this target were last replaced (or were being replaced), for the cooldown: the time
    /// the run acted (its arrival for records from before that was kept). `except` leaves out up to two runs:
    /// the dead attempt a takeover finishes, and the earlier step of a ladder's episode, are no cooldown for
    /// it. The database's clock is read in the same query, so the cooldown is judged on it.
    pub async fn last_action(
        &self,
        target: &TargetId,
        except: &[&str],
    ) -> Result<LastAction, AuditError> {
        super::records::last_action(&self.readers, self.backend, target, except).await
    }

    /// One record by id.
    pub async fn get(&self, id: &str) -> Result<Option<AuditRecord>, AuditError> {
        super::records::get(&self.readers, id).await
    }

    /// Instances acted on (or being acted on) from `since` to `until`, on `target` or (`None`) on every
    /// target, by real runs of any process sharing the store: what the budgets count.
    pub async fn acted_between(
        &self,
        target: Option<&TargetId>,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64, AuditError> {
        super::records::acted_between(&self.readers, target, since, until).await
    }

    /// Takes `lease` for the run `audit_id`, waiting (bounded by `wait`) while another live process holds
    /// it; `false` when it is still held then. Every process sharing the store goes through it, so only one
    /// run at a time acts on a target (and counts the global budgets); the run's final record gives it back.
    pub async fn take_lease(
        &self,
        lease: Lease<'_>,
        audit_id: &str,
        wait: Duration,
    ) -> Result<bool, AuditError> {
        Ok(self.lease(lease, audit_id, wait).await? != Leased::Busy)
    }

    /// `take_lease`, saying whether another run held the lease when it was first asked for: what that run
    /// did to the target may not be in what this run read before.
    pub async fn lease(
        &self,
        lease: Lease<'_>,
        audit_id: &str,
        wait: Duration,
    ) -> Result<Leased, AuditError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut waited = false;
        loop {
            let op = Op::Lease {
                key: lease.key(),
                audit_id: audit_id.to_owned(),
            };
            if let Written::Lease(true) = submit(&self.writer, op).await? {
                return Ok(if waited {
                    Leased::AfterWaiting
                } else {
                    Leased::AtOnce
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Leased::Busy);
            }
            waited = true;
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// Appends a run's intent to the chain with its decision (`decision`, the engine's JSON), in one commit,
    /// before the run's first AWS write — unless, in that commit, its target is paused or its breaker open:
    /// then nothing is written and the brakes are answered (the run must not act).
    pub async fn put_intent(
        &self,
        record: AuditRecord,
        decision: String,
    ) -> Result<Option<Brakes>, AuditError> {
        let row = DecisionRow {
            run_id: record.id.clone(),
            target: Key {
                account: record.account.clone().unwrap_or_default(),
                region: record.region.clone().unwrap_or_default(),
                target: record.target.clone().unwrap_or_default(),
            },
            steps: record.acted,
            body: decision,
        };
        let put = Put {
            decision: Some(row),
            ..Put::record(record)
        };
        match submit(&self.writer, Op::Put(Box::new(put))).await? {
            Written::Braked(brakes) => Ok(Some(*brakes)),
            _ => Ok(None),
        }
    }

    /// The decision the run `run_id` stored with its intent (the engine's JSON), if it got that far.
    pub async fn decision(&self, run_id: &str) -> Result<Option<String>, AuditError> {
        Ok(super::decisions::body_of(&self.readers, run_id).await?)
    }

    /// Delivery claims left unsettled by processes that are dead: each is taken over by its next redelivery.
    pub async fn stuck_claims(&self) -> Result<Vec<StuckClaim>, AuditError> {
        Ok(super::claims::stuck(&self.readers, self.backend).await?)
    }

    /// Walks the whole chain from its checkpoint: what was verified, or the first entry that was changed,
    /// removed or moved. `reflex audit verify`.
    pub async fn verify(&self) -> Result<Result<Verified, Break>, AuditError> {
        super::entries::verify(&self.readers, self.backend).await
    }

    /// The audit page's signing key (hex), made (randomly, once, for every replica) when there is none.
    pub async fn ui_key(&self) -> Result<String, AuditError> {
        if let Some(key) = super::ui_sessions::key(&self.readers).await? {
            return Ok(key);
        }
        self.write_ui_key(false).await
    }

    /// Replaces the audit page's signing key with a new random one and ends every session.
    /// `reflex ui rotate-key`.
    pub async fn rotate_ui_key(&self) -> Result<(), AuditError> {
        self.write_ui_key(true).await.map(|_| ())
    }

    async fn write_ui_key(&self, rotate: bool) -> Result<String, AuditError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| AuditError::Commit("no randomness for the audit page key".into()))?;
        let fresh = crate::hex::encode(&bytes);
        match submit(&self.writer, Op::UiKey { fresh, rotate }).await? {
            Written::UiKey(key) => Ok(key),
            _ => Err(AuditError::Commit(
                "the writer answered another operation".into(),
            )),
        }
    }

    /// Records the audit page session `id`, lasting `lifetime`.
    pub async fn start_session(&self, id: &str, lifetime: Duration) -> Result<(), AuditError> {
        let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
        submit(
            &self.writer,
            Op::SessionStart {
                id: id.to_owned(),
                lifetime_ms,
            },
        )
        .await
        .map(|_| ())
    }

    /// Ends the audit page session `id` (a logout).
    pub async fn end_session(&self, id: &str) -> Result<(), AuditError> {
        submit(&self.writer, Op::SessionEnd { id: id.to_owned() })
            .await
            .map(|_| ())
    }

    /// Whether the audit page session `id` was issued and is neither ended nor expired.
    pub async fn session_is_live(&self, id: &str) -> Result<bool, AuditError> {
        Ok(super::ui_sessions::is_live(&self.readers, self.backend, id).await?)
    }

    /// The chain's head now, as an anchor to keep outside the database. `reflex audit anchor`.
    pub async fn anchor(&self) -> Result<Anchor, AuditError> {
        let (_, head) = super::entries::marks(&self.readers).await?;
        Ok(Anchor {
            seq: head.seq,
            hash: head.hash,
            at: OffsetDateTime::now_utc(),
        })
    }

    /// Checks the chain against `anchors` taken earlier; a prune keeps at least `min_days` days.
    /// `reflex audit verify --anchor FILE`.
    pub async fn check_anchors(
        &self,
        anchors: &[Anchor],
        min_days: u32,
    ) -> Result<Result<AnchorsChecked, Mismatch>, AuditError> {
        let (checkpoint, head) = super::entries::marks(&self.readers).await?;
        let mut hashes = std::collections::HashMap::new();
        for anchor in anchors {
            if anchor.seq > checkpoint.seq && anchor.seq <= head.seq {
                let hash = super::entries::hash_of(&self.readers, anchor.seq).await?;
                hashes.insert(anchor.seq, hash);
            }
        }
        let hash_of = |seq: i64| hashes.get(&seq).cloned().flatten();
        let now = OffsetDateTime::now_utc();
        Ok(super::anchor::check(
            anchors,
            &checkpoint,
            &head,
            hash_of,
            now,
            min_days,
        ))
    }

    /// A page of the entries (each version of each record, with its place in the chain and its hashes)
    /// written at or after `since`, oldest first, after the entry `after` (`None` for the first page); an empty
    /// page is the end. `reflex audit export`.
    pub async fn entries_since(
        &self,
        since: OffsetDateTime,
        after: Option<i64>,
    ) -> Result<Vec<Entry>, AuditError> {
        super::entries::entries_after(
            &self.readers,
            after.unwrap_or(i64::MIN),
            Some(millis(since)),
        )
        .await
    }

    /// Pauses `scope` with `reason`, durably: every process sharing the store refuses its alerts without any
    /// AWS call until it is resumed. Pausing again replaces the reason.
    pub async fn pause(&self, scope: Scope<'_>, reason: &str) -> Result<(), AuditError> {
        let op = Op::Pause {
            key: scope.key(),
            reason: reason.to_owned(),
        };
        submit(&self.writer, op).await.map(|_| ())
    }

    /// Lifts the pause of `scope` (`Everything`: the pause of everything; single targets' pauses stay);
    /// whether there was one.
    pub async fn resume(&self, scope: Scope<'_>) -> Result<bool, AuditError> {
        let op = Op::Resume { key: scope.key() };
        Ok(matches!(
            submit(&self.writer, op).await?,
            Written::Resumed(true)
        ))
    }

    /// Silences `scope` for `reason`, set `by` someone, for `duration` from now on the database's clock; a job
    /// announces its end. The silence as stored (with its id and end).
    pub async fn silence(
        &self,
        scope: Scope<'_>,
        reason: &str,
        by: &str,
        duration: Duration,
    ) -> Result<Silence, AuditError> {
        let op = Op::Silence(NewSilence {
            id: super::next_id(),
            key: scope.key(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            for_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        });
        let written = submit(&self.writer, op).await?;
        self.jobs_added.notify_one();
        match written {
            Written::Silenced(silence) => Ok(*silence),
            _ => Err(AuditError::Commit("the silence was not written".into())),
        }
    }

    /// Lifts the silence `id` before its end (its end's announcement is cancelled): the silence, if it was in
    /// force.
    pub async fn unsilence(&self, id: &str) -> Result<Option<Silence>, AuditError> {
        let op = Op::Unsilence { id: id.to_owned() };
        Ok(match submit(&self.writer, op).await? {
            Written::Unsilenced(lifted) => lifted.map(|silence| *silence),
            _ => None,
        })
    }

    /// Every silence in force now, everything's first.
    pub async fn silences(&self) -> Result<Vec<Silence>, AuditError> {
        Ok(super::silences::all(&self.readers, self.backend).await?)
    }

    /// What stops `target` before anything is read: the pause that holds for it (the pause of everything, or
    /// else its own), the silence in force for it and its breaker when open. Asked on every run, so it is one
    /// query of a few rows.
    pub async fn brakes_of(&self, target: &TargetId) -> Result<Brakes, AuditError> {
        Ok(super::brakes::of(&self.readers, self.backend, target).await?)
    }

    /// Every target's breaker with a row: open ones, and closed ones counting failures.
    pub async fn breakers(&self) -> Result<Vec<BreakerState>, AuditError> {
        Ok(super::breakers::all(&self.readers).await?)
    }

    /// A run of `target` hit AWS errors; the breaker opens at `trip_after` consecutive ones. Whether it
    /// opened now.
    pub async fn breaker_failed(
        &self,
        target: &TargetId,
        trip_after: u32,
    ) -> Result<bool, AuditError> {
        self.breaker(target, BreakerChange::Failed { trip_after })
            .await
    }

    /// A run of `target` read it without AWS errors: its consecutive failures start again from 0.
    pub async fn breaker_succeeded(&self, target: &TargetId) -> Result<(), AuditError> {
        self.breaker(target, BreakerChange::Succeeded)
            .await
            .map(|_| ())
    }

    /// Opens `target`'s breaker for `reason`; whether it opened now (false: it was open already).
    pub async fn trip_breaker(&self, target: &TargetId, reason: &str) -> Result<bool, AuditError> {
        let reason = reason.to_owned();
        self.breaker(target, BreakerChange::Trip { reason }).await
    }

    /// Closes `target`'s breaker; whether it was open.
    pub async fn reset_breaker(&self, target: &TargetId) -> Result<bool, AuditError> {
        self.breaker(target, BreakerChange::Reset).await
    }

    async fn breaker(&self, target: &TargetId, change: BreakerChange) -> Result<bool, AuditError> {
        Ok(matches!(
            submit(&self.writer, Op::Breaker(Key::from(target), change)).await?,
            Written::Breaker(true)
        ))
    }

    /// Records where reflex runs (`home`) unless a process recorded it already, and gives rows from before
    /// targets had accounts the recorded home; the home as recorded.
    pub async fn settle_home(&self, home: Home) -> Result<Home, AuditError> {
        match submit(&self.writer, Op::SettleHome(home.clone())).await? {
            Written::Home(recorded) => Ok(recorded),
            _ => Ok(home),
        }
    }

    /// Where reflex runs, as a process recorded it, if one did.
    pub async fn home(&self) -> Result<Option<Home>, AuditError> {
        Ok(super::home::recorded(&self.readers).await?)
    }

    /// Adds `jobs`, durably; how many were dropped, their queue full.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<usize, AuditError> {
        let written = submit(&self.writer, Op::Enqueue(jobs)).await?;
        self.jobs_added.notify_one();
        Ok(match written {
            Written::Enqueued(dropped) => dropped,
            _ => 0,
        })
    }

    /// Whether a job is due that nobody runs (a read: idle polling writes nothing).
    pub async fn any_job_due(&self) -> Result<bool, AuditError> {
        Ok(super::jobs::any_due(&self.readers, self.backend).await?)
    }

    /// Claims the oldest due job for this process, if any: no other process runs it while this one lives.
    pub async fn claim_job(&self) -> Result<Option<ClaimedJob>, AuditError> {
        match submit(&self.writer, Op::ClaimJob).await? {
            Written::Job(job) => Ok(job),
            _ => Ok(None),
        }
    }

    /// Writes the record a claimed job produced, the jobs it gives rise to and the job's removal, in one
    /// commit: the job runs once. How many of the new jobs were dropped, their queue full.
    pub async fn finish_job(
        &self,
        record: AuditRecord,
        job_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<usize, AuditError> {
        self.finish_step(record, job_id, jobs, None).await
    }

    /// Like `finish_job`, for a job whose record is a step of an episode (a check): the step, and what the
    /// relapse memory learns from it, ride in the same commit.
    pub async fn finish_step(
        &self,
        record: AuditRecord,
        job_id: &str,
        jobs: Vec<NewJob>,
        episode: Option<EpisodeWrite>,
    ) -> Result<usize, AuditError> {
        self.put_with(Put {
            jobs,
            finishes: Some(job_id.to_owned()),
            episode,
            ..Put::record(record)
        })
        .await
    }

    /// Closes the held decision `id` as expired, if it is still pending and past its expiry: what the expiry
    /// job's vote came to.
    pub async fn expire(&self, id: &str) -> Result<Vote, AuditError> {
        self.vote(id, Change::Expire).await
    }

    /// Counts `approver`'s approval of the held decision `id`: what it came to (closed once enough distinct
    /// approvers approved, with the job that acts on it `act_after` from now should the approver's own run not
    /// finish; nothing changes once it is closed or past its expiry).
    pub async fn approve(
        &self,
        id: &str,
        approver: Approver,
        act_after: Duration,
    ) -> Result<Vote, AuditError> {
        let act_after_ms = i64::try_from(act_after.as_millis()).unwrap_or(i64::MAX);
        let vote = self.vote(id, Change::Approve(approver, act_after_ms)).await;
        self.jobs_added.notify_one();
        vote
    }

    /// Rejects the held decision `id` for `reason`, unless it is closed or past its expiry.
    pub async fn reject(
        &self,
        id: &str,
        approver: Approver,
        reason: &str,
    ) -> Result<Vote, AuditError> {
        self.vote(id, Change::Reject(approver, reason.to_owned()))
            .await
    }

    async fn vote(&self, id: &str, change: Change) -> Result<Vote, AuditError> {
        let op = Op::Vote {
            id: id.to_owned(),
            change,
        };
        match submit(&self.writer, op).await? {
            Written::Vote(vote) => Ok(vote),
            _ => Err(AuditError::Commit("the vote was not answered".into())),
        }
    }

    /// The held decision `id`, in whatever state.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, AuditError> {
        Ok(super::approvals::get(&self.readers, id).await?)
    }

    /// The newest `limit` runs of `target` and their recovery checks, newest first.
    pub async fn recent_runs(
        &self,
        target: &TargetId,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        super::records::recent_runs(&self.readers, target, limit).await
    }

    /// The records about `target` (or every target) since `since`, grouped by period of `period_ms`, source
    /// and outcome, with how many acted, oldest first: what the charts of runs and a target's way up are
    /// drawn from.
    pub async fn activity(
        &self,
        target: Option<&TargetId>,
        since: OffsetDateTime,
        period_ms: i64,
    ) -> Result<Vec<super::records::Activity>, AuditError> {
        super::records::activity(&self.readers, target, since, period_ms).await
    }

    /// The steps of `target`'s newest episodes, at most `steps`, newest first: (episode, step).
    pub async fn episodes_of(
        &self,
        target: &TargetId,
        steps: u32,
    ) -> Result<Vec<(String, EpisodeStep)>, AuditError> {
        Ok(super::episodes::of_target(&self.readers, target, steps).await?)
    }

    /// What `target`'s runs and recovery checks since `since` saw of its health, oldest first, at most `limit`
    /// of the newest.
    pub async fn health_points(
        &self,
        target: &TargetId,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<super::HealthPoint>, AuditError> {
        super::records::health_points(&self.readers, target, since, limit).await
    }

    /// How many records each target has had since `since`, by source and outcome, and how many acted.
    pub async fn tally(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<super::records::Tally>, AuditError> {
        super::records::tally(&self.readers, millis(since)).await
    }

    /// Every held decision still waiting, the soonest to expire first.
    pub async fn pending_approvals(&self) -> Result<Vec<Approval>, AuditError> {
        Ok(super::approvals::pending(&self.readers, self.backend).await?)
    }

    /// A permit for one request of the audit page or `GET /audit`, held while it reads: waits while
    /// `backend::PAGE_READERS` such requests read, so that they never hold every reader connection.
    pub async fn page_read(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.page_reads)
            .acquire_owned()
            .await
            .expect("the page readers' semaphore is never closed")
    }

    /// The held decisions of `target` still waiting, the newest first.
    pub async fn pending_approvals_of(
        &self,
        target: &TargetId,
    ) -> Result<Vec<Approval>, AuditError> {
        let key = super::keys::Key::from(target);
        Ok(super::approvals::pending_of(&self.readers, self.backend, &key).await?)
    }

    /// How many decisions each target held since `since`, by state: (account, region, target, state, count).
    pub async fn approval_counts(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, String, String, String, i64)>, AuditError> {
        Ok(super::approvals::counts(&self.readers, self.backend, millis(since)).await?)
    }

    /// Puts a claimed job back, to be tried again (by any process) `after` from now; `error` says why.
    pub async fn retry_job(
        &self,
        job_id: &str,
        after: Duration,
        error: String,
    ) -> Result<(), AuditError> {
        let op = Op::RetryJob {
            id: job_id.to_owned(),
            after_ms: i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            error,
        };
        submit(&self.writer, op).await.map(|_| ())
    }

    /// Resolves when a job was added by this process since the last call (or at once, once in a while):
    /// wakes the job runner without waiting for its next poll.
    pub async fn job_added(&self) {
        self.jobs_added.notified().await;
    }

    /// Jobs waiting, by kind.
    pub async fn jobs_waiting(&self) -> Result<Vec<(String, u64)>, AuditError> {
        Ok(super::jobs::waiting(&self.readers).await?)
    }

    /// Every pause in force, everything's first.
    pub async fn pauses(&self) -> Result<Vec<Pause>, AuditError> {
        Ok(super::pauses::all(&self.readers).await?)
    }

    /// Proves the store can be read and can still commit a write, for `/readyz`: a store that cannot write
    /// (a full disk, a read-only file) makes reflex unready instead of acknowledging what it cannot record.
    pub async fn ping(&self) -> Result<(), AuditError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        submit(&self.writer, Op::Probe).await.map(|_| ())
    }
}
