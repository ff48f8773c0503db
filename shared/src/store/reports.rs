//! What operators read: order and item summaries, stuck items, the facts a resend needs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow, MySqlPool};

use super::StoreError;
use crate::domain::{ItemStatus, OrderCode, OrderStatus, Status};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OrderSummary {
    pub id: u64,
    pub code: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub total_vnd: i64,
    pub paid_vnd: i64,
    pub items: i64,
    pub attention: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ORDER_SUMMARY: &str = "SELECT o.id, o.code, o.email, o.status, o.total_vnd, o.paid_vnd,
        (SELECT COUNT(*) FROM order_items i WHERE i.order_id = o.id) AS items, o.attention, o.created_at
     FROM orders o";

/// Orders, newest first, optionally in one status.
pub async fn orders(
    pool: &MySqlPool,
    status: Option<OrderStatus>,
    limit: u32,
) -> Result<Vec<OrderSummary>, StoreError> {
    let sql = AssertSqlSafe(format!("{ORDER_SUMMARY} WHERE (? IS NULL OR o.status = ?) ORDER BY o.id DESC LIMIT ?"));
    let status = status.map(|s| s.as_str());
    Ok(sqlx::query_as(sql).bind(status).bind(status).bind(limit).fetch_all(pool).await?)
}

pub async fn order(pool: &MySqlPool, code: &OrderCode) -> Result<Option<OrderSummary>, StoreError> {
    let sql = AssertSqlSafe(format!("{ORDER_SUMMARY} WHERE o.code = ?"));
    Ok(sqlx::query_as(sql).bind(code.as_str()).fetch_optional(pool).await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ItemSummary {
    pub id: u64,
    pub order_code: String,
    pub course: String,
    #[sqlx(try_from = "String")]
    pub status: ItemStatus,
    pub failed_stage: Option<String>,
    pub last_error: Option<String>,
    pub attempts: u32,
    pub files_done: u32,
    pub files_total: Option<u32>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub drive_link: Option<String>,
    pub updated_at: DateTime<Utc>,
}

const ITEM_SUMMARY: &str = "SELECT i.id, o.code AS order_code, c.slug AS course, i.status, i.failed_stage,
        i.last_error, i.attempts, i.files_done, i.files_total, i.bytes_done, i.bytes_total, i.drive_link, i.updated_at
     FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id";

/// Items, most recently changed first, optionally in one status.
pub async fn items(pool: &MySqlPool, status: Option<ItemStatus>, limit: u32) -> Result<Vec<ItemSummary>, StoreError> {
    let sql = AssertSqlSafe(format!(
        "{ITEM_SUMMARY} WHERE (? IS NULL OR i.status = ?) ORDER BY i.updated_at DESC, i.id DESC LIMIT ?"
    ));
    let status = status.map(|s| s.as_str());
    Ok(sqlx::query_as(sql).bind(status).bind(status).bind(limit).fetch_all(pool).await?)
}

pub async fn items_of(pool: &MySqlPool, order_id: u64) -> Result<Vec<ItemSummary>, StoreError> {
    let sql = AssertSqlSafe(format!("{ITEM_SUMMARY} WHERE i.order_id = ? ORDER BY i.id"));
    Ok(sqlx::query_as(sql).bind(order_id).fetch_all(pool).await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StuckItem {
    pub id: u64,
    pub order_code: String,
    pub course: String,
    #[sqlx(try_from = "String")]
    pub status: ItemStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub since: DateTime<Utc>,
    pub minutes: i64,
}

/// Items in one of `limits`' statuses for longer than its limit, longest first.
pub async fn stuck(pool: &MySqlPool, limits: &[(ItemStatus, Duration)]) -> Result<Vec<StuckItem>, StoreError> {
    let condition =
        limits.iter().map(|_| "(i.status = ? AND i.updated_at < NOW(3) - INTERVAL ? SECOND)").collect::<Vec<_>>();
    let sql = AssertSqlSafe(format!(
        "SELECT i.id, o.code AS order_code, c.slug AS course, i.status, i.attempts, i.last_error,
                i.updated_at AS since, TIMESTAMPDIFF(MINUTE, i.updated_at, NOW(3)) AS minutes
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id
         WHERE {} ORDER BY i.updated_at LIMIT 1000",
        condition.join(" OR ")
    ));
    let mut query = sqlx::query_as::<_, StuckItem>(sql);
    for (status, limit) in limits {
        query = query.bind(status.as_str()).bind(limit.as_secs());
    }
    Ok(query.fetch_all(pool).await?)
}

/// What resending an item's delivery email needs.
#[derive(Debug, Clone, FromRow)]
pub struct ResendFacts {
    pub order_id: u64,
    #[sqlx(try_from = "String")]
    pub status: ItemStatus,
    pub email: String,
    pub lang: String,
    pub code: String,
    pub title: String,
    pub drive_link: Option<String>,
}

pub async fn resend_facts(pool: &MySqlPool, item_id: u64) -> Result<Option<ResendFacts>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.id AS order_id, i.status, COALESCE(i.access_email, o.email) AS email, o.lang, o.code, c.title,
                i.drive_link
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id WHERE i.id = ?",
    )
    .bind(item_id)
    .fetch_optional(pool)
    .await?)
}
