//! The `run_checks` table: which run each check record checked, written in the check's commit, so that a run's
//! page finds its check through an index.

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Notes that the record `record_id`, written at `now` (ms), is a check of the run `run_id`.
pub(super) async fn insert(
    tx: &mut Tx<'_>,
    record_id: &str,
    run_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO run_checks (record_id, run_id, at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(record_id)
    .bind(run_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes the notes written before `before_ms` (pruning, with the entries of the same age).
pub(super) async fn prune(tx: &mut Tx<'_>, before_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM run_checks WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
