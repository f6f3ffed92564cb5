//! The `readiness` table: one row that `/readyz` rewrites through the batching writer, proving the store can
//! still commit (a full disk or a read-only file fails it).

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Rewrites the row with `now` (ms).
pub(super) async fn probe(tx: &mut Tx<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO readiness (id, at_ms) VALUES (1, $1) ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
    )
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}
