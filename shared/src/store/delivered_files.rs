//! What a delivery has put in Drive, one row per file or folder of a course: its Drive id
//! (generated and stored before the object is made), the upload session and the MD5 once
//! complete. What a restarted job needs to resume exactly where the last one stopped.

use sqlx::{FromRow, MySqlPool};

use super::StoreError;

/// One file (or folder: a path ending in `/`) of an item's delivery.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeliveredFile {
    pub id: u64,
    pub size_bytes: u64,
    pub md5: Option<String>,
    pub drive_file_id: Option<String>,
    pub upload_session_uri: Option<String>,
    pub completed: bool,
}

/// The row for `path` of the item, made on first need.
pub async fn row(pool: &MySqlPool, item_id: u64, path: &str, size: u64) -> Result<DeliveredFile, StoreError> {
    sqlx::query(
        "INSERT IGNORE INTO delivered_files (item_id, path, path_sha256, size_bytes) VALUES (?, ?, UNHEX(SHA2(?, 256)), ?)",
    )
    .bind(item_id)
    .bind(path)
    .bind(path)
    .bind(size)
    .execute(pool)
    .await?;
    Ok(sqlx::query_as(
        "SELECT id, size_bytes, md5, drive_file_id, upload_session_uri, completed_at IS NOT NULL AS completed
         FROM delivered_files WHERE item_id = ? AND path_sha256 = UNHEX(SHA2(?, 256))",
    )
    .bind(item_id)
    .bind(path)
    .fetch_one(pool)
    .await?)
}

/// Stores `fresh` as the row's Drive id unless it has one; answers the id it has.
pub async fn keep_drive_id(pool: &MySqlPool, row_id: u64, fresh: &str) -> Result<String, StoreError> {
    super::keep_first(pool, "delivered_files", "drive_file_id", row_id, fresh).await
}

/// A folder of the tree exists in Drive.
pub async fn folder_made(pool: &MySqlPool, row_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE delivered_files SET completed_at = COALESCE(completed_at, NOW(3)) WHERE id = ?")
        .bind(row_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Bytes and files (not folders) of the item already complete.
pub async fn done(pool: &MySqlPool, item_id: u64) -> Result<(u64, u32), StoreError> {
    let (bytes, files): (Option<u64>, i64) = sqlx::query_as(
        "SELECT CAST(SUM(size_bytes) AS UNSIGNED), COUNT(*) FROM delivered_files
         WHERE item_id = ? AND completed_at IS NOT NULL AND RIGHT(path, 1) <> '/'",
    )
    .bind(item_id)
    .fetch_one(pool)
    .await?;
    Ok((bytes.unwrap_or(0), files as u32))
}

/// A new upload session for the row's file.
pub async fn start_session(pool: &MySqlPool, row_id: u64, uri: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE delivered_files SET upload_session_uri = ?, bytes_confirmed = 0 WHERE id = ?")
        .bind(uri)
        .bind(row_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The session is gone at Drive: the next try starts a new one.
pub async fn forget_session(pool: &MySqlPool, row_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE delivered_files SET upload_session_uri = NULL WHERE id = ?").bind(row_id).execute(pool).await?;
    Ok(())
}

/// Forgets the row's Drive object and session, so the next round makes the file afresh;
/// `false` (and nothing changed) when the row is completed: another worker finished the file.
pub async fn redo(pool: &MySqlPool, row_id: u64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE delivered_files SET drive_file_id = NULL, upload_session_uri = NULL, bytes_confirmed = 0
         WHERE id = ? AND completed_at IS NULL",
    )
    .bind(row_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the row's file is recorded whole (by whichever worker).
pub async fn is_completed(pool: &MySqlPool, row_id: u64) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT completed_at IS NOT NULL FROM delivered_files WHERE id = ?")
        .bind(row_id)
        .fetch_one(pool)
        .await?)
}

/// The file is in Drive, whole, with this MD5.
/// `md5` is `None` for a Google-native file (Docs…), of which Drive keeps none.
pub async fn complete(pool: &MySqlPool, row_id: u64, md5: Option<&str>, size: u64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE delivered_files SET md5 = ?, bytes_confirmed = ?, upload_session_uri = NULL, completed_at = NOW(3)
         WHERE id = ?",
    )
    .bind(md5)
    .bind(size)
    .bind(row_id)
    .execute(pool)
    .await?;
    Ok(())
}
