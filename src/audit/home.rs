//! The `home` table: the AWS account (learned once with STS GetCallerIdentity) and the region reflex itself
//! runs in, recorded the first time a process learns them. Rows from before targets were keyed by account
//! and region are the home's: chain entries through the `audit_records` view, the keyed tables by having their
//! placeholder filled in here.

use serde::Serialize;
use sqlx::AnyPool;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Where reflex itself runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Home {
    /// The AWS account id.
    pub account: String,
    /// The AWS region.
    pub region: String,
}

/// Records `home` unless one is recorded already, and gives the keyed tables' rows from before accounts the
/// recorded one; the home as recorded.
pub(super) async fn settle(tx: &mut Tx<'_>, home: &Home, now: i64) -> Result<Home, sqlx::Error> {
    sqlx::query(
        "INSERT INTO home (id, account, region, learned_ms) VALUES (1, $1, $2, $3) ON CONFLICT(id) DO NOTHING",
    )
    .bind(home.account.as_str())
    .bind(home.region.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let (account, region): (String, String) =
        sqlx::query_as("SELECT account, region FROM home WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
    for table in ["breakers", "pauses", "target_leases", "decisions"] {
        sqlx::query(&format!(
            "UPDATE {table} SET account = $1, region = $2 WHERE account = '' AND target <> '*'"
        ))
        .bind(account.as_str())
        .bind(region.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(Home { account, region })
}

/// The recorded home, once a process recorded it.
pub(super) async fn recorded(readers: &AnyPool) -> Result<Option<Home>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT account, region FROM home WHERE id = 1")
            .fetch_optional(readers)
            .await?;
    Ok(row.map(|(account, region)| Home { account, region }))
}
