//! Payments as a bank feed reported them, and the order a payment is applied to, locked.

use sqlx::{MySqlConnection, MySqlPool};

use super::{StoreError, is_duplicate_key};
use crate::domain::{ItemStatus, OrderCode, OrderStatus, Status};

/// A transfer to keep, exactly as reported.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    /// The feed (`feed` column): sepay, casso.
    pub gateway: &'a str,
    pub gateway_txn_id: &'a str,
    /// `None` for a transfer that matched no order (kept for an operator to attach).
    pub order_id: Option<u64>,
    pub transfer_type: &'a str,
    pub amount_vnd: i64,
    /// The bank's name (the `gateway` column: SePay's word for it).
    pub bank: Option<&'a str>,
    pub account_number: Option<&'a str>,
    pub code: Option<&'a str>,
    pub content: Option<&'a str>,
    pub reference_code: Option<&'a str>,
    pub transaction_date: Option<&'a str>,
    pub raw_payload: &'a str,
    pub arrived_by: &'a str,
}

/// Whether this feed's transaction is recorded: one read answers a repeated delivery. The
/// unique key stays the guard when two deliveries race.
pub async fn is_recorded(pool: &MySqlPool, gateway: &str, gateway_txn_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM payments WHERE feed = ? AND feed_txn_id = ?)")
        .bind(gateway)
        .bind(gateway_txn_id)
        .fetch_one(pool)
        .await?)
}

/// Of these transaction ids of one feed, those already recorded: one read for a page of a
/// reconciliation listing, so only transfers we lack take a transaction.
pub async fn recorded_among(
    pool: &MySqlPool,
    gateway: &str,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut found = std::collections::HashSet::new();
    // Bounded IN-lists: a listing can hold thousands of ids.
    for chunk in ids.chunks(1000) {
        let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new("SELECT feed_txn_id FROM payments WHERE feed = ");
        query.push_bind(gateway).push(" AND feed_txn_id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        found.extend(query.build_query_scalar::<String>().fetch_all(pool).await?);
    }
    Ok(found)
}

/// Inserts the payment; `false` when this feed's transaction is already recorded.
pub async fn insert(conn: &mut MySqlConnection, p: &NewPayment<'_>) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO payments (feed, feed_txn_id, sepay_id, order_id, transfer_type, amount_vnd, gateway, account_number,
                               code, content, reference_code, transaction_date, raw_payload, arrived_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(p.gateway)
    .bind(p.gateway_txn_id)
    // SePay's id in its own column too: the previous release deduplicates on it.
    .bind((p.gateway == "sepay").then(|| p.gateway_txn_id.parse::<i64>().ok()).flatten())
    .bind(p.order_id)
    .bind(p.transfer_type)
    .bind(p.amount_vnd)
    .bind(p.bank)
    .bind(p.account_number)
    .bind(p.code)
    .bind(p.content)
    .bind(p.reference_code)
    .bind(p.transaction_date)
    .bind(p.raw_payload)
    .bind(p.arrived_by)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_key(&e, "uq_payments_feed_txn") || is_duplicate_key(&e, "uq_payments_sepay_id") => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// An order locked for a payment, with its items and their statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedOrder {
    pub id: u64,
    pub code: String,
    pub status: OrderStatus,
    pub total_vnd: i64,
    pub paid_vnd: i64,
    pub items: Vec<(u64, ItemStatus)>,
}

impl LockedOrder {
    pub fn items_in(&self, status: ItemStatus) -> Vec<u64> {
        self.items.iter().filter(|(_, s)| *s == status).map(|(id, _)| *id).collect()
    }
}

type LockedRow = (u64, String, String, i64, i64, Option<u64>, Option<String>);

fn locked(rows: Vec<LockedRow>) -> Result<Option<LockedOrder>, StoreError> {
    let Some((id, code, status, total_vnd, paid_vnd, _, _)) = rows.first().cloned() else { return Ok(None) };
    let mut items = Vec::with_capacity(rows.len());
    for (_, _, _, _, _, item, item_status) in rows {
        if let (Some(item), Some(s)) = (item, item_status) {
            items.push((item, ItemStatus::parse(&s)?));
        }
    }
    Ok(Some(LockedOrder { id, code, status: OrderStatus::parse(&status)?, total_vnd, paid_vnd, items }))
}

/// The order with this code and its items, locked (`FOR UPDATE`) in one statement: payments
/// to one order are applied one at a time.
pub async fn lock_order(conn: &mut MySqlConnection, code: &OrderCode) -> Result<Option<LockedOrder>, StoreError> {
    let rows: Vec<LockedRow> = sqlx::query_as(
        "SELECT o.id, o.code, o.status, o.total_vnd, o.paid_vnd, i.id, i.status
         FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.code = ? ORDER BY i.id FOR UPDATE",
    )
    .bind(code.as_str())
    .fetch_all(conn)
    .await?;
    locked(rows)
}

/// A payment kept for an operator: the facts `attach` needs, locked.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldPayment {
    pub gateway: String,
    pub gateway_txn_id: String,
    pub transfer_type: String,
    pub attached_to: Option<String>,
    pub amount_vnd: i64,
}

pub async fn lock_payment(conn: &mut MySqlConnection, payment_id: u64) -> Result<Option<HeldPayment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.feed AS gateway, COALESCE(p.feed_txn_id, CAST(p.sepay_id AS CHAR)) AS gateway_txn_id, p.transfer_type,
                o.code AS attached_to, p.amount_vnd
         FROM payments p LEFT JOIN orders o ON o.id = p.order_id WHERE p.id = ? FOR UPDATE",
    )
    .bind(payment_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn attach_to(conn: &mut MySqlConnection, payment_id: u64, order_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE payments SET order_id = ? WHERE id = ?").bind(order_id).bind(payment_id).execute(conn).await?;
    Ok(())
}

/// A transfer kept with no order, for an operator to look at.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct UnmatchedPayment {
    pub id: u64,
    pub gateway: String,
    pub gateway_txn_id: String,
    pub amount_vnd: i64,
    pub bank: Option<String>,
    pub account_number: Option<String>,
    pub content: Option<String>,
    pub reference_code: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Incoming transfers that matched no order, newest first.
pub async fn unmatched(pool: &MySqlPool, incoming: &str, limit: u32) -> Result<Vec<UnmatchedPayment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, feed AS gateway, COALESCE(feed_txn_id, CAST(sepay_id AS CHAR)) AS gateway_txn_id, amount_vnd,
                gateway AS bank, account_number, content, reference_code, received_at
         FROM payments WHERE order_id IS NULL AND transfer_type = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(incoming)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
