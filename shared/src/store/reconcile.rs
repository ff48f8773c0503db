//! Where each bank feed's reconciliation has got to.

use sqlx::MySqlPool;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CursorRow {
    pub gateway: String,
    pub cursor_value: String,
    pub last_pass_at: chrono::DateTime<chrono::Utc>,
    pub last_listed: u32,
    pub last_recorded: u32,
}

pub async fn cursor(pool: &MySqlPool, gateway: &str) -> Result<Option<CursorRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT feed AS gateway, cursor_value, last_pass_at, last_listed, last_recorded FROM reconcile_cursors WHERE feed = ?",
    )
    .bind(gateway)
    .fetch_optional(pool)
    .await?)
}

pub async fn all(pool: &MySqlPool) -> Result<Vec<CursorRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT feed AS gateway, cursor_value, last_pass_at, last_listed, last_recorded FROM reconcile_cursors ORDER BY feed",
    )
    .fetch_all(pool)
    .await?)
}

/// Stores a pass's cursor and counts. The cursor never moves back: a pass that started
/// earlier (an operator's `--since`, or two passes at once) keeps the later one. Both feeds'
/// cursors compare as (length, text): ids without leading zeros, and fixed-width dates.
pub async fn advance(
    pool: &MySqlPool,
    gateway: &str,
    cursor_value: Option<&str>,
    listed: u32,
    recorded: u32,
) -> Result<(), StoreError> {
    let Some(cursor_value) = cursor_value else {
        // Nothing to resume from yet: only the pass is noted, on a feed that has a cursor.
        sqlx::query(
            "UPDATE reconcile_cursors SET last_pass_at = CURRENT_TIMESTAMP(3), last_listed = ?, last_recorded = ?
             WHERE feed = ?",
        )
        .bind(listed)
        .bind(recorded)
        .bind(gateway)
        .execute(pool)
        .await?;
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO reconcile_cursors (feed, cursor_value, last_pass_at, last_listed, last_recorded)
         VALUES (?, ?, CURRENT_TIMESTAMP(3), ?, ?)
         ON DUPLICATE KEY UPDATE
           cursor_value = IF((CHAR_LENGTH(VALUES(cursor_value)), VALUES(cursor_value)) > (CHAR_LENGTH(cursor_value), cursor_value),
                             VALUES(cursor_value), cursor_value),
           last_pass_at = VALUES(last_pass_at), last_listed = VALUES(last_listed), last_recorded = VALUES(last_recorded)",
    )
    .bind(gateway)
    .bind(cursor_value)
    .bind(listed)
    .bind(recorded)
    .execute(pool)
    .await?;
    Ok(())
}
