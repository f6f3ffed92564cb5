//! The `replacements` table: the relapse memory. Each instance that joined a target between a run that
//! replaced instances and its recovery check is a replacement, kept with what it replaced, the run, and its
//! image and launch template; one that breaks again within the relapse window is marked with the run that
//! found it so. A run about to replace reads the target's recent replacements (one indexed query).

use serde::Serialize;
use sqlx::{AnyPool, Row as _};

use super::keys::{self, Key};
use crate::target::TargetId;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Most replacements of one target one read returns (a relapse needs only a few).
const RECENT_MAX: i64 = 500;

/// An instance that joined a target after a run replaced broken ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Joined {
    /// The instance that joined.
    pub instance_id: String,
    /// The run that replaced.
    pub run_id: String,
    /// What that run replaced.
    pub replaced: Vec<String>,
    /// The AMI it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The launch template (and version) it was launched from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<String>,
}

/// A replacement as remembered: what joined, and whether it broke again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    /// What joined, and what it replaced.
    #[serde(flatten)]
    pub joined: Joined,
    /// When it joined (milliseconds since the epoch, on the database's clock).
    pub joined_ms: i64,
    /// When a run found it broken again, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relapsed_ms: Option<i64>,
    /// That run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relapse_run: Option<String>,
}

/// Remembers `joined` (once per instance: the first run it replaced for is the one named).
pub(super) async fn insert(
    tx: &mut Tx<'_>,
    key: &Key,
    episode: &str,
    joined: &[Joined],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for one in joined {
        sqlx::query(
            "INSERT INTO replacements (account, region, target, instance_id, run_id, episode, replaced, \
             image_id, launch_template, joined_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT(account, region, target, instance_id) DO NOTHING",
        )
        .bind(key.account.as_str())
        .bind(key.region.as_str())
        .bind(key.target.as_str())
        .bind(one.instance_id.as_str())
        .bind(one.run_id.as_str())
        .bind(episode)
        .bind(serde_json::to_string(&one.replaced).unwrap_or_default())
        .bind(one.image_id.as_deref())
        .bind(one.launch_template.as_deref())
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Marks `instances` (replacements of `key`) as broken again, found by the run `run_id`; once each.
pub(super) async fn relapsed(
    tx: &mut Tx<'_>,
    key: &Key,
    instances: &[String],
    run_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for instance in instances {
        let sql = format!(
            "UPDATE replacements SET relapsed_ms = $4, relapse_run = $5 WHERE {} AND instance_id = $6 \
             AND relapsed_ms IS NULL",
            keys::matches("replacements", 1)
        );
        sqlx::query(&sql)
            .bind(key.account.as_str())
            .bind(key.region.as_str())
            .bind(key.target.as_str())
            .bind(now_ms)
            .bind(run_id)
            .bind(instance.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The replacements of `target` that joined at or after `since_ms`, oldest first (bounded).
pub(super) async fn since(
    readers: &AnyPool,
    target: &TargetId,
    since_ms: i64,
) -> Result<Vec<Replacement>, sqlx::Error> {
    let sql = format!(
        "SELECT instance_id, run_id, replaced, image_id, launch_template, joined_ms, relapsed_ms, relapse_run \
         FROM replacements WHERE {} AND joined_ms >= $4 ORDER BY joined_ms LIMIT $5",
        keys::matches("replacements", 1)
    );
    let rows = sqlx::query(&sql)
        .bind(target.account.as_str())
        .bind(target.region.as_str())
        .bind(target.name.as_str())
        .bind(since_ms)
        .bind(RECENT_MAX)
        .fetch_all(readers)
        .await?;
    rows.iter()
        .map(|row| {
            let replaced: String = row.try_get(2)?;
            Ok(Replacement {
                joined: Joined {
                    instance_id: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    replaced: serde_json::from_str(&replaced).unwrap_or_default(),
                    image_id: row.try_get(3)?,
                    launch_template: row.try_get(4)?,
                },
                joined_ms: row.try_get(5)?,
                relapsed_ms: row.try_get(6)?,
                relapse_run: row.try_get(7)?,
            })
        })
        .collect()
}

/// Forgets the replacements that joined before `before_ms` (pruning).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM replacements WHERE joined_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
