//! The transactional outbox: a message for a queue is written in the same transaction as the
//! state change that calls for it, and published after commit.
//!
//! Nothing is written when a publish succeeds, so the request that made the change commits
//! once. What closes the loop is the consumer: the stage a row's message triggers marks the
//! row consumed in its own transaction, when the item leaves the status the message serves
//! (`ItemStatus::served_by`). The sweeper publishes again only rows nobody consumed in time,
//! and at once a row whose publish the relay saw fail. A lost message therefore costs a delay,
//! never the state change: at least once, with every consumer idempotent.

use sqlx::{FromRow, MySqlConnection};

use super::StoreError;
use crate::domain::{Queue, Status};

pub use crate::domain::state::ItemMessage;

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
    Ok(enqueue_all(conn, queue, &[item_id]).await?.remove(0))
}

/// One row per item for `queue`, in one statement (the one [`push_enqueue_all`] writes, alone).
pub async fn enqueue_all(
    conn: &mut MySqlConnection,
    queue: Queue,
    item_ids: &[u64],
) -> Result<Vec<OutboxMessage>, StoreError> {
    if item_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut script = super::script::Script::new();
    push_enqueue_all(&mut script, queue, item_ids);
    let answers = script.run(conn).await?;
    enqueued(&answers[0], queue, item_ids)
}

/// Appends the insert of one row per item for `queue`, as one statement, to a script.
/// [`enqueued`] reads the rows' ids from its answer.
pub(crate) fn push_enqueue_all(script: &mut super::script::Script, queue: Queue, item_ids: &[u64]) {
    use super::script::Value;
    script.sql("INSERT INTO outbox (queue, payload, item_id) VALUES ");
    for (i, &item_id) in item_ids.iter().enumerate() {
        if i > 0 {
            script.sql(", ");
        }
        script.tuple([Value::Text(queue.as_str()), Value::Text(&ItemMessage::body(item_id)), Value::UInt(item_id)]);
    }
    script.end();
}

/// The messages [`push_enqueue_all`]'s statement wrote, from its answer. Ids are the insert's
/// first id onwards: a multi-row `INSERT … VALUES` is a "simple insert", whose auto-increment
/// values InnoDB allocates consecutively in every `innodb_autoinc_lock_mode`.
pub(crate) fn enqueued(
    answer: &super::script::Answer,
    queue: Queue,
    item_ids: &[u64],
) -> Result<Vec<OutboxMessage>, StoreError> {
    if answer.rows_affected != item_ids.len() as u64 {
        return Err(StoreError::PartialChange {
            what: "writing outbox rows",
            expected: item_ids.len() as u64,
            changed: answer.rows_affected,
        });
    }
    Ok(item_ids
        .iter()
        .enumerate()
        .map(|(i, &item_id)| OutboxMessage {
            id: answer.last_insert_id + i as u64,
            queue,
            body: ItemMessage::body(item_id),
        })
        .collect())
}

/// ` IN (?, ?, …)` with every id bound; `ids` is never empty here.
fn push_in_list(query: &mut sqlx::QueryBuilder<sqlx::MySql>, ids: &[u64]) {
    query.push(" IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(")");
}

/// Records, in the consuming stage's transaction, that these items' `queue` rows did their
/// work, in one statement.
pub async fn mark_consumed(conn: &mut MySqlConnection, queue: Queue, item_ids: &[u64]) -> Result<(), StoreError> {
    if item_ids.is_empty() {
        return Ok(());
    }
    let mut update =
        sqlx::QueryBuilder::new("UPDATE outbox SET consumed_at = NOW(3) WHERE consumed_at IS NULL AND queue = ");
    update.push_bind(queue.as_str()).push(" AND item_id");
    push_in_list(&mut update, item_ids);
    update.build().execute(conn).await?;
    Ok(())
}

/// Rows the sweeper should publish, oldest first: unconsumed, older than `grace_secs` (left to
/// the relay that wrote them), and either failed by the relay and not published since, or
/// not published (by anyone) for `republish_after_secs`.
pub async fn due(
    conn: &mut MySqlConnection,
    grace_secs: u32,
    republish_after_secs: u32,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows = sqlx::query_as::<_, OutboxRow>(
        "SELECT id, queue, payload FROM outbox
         WHERE consumed_at IS NULL AND created_at <= NOW(3) - INTERVAL ? SECOND
           AND ((publish_attempts > 0 AND published_at IS NULL)
                OR COALESCE(published_at, created_at) <= NOW(3) - INTERVAL ? SECOND)
         ORDER BY created_at, id LIMIT ?",
    )
    .bind(grace_secs)
    .bind(republish_after_secs)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(|r| Ok(OutboxMessage { id: r.id, queue: Queue::parse(&r.queue)?, body: r.payload })).collect()
}

/// The sweeper published these rows now.
pub async fn mark_published(conn: &mut MySqlConnection, ids: &[u64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut update = sqlx::QueryBuilder::new("UPDATE outbox SET published_at = NOW(3) WHERE id");
    push_in_list(&mut update, ids);
    update.build().execute(conn).await?;
    Ok(())
}

/// A publish failed: counted, with the error, so the sweeper takes the row at once.
pub async fn record_publish_failure(conn: &mut MySqlConnection, id: u64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET publish_attempts = publish_attempts + 1, last_error = ?, published_at = NULL WHERE id = ?",
    )
    .bind(error)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a message for the item went to `queue` within the last `secs` seconds.
pub async fn sent_recently_in(
    conn: &mut MySqlConnection,
    queue: Queue,
    item_id: u64,
    secs: u64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM outbox WHERE queue = ? AND item_id = ? AND created_at > NOW(3) - INTERVAL ? SECOND)",
    )
    .bind(queue.as_str())
    .bind(item_id)
    .bind(secs)
    .fetch_one(conn)
    .await?)
}
