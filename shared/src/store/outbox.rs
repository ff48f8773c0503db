//! The transactional outbox: a message for a queue is written in the same transaction as the
//! state change that calls for it, and published after commit. A publish that fails leaves
//! the row for the sweeper, so no state change is ever left without its message.

use serde::Serialize;
use sqlx::{FromRow, MySqlConnection};

use super::StoreError;
use crate::domain::{Queue, Status};

/// The body every stage queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ItemMessage {
    pub item_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: u64,
    pub queue: Queue,
    pub body: String,
}

#[derive(FromRow)]
struct OutboxRow {
    id: u64,
    queue: String,
    payload: String,
}

pub async fn enqueue(conn: &mut MySqlConnection, queue: Queue, item_id: u64) -> Result<OutboxMessage, StoreError> {
    let body = serde_json::to_string(&ItemMessage { item_id }).expect("a struct of one integer serializes");
    let done = sqlx::query("INSERT INTO outbox (queue, payload) VALUES (?, ?)")
        .bind(queue.as_str())
        .bind(&body)
        .execute(conn)
        .await?;
    Ok(OutboxMessage { id: done.last_insert_id(), queue, body })
}

/// Unpublished rows created at least `min_age_secs` ago, oldest first.
pub async fn unpublished(
    conn: &mut MySqlConnection,
    min_age_secs: u32,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows = sqlx::query_as::<_, OutboxRow>(
        "SELECT id, queue, payload FROM outbox
         WHERE published_at IS NULL AND created_at <= NOW(3) - INTERVAL ? SECOND
         ORDER BY created_at, id LIMIT ?",
    )
    .bind(min_age_secs)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(|r| Ok(OutboxMessage { id: r.id, queue: Queue::parse(&r.queue)?, body: r.payload })).collect()
}

pub async fn mark_published(conn: &mut MySqlConnection, ids: &[u64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    // Only placeholders are spliced in; the ids are bound.
    let placeholders = vec!["?"; ids.len()].join(", ");
    let sql = format!("UPDATE outbox SET published_at = NOW(3) WHERE published_at IS NULL AND id IN ({placeholders})");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    query.execute(conn).await?;
    Ok(())
}

pub async fn record_publish_failure(conn: &mut MySqlConnection, id: u64, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET publish_attempts = publish_attempts + 1, last_error = ? WHERE id = ?")
        .bind(error)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
