//! Payment reminders: which unpaid orders are due one, and the record that it was sent.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;
use crate::domain::{OrderStatus, Status};

/// Pending orders due their reminder, soonest to expire first: none sent yet, not expired,
/// and within `lead_secs` of expiry, but never before half the order's time has passed (an
/// order that lives 30 minutes is reminded after 15, not at once).
pub async fn due(pool: &MySqlPool, lead_secs: u32, limit: u32) -> Result<Vec<u64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM orders
         WHERE status = ? AND reminder_sent_at IS NULL AND expires_at > NOW(3)
           AND expires_at <= NOW(3) + INTERVAL ? SECOND
           AND NOW(3) >= created_at + INTERVAL (TIMESTAMPDIFF(MICROSECOND, created_at, expires_at) / 2) MICROSECOND
         ORDER BY expires_at LIMIT ?",
    )
    .bind(OrderStatus::Pending.as_str())
    .bind(lead_secs)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Keeps `fresh` as the order's reminder Message-ID unless it has one; answers the kept one.
pub async fn keep_message_id(pool: &MySqlPool, order_id: u64, fresh: &str) -> Result<String, StoreError> {
    super::keep_first(pool, "orders", "reminder_message_id", order_id, fresh).await
}

#[derive(Debug, Clone, FromRow)]
pub struct ReminderFacts {
    pub code: String,
    pub email: String,
    pub lang: String,
    #[sqlx(try_from = "String")]
    pub status: crate::domain::OrderStatus,
    pub total_vnd: i64,
    pub expires_at: DateTime<Utc>,
    pub view_token: Option<String>,
    pub sent: bool,
    /// Whether it is still before expiry, by the database's clock.
    pub open: bool,
}

/// The order, locked in the caller's transaction.
pub async fn lock_in(conn: &mut MySqlConnection, order_id: u64) -> Result<Option<ReminderFacts>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT code, email, lang, status, total_vnd, expires_at, view_token, reminder_sent_at IS NOT NULL AS sent,
                expires_at > NOW(3) AS open
         FROM orders WHERE id = ? FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn mark_sent_in(conn: &mut MySqlConnection, order_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET reminder_sent_at = NOW(3) WHERE id = ? AND reminder_sent_at IS NULL")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}
