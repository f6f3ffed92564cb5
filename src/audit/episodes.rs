//! The `episode_steps` table: which records tell one episode (an alert's first acting run, the check after each
//! step, the steps that followed, an escalation), so that the audit page reads an episode as one story. Each
//! row is written in the commit of the record it names.

use sqlx::{AnyPool, Row as _};

use super::keys::Key;
use super::replacements::{self, Joined};
use crate::target::TargetId;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Most steps one episode's story shows.
const STORY_MAX: i64 = 200;

/// What rides with a record of an episode: its step, and what the relapse memory learns from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeWrite {
    /// The episode (the audit id of its first acting run).
    pub episode: String,
    /// The target.
    pub target: TargetId,
    /// What this record is in the story: `reboot`, `replace`, `check`, `escalated`, `resolved`, `relapsing`.
    pub step: String,
    /// Instances that joined the target since a replacement (a recovery check's finding).
    pub joined: Vec<Joined>,
    /// Replacements this record's run found broken again (relapses), marked with the run.
    pub relapsed: Vec<String>,
}

impl EpisodeWrite {
    /// The step `step` of `episode` on `target`, with nothing learnt.
    pub fn step(episode: &str, target: &TargetId, step: &str) -> Self {
        Self {
            episode: episode.to_owned(),
            target: target.clone(),
            step: step.to_owned(),
            joined: Vec::new(),
            relapsed: Vec::new(),
        }
    }
}

/// One step of an episode, as the story lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeStep {
    /// The record.
    pub record_id: String,
    /// What it is in the story.
    pub step: String,
    /// When it was written (milliseconds since the epoch).
    pub at_ms: i64,
}

/// Writes `write` for the record `record_id`, with what it learnt.
pub(super) async fn apply(
    tx: &mut Tx<'_>,
    write: &EpisodeWrite,
    record_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let key = Key::from(&write.target);
    sqlx::query(
        "INSERT INTO episode_steps (record_id, episode, account, region, target, step, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(record_id) DO NOTHING",
    )
    .bind(record_id)
    .bind(write.episode.as_str())
    .bind(key.account.as_str())
    .bind(key.region.as_str())
    .bind(key.target.as_str())
    .bind(&write.step)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    replacements::insert(tx, &key, &write.episode, &write.joined, now_ms).await?;
    replacements::relapsed(tx, &key, &write.relapsed, record_id, now_ms).await
}

/// The episode the record `record_id` belongs to, if any.
pub(super) async fn episode_of(
    readers: &AnyPool,
    record_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT episode FROM episode_steps WHERE record_id = $1")
        .bind(record_id)
        .fetch_optional(readers)
        .await
}

/// The steps of `episode`, oldest first (bounded): in the order their records began (record ids sort by their
/// start), not their commits; a check's record begins before the next step's run it starts, and commits after.
pub(super) async fn story(
    readers: &AnyPool,
    episode: &str,
) -> Result<Vec<EpisodeStep>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT record_id, step, at_ms FROM episode_steps WHERE episode = $1 \
         ORDER BY record_id LIMIT $2",
    )
    .bind(episode)
    .bind(STORY_MAX)
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(EpisodeStep {
                record_id: row.try_get(0)?,
                step: row.try_get(1)?,
                at_ms: row.try_get(2)?,
            })
        })
        .collect()
}

/// The steps of `target`'s newest episodes (at most `steps` steps, newest first), for its page.
pub(super) async fn of_target(
    readers: &AnyPool,
    target: &TargetId,
    steps: u32,
) -> Result<Vec<(String, EpisodeStep)>, sqlx::Error> {
    let sql = format!(
        "SELECT episode, record_id, step, at_ms FROM episode_steps WHERE {} ORDER BY record_id DESC LIMIT $4",
        super::keys::matches("episode_steps", 1)
    );
    let rows = sqlx::query(&sql)
        .bind(target.account.as_str())
        .bind(target.region.as_str())
        .bind(target.name.as_str())
        .bind(i64::from(steps))
        .fetch_all(readers)
        .await?;
    rows.iter()
        .map(|row| {
            let step = EpisodeStep {
                record_id: row.try_get(1)?,
                step: row.try_get(2)?,
                at_ms: row.try_get(3)?,
            };
            Ok((row.try_get(0)?, step))
        })
        .collect()
}

/// Removes the steps written before `before_ms` (pruning, with the entries of the same age).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM episode_steps WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await?;
    replacements::prune(tx, before_ms).await
}
