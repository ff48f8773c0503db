//! What buyers change themselves: where an item's Drive access goes, and the count of wrong
//! guesses that locks a scope (an order, a client address) for a while.

use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;
use crate::domain::{ItemStatus, Status};

/// Seconds until every one of `scopes` is unlocked; `None` when none is locked.
pub async fn locked_for(pool: &MySqlPool, scopes: &[String]) -> Result<Option<i64>, StoreError> {
    if scopes.is_empty() {
        return Ok(None);
    }
    let marks = vec!["?"; scopes.len()].join(", ");
    let sql = format!(
        "SELECT CAST(MAX(CEIL(TIMESTAMPDIFF(MICROSECOND, NOW(3), locked_until) / 1000000)) AS SIGNED)
         FROM buyer_attempts WHERE scope IN ({marks}) AND locked_until > NOW(3)"
    );
    let mut q = sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql));
    for s in scopes {
        q = q.bind(s);
    }
    Ok(q.fetch_one(pool).await?)
}

/// Counts a wrong guess against `scope`: the `max`-th within `window_secs` locks it for
/// `window_secs`. A window that is over (or a lock that has passed) starts the count again.
pub async fn record_failure(pool: &MySqlPool, scope: &str, max: u32, window_secs: u32) -> Result<(), StoreError> {
    // MySQL applies the assignments left to right, each seeing the ones before: `failures = 1`
    // after the first means the count started again.
    sqlx::query(
        "INSERT INTO buyer_attempts (scope, failures, window_started_at, locked_until)
         VALUES (?, 1, NOW(3), IF(1 >= ?, NOW(3) + INTERVAL ? SECOND, NULL))
         ON DUPLICATE KEY UPDATE
           failures = IF(window_started_at < NOW(3) - INTERVAL ? SECOND
                         OR (locked_until IS NOT NULL AND locked_until <= NOW(3)), 1, failures + 1),
           window_started_at = IF(failures = 1, NOW(3), window_started_at),
           locked_until = IF(failures >= ?, NOW(3) + INTERVAL ? SECOND, NULL)",
    )
    .bind(scope)
    .bind(max)
    .bind(window_secs)
    .bind(window_secs)
    .bind(max)
    .bind(window_secs)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the wrong guesses against `scope` (the right email was given).
pub async fn clear(pool: &MySqlPool, scope: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM buyer_attempts WHERE scope = ? AND (locked_until IS NULL OR locked_until <= NOW(3))")
        .bind(scope)
        .execute(pool)
        .await?;
    Ok(())
}

/// An order as the self-service checks it.
#[derive(Debug, Clone, FromRow)]
pub struct OrderForBuyer {
    pub id: u64,
    pub code: String,
    pub email: String,
    pub lang: String,
}

pub async fn order_by_code(pool: &MySqlPool, code: &str) -> Result<Option<OrderForBuyer>, StoreError> {
    Ok(sqlx::query_as("SELECT id, code, email, lang FROM orders WHERE code = ?")
        .bind(code)
        .fetch_optional(pool)
        .await?)
}

/// A completed item with what moving its access needs.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveredItem {
    pub id: u64,
    pub course: String,
    pub title: String,
    pub drive_folder_id: String,
    pub drive_link: String,
    pub drive_permission_id: Option<String>,
    /// Who has access now: the item's own address, or the order's.
    pub access_email: String,
    pub access_changes: u32,
}

/// The order's completed items (with a folder), in order.
pub async fn delivered_items(pool: &MySqlPool, order_id: u64) -> Result<Vec<DeliveredItem>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.id, c.slug AS course, c.title, i.drive_folder_id, i.drive_link, i.drive_permission_id,
                COALESCE(i.access_email, o.email) AS access_email, i.access_changes
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id
         WHERE i.order_id = ? AND i.status = ? AND i.drive_folder_id IS NOT NULL AND i.drive_link IS NOT NULL
         ORDER BY i.id",
    )
    .bind(order_id)
    .bind(ItemStatus::Completed.as_str())
    .fetch_all(pool)
    .await?)
}

/// Counts a move of the item's access to `email` and notes it as under way, if the item is
/// completed, has been moved fewer than `limit` times (no limit: an operator), and no other
/// move of it is under way (one that began more than `stale_secs` ago died, and no longer
/// blocks). One compare-and-set: parallel moves take turns, and at most `limit` ever count.
pub async fn reserve_move(
    pool: &MySqlPool,
    item_id: u64,
    email: &str,
    limit: Option<u32>,
    stale_secs: u32,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE order_items SET access_changes = access_changes + 1, access_pending_email = ?,
           access_pending_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND status = ? AND (? IS NULL OR access_changes < ?)
           AND (access_pending_email IS NULL OR access_pending_at IS NULL
                OR access_pending_at < NOW(3) - INTERVAL ? SECOND)",
    )
    .bind(email)
    .bind(item_id)
    .bind(ItemStatus::Completed.as_str())
    .bind(limit)
    .bind(limit)
    .bind(stale_secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How often the item's access has been moved, and whether a move is under way.
pub async fn move_state(pool: &MySqlPool, item_id: u64) -> Result<(u32, bool), StoreError> {
    let (changes, pending): (u32, bool) =
        sqlx::query_as("SELECT access_changes, access_pending_email IS NOT NULL FROM order_items WHERE id = ?")
            .bind(item_id)
            .fetch_one(pool)
            .await?;
    Ok((changes, pending))
}

/// Gives back a reserved move that did not happen (Drive failed, another item refused).
pub async fn undo_reservation(pool: &MySqlPool, item_id: u64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE order_items SET access_changes = GREATEST(access_changes, 1) - 1, access_pending_email = NULL,
           access_pending_at = NULL WHERE id = ? AND access_pending_email IS NOT NULL",
    )
    .bind(item_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Clears the move under way without giving it back (the item was revoked meanwhile).
pub async fn clear_pending(pool: &MySqlPool, item_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET access_pending_email = NULL, access_pending_at = NULL WHERE id = ?")
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records the item's access as moved to `email` with `permission_id` (the move was counted
/// when it was reserved), in the caller's transaction (which has locked the order and seen
/// the item still completed).
pub async fn record_move_in(
    conn: &mut MySqlConnection,
    item_id: u64,
    email: &str,
    permission_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE order_items SET access_email = ?, drive_permission_id = ?, access_pending_email = NULL,
           access_pending_at = NULL, updated_at = NOW(3)
         WHERE id = ? AND status = ?",
    )
    .bind(email)
    .bind(permission_id)
    .bind(item_id)
    .bind(ItemStatus::Completed.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets counts whose window began more than `older_than_secs` ago and that lock nothing
/// now: a guesser's stream of made-up codes leaves rows that would otherwise stay forever.
pub async fn forget_old(pool: &MySqlPool, older_than_secs: u32) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM buyer_attempts WHERE window_started_at < NOW(3) - INTERVAL ? SECOND
           AND (locked_until IS NULL OR locked_until <= NOW(3)) LIMIT 10000",
    )
    .bind(older_than_secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
