//! The Drive permissions we gave for each item (`drive_grants`), and the lock that makes
//! giving and taking back access to one address on one folder take turns.

use sha2::{Digest, Sha256};
use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;

/// A permission given for an item.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Grant {
    pub id: u64,
    pub item_id: u64,
    pub folder_id: String,
    pub email: String,
    /// `None`: Drive was being asked when the row was written.
    pub permission_id: Option<String>,
    /// Whether we made the permission (only those are ever removed).
    pub created_by_us: bool,
}

/// Held while one address's access to one folder is given or taken back, so a finalize and a
/// refund (or two moves) of items sharing that permission never undo each other. A named
/// server lock on a connection of its own, outside the pool: it is held across Drive's calls,
/// and a batch of finalizes holding the pool's few connections that long would starve the
/// rest of the function. Dropped without [`AddressLock::release`] (a cancelled request), the
/// connection closes and the server frees the lock.
pub struct AddressLock {
    conn: Option<MySqlConnection>,
}

impl AddressLock {
    /// The lock's connection: the grant's reads and writes go on it.
    pub fn conn(&mut self) -> &mut MySqlConnection {
        self.conn.as_mut().expect("a lock holds its connection until released")
    }

    pub async fn release(mut self) -> Result<(), StoreError> {
        if let Some(conn) = self.conn.take() {
            // Closing the connection frees its locks; say goodbye properly.
            sqlx::Connection::close(conn).await?;
        }
        Ok(())
    }
}

/// Takes the lock of `email` on `folder` (waiting up to 30 s for another holder).
pub async fn lock_address(pool: &MySqlPool, folder: &str, email: &str) -> Result<AddressLock, StoreError> {
    // Lock names are at most 64 characters: a digest of the pair, lower-cased as addresses
    // compare.
    let digest = Sha256::digest(format!("{folder}\n{}", email.to_lowercase()));
    let name = format!("cd-grant-{}", &hex::encode(digest)[..48]);
    let mut conn = <MySqlConnection as sqlx::Connection>::connect_with(&pool.connect_options()).await?;
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 30)").bind(&name).fetch_one(&mut conn).await?;
    if got != Some(1) {
        return Err(StoreError::Corrupt(format!(
            "the access of one address to folder {folder} stayed locked for 30 s"
        )));
    }
    Ok(AddressLock { conn: Some(conn) })
}

/// Whether permission `permission_id` on `folder` is one we made: a live grant of ours holds
/// it, or (a crash between asking Drive and writing its answer) a live grant of ours for
/// `email` there is still waiting for its id.
pub async fn is_ours(
    conn: &mut MySqlConnection,
    folder: &str,
    permission_id: &str,
    email: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM drive_grants WHERE folder_id = ? AND removed_at IS NULL AND created_by_us = 1
                         AND (permission_id = ? OR (permission_id IS NULL AND email = ?)))",
    )
    .bind(folder)
    .bind(permission_id)
    .bind(email)
    .fetch_one(conn)
    .await?)
}

/// Records that the item holds `email`'s access to `folder` (a permission we made, or one the
/// address had already); `permission_id` `None` before Drive is asked. A grant removed
/// earlier (the access moved away and back) lives again.
pub async fn record(
    conn: &mut MySqlConnection,
    item_id: u64,
    folder: &str,
    email: &str,
    permission_id: Option<&str>,
    created_by_us: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO drive_grants (item_id, folder_id, email, permission_id, created_by_us) VALUES (?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE granted_at = IF(removed_at IS NULL, granted_at, NOW(3)),
           permission_id = COALESCE(VALUES(permission_id), permission_id),
           created_by_us = VALUES(created_by_us), removed_at = NULL",
    )
    .bind(item_id)
    .bind(folder)
    .bind(email)
    .bind(permission_id)
    .bind(created_by_us)
    .execute(conn)
    .await?;
    Ok(())
}

/// The item's live grants, oldest first.
pub async fn live_for_item(pool: &MySqlPool, item_id: u64) -> Result<Vec<Grant>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, item_id, folder_id, email, permission_id, created_by_us FROM drive_grants
         WHERE item_id = ? AND removed_at IS NULL ORDER BY id",
    )
    .bind(item_id)
    .fetch_all(pool)
    .await?)
}

/// Whether another item's live grant holds this permission (or this address's access to the
/// folder), so taking it away would take that item's access too.
pub async fn held_by_another(
    conn: &mut MySqlConnection,
    item_id: u64,
    folder: &str,
    permission_id: &str,
    email: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM drive_grants WHERE folder_id = ? AND item_id <> ? AND removed_at IS NULL
                         AND (permission_id = ? OR email = ?))",
    )
    .bind(folder)
    .bind(item_id)
    .bind(permission_id)
    .bind(email)
    .fetch_one(conn)
    .await?)
}

/// Marks a grant as let go (its permission removed, or left to another holder).
pub async fn mark_removed(conn: &mut MySqlConnection, grant_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE drive_grants SET removed_at = NOW(3) WHERE id = ? AND removed_at IS NULL")
        .bind(grant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Items of the order with live grants: what a refund still has to take back.
pub async fn items_with_live_grants(conn: &mut MySqlConnection, order_id: u64) -> Result<Vec<u64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT g.item_id FROM drive_grants g JOIN order_items i ON i.id = g.item_id
         WHERE i.order_id = ? AND g.removed_at IS NULL ORDER BY g.item_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}
