//! The append-only audit trail: who or what changed which order or item, when, and why.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection};

use super::StoreError;
use crate::domain::{EventKind, Status};

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub order_id: u64,
    pub item_id: Option<u64>,
    pub kind: EventKind,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub actor: &'a str,
    pub detail: Option<&'a str>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub id: u64,
    pub order_id: u64,
    pub item_id: Option<u64>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub actor: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn record(conn: &mut MySqlConnection, e: &NewEvent<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_events (order_id, item_id, kind, from_status, to_status, actor, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.order_id)
    .bind(e.item_id)
    .bind(e.kind.as_str())
    .bind(e.from_status)
    .bind(e.to_status)
    .bind(e.actor)
    .bind(e.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Several events in one insert (the statement [`push_insert`] writes, alone).
pub async fn record_all(conn: &mut MySqlConnection, events: &[NewEvent<'_>]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut script = super::script::Script::new();
    push_insert(&mut script, events);
    script.run(conn).await?;
    Ok(())
}

/// Appends the insert of these events, as one statement, to a script.
pub(crate) fn push_insert(script: &mut super::script::Script, events: &[NewEvent<'_>]) {
    use super::script::Value;
    if events.is_empty() {
        return;
    }
    script.sql("INSERT INTO order_events (order_id, item_id, kind, from_status, to_status, actor, detail) VALUES ");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            script.sql(", ");
        }
        script.tuple([
            Value::UInt(e.order_id),
            e.item_id.into(),
            Value::Text(e.kind.as_str()),
            e.from_status.into(),
            e.to_status.into(),
            Value::Text(e.actor),
            e.detail.into(),
        ]);
    }
    script.end();
}

/// An order's timeline, oldest first.
pub async fn for_order(conn: &mut MySqlConnection, order_id: u64) -> Result<Vec<Event>, StoreError> {
    Ok(sqlx::query_as::<_, Event>(
        "SELECT id, order_id, item_id, kind, from_status, to_status, actor, detail, created_at
         FROM order_events WHERE order_id = ? ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// Seconds since the order's latest `kind` event by `actor`, if there was one within
/// `within_secs`.
pub async fn seconds_since_last(
    pool: &sqlx::MySqlPool,
    order_id: u64,
    kind: EventKind,
    actor: &str,
    within_secs: u32,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(TIMESTAMPDIFF(SECOND, MAX(created_at), NOW(3)) AS SIGNED) FROM order_events
         WHERE order_id = ? AND kind = ? AND actor = ? AND created_at > NOW(3) - INTERVAL ? SECOND",
    )
    .bind(order_id)
    .bind(kind.as_str())
    .bind(actor)
    .bind(within_secs)
    .fetch_one(pool)
    .await?)
}
