//! Leases on items: the one worker that works a claimed item (enroll, deliver) holds it for a
//! while, renews it while it works, and releases it; a crashed worker's lease lapses and
//! another takes the item over. One module for both stages.

use sqlx::{MySqlConnection, MySqlPool};

use super::StoreError;
use crate::domain::{ItemStatus, Status};

/// Takes the lease on an item in `status` that nobody holds (or whose lease lapsed); `false`
/// when another worker holds a live one or the item is not in `status`.
pub async fn take(
    pool: &MySqlPool,
    item_id: u64,
    status: ItemStatus,
    worker: &str,
    lease_secs: u32,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE order_items SET lease_owner = ?, lease_until = NOW(3) + INTERVAL ? SECOND
         WHERE id = ? AND status = ? AND (lease_until IS NULL OR lease_until < NOW(3))",
    )
    .bind(worker)
    .bind(lease_secs)
    .bind(item_id)
    .bind(status.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease to `worker` in the caller's transaction, which has just claimed the item.
pub async fn grant_in(
    conn: &mut MySqlConnection,
    item_id: u64,
    worker: &str,
    lease_secs: u32,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET lease_owner = ?, lease_until = NOW(3) + INTERVAL ? SECOND WHERE id = ?")
        .bind(worker)
        .bind(lease_secs)
        .bind(item_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Extends `worker`'s lease; `false` when the lease is no longer its own. It leaves
/// `updated_at` as it was: that column says when the item last changed or made progress, and
/// "delivering without progress" is read from it; a heartbeat is neither.
pub async fn renew(
    pool: &MySqlPool,
    item_id: u64,
    status: ItemStatus,
    worker: &str,
    lease_secs: u32,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE order_items SET lease_until = NOW(3) + INTERVAL ? SECOND, updated_at = updated_at
         WHERE id = ? AND status = ? AND lease_owner = ?",
    )
    .bind(lease_secs)
    .bind(item_id)
    .bind(status.as_str())
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases `worker`'s lease of an item in `status` for a later try; with an error, counts an
/// attempt and keeps the error. Answers the attempts so far, or `None` when the lease is no
/// longer `worker`'s: then nothing changes (another worker's lease is never cleared, nor its
/// attempts counted).
pub async fn release(
    pool: &MySqlPool,
    item_id: u64,
    status: ItemStatus,
    worker: &str,
    error: Option<&str>,
) -> Result<Option<u32>, StoreError> {
    let done = sqlx::query(
        "UPDATE order_items SET lease_owner = NULL, lease_until = NULL,
             attempts = attempts + IF(? IS NULL, 0, 1), last_error = COALESCE(?, last_error)
         WHERE id = ? AND status = ? AND lease_owner = ?",
    )
    .bind(error)
    .bind(error)
    .bind(item_id)
    .bind(status.as_str())
    .bind(worker)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some(sqlx::query_scalar("SELECT attempts FROM order_items WHERE id = ?").bind(item_id).fetch_one(pool).await?))
}

/// Whether a worker holds item `item_id` under a lease that has not run out.
pub async fn is_held(conn: &mut sqlx::MySqlConnection, item_id: u64) -> Result<bool, super::StoreError> {
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_items WHERE id = ? AND lease_until > NOW(3)")
        .bind(item_id)
        .fetch_one(conn)
        .await?;
    Ok(held > 0)
}
