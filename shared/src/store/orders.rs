//! Orders: creation and compare-and-set status changes.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool};

use super::StoreError;
use super::events::{self, NewEvent};
use crate::domain::{Email, EventKind, ItemStatus, OrderCode, OrderStatus, Status, ViewToken, Vnd};

#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub code: &'a OrderCode,
    pub email: &'a Email,
    pub phone: Option<&'a str>,
    pub lang: &'a str,
    pub expires_at: DateTime<Utc>,
    /// (course id, price at order time), in the buyer's order.
    pub items: &'a [(u64, Vnd)],
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    /// The coupon whose use the caller reserved in this transaction, and what it takes off.
    pub coupon: Option<(u64, Vnd)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOrder {
    pub order_id: u64,
    pub item_ids: Vec<u64>,
    pub total: Vnd,
}

/// Inserts the order (pending) and its items (awaiting payment) in the caller's transaction.
/// The total is the sum of the item prices less the coupon's discount, computed here so it can
/// never disagree with them.
pub async fn create_in(conn: &mut MySqlConnection, o: &NewOrder<'_>, actor: &str) -> Result<CreatedOrder, StoreError> {
    let sum = Vnd::sum(o.items.iter().map(|(_, price)| *price))
        .map_err(|e| StoreError::Corrupt(format!("order total: {e}")))?;
    let (coupon_id, discount) = o.coupon.map_or((None, Vnd::ZERO), |(id, off)| (Some(id), off));
    let total = Vnd::new(sum.get() - discount.get()).map_err(|_| {
        StoreError::Corrupt(format!("a discount of {} VND is more than the order's {}", discount.get(), sum.get()))
    })?;
    let done = sqlx::query(
        "INSERT INTO orders (code, view_token, email, phone, lang, total_vnd, coupon_id, discount_vnd, status,
           expires_at, idempotency_key, request_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(o.code.as_str())
    .bind(ViewToken::generate().as_str())
    .bind(o.email.as_str())
    .bind(o.phone)
    .bind(o.lang)
    .bind(total.get())
    .bind(coupon_id)
    .bind(discount.get())
    .bind(OrderStatus::Pending.as_str())
    .bind(o.expires_at)
    .bind(o.idempotency_key)
    .bind(o.request_hash)
    .execute(&mut *conn)
    .await?;
    let order_id = done.last_insert_id();
    let mut item_ids = Vec::with_capacity(o.items.len());
    for (course_id, price) in o.items {
        let done = sqlx::query("INSERT INTO order_items (order_id, course_id, price_vnd, status) VALUES (?, ?, ?, ?)")
            .bind(order_id)
            .bind(course_id)
            .bind(price.get())
            .bind(ItemStatus::AwaitingPayment.as_str())
            .execute(&mut *conn)
            .await?;
        item_ids.push(done.last_insert_id());
    }
    events::record(
        conn,
        &NewEvent {
            order_id,
            item_id: None,
            kind: EventKind::OrderCreated,
            from_status: None,
            to_status: Some(OrderStatus::Pending.as_str()),
            actor,
            detail: None,
        },
    )
    .await?;
    Ok(CreatedOrder { order_id, item_ids, total })
}

pub async fn create(pool: &MySqlPool, o: &NewOrder<'_>, actor: &str) -> Result<CreatedOrder, StoreError> {
    let mut tx = pool.begin().await?;
    let created = create_in(&mut tx, o, actor).await?;
    tx.commit().await?;
    Ok(created)
}

/// Compare-and-set of an order's status, with its event, in the caller's transaction.
pub async fn transition_in(
    conn: &mut MySqlConnection,
    order_id: u64,
    from: OrderStatus,
    to: OrderStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    if !from.can_become(to) {
        return Err(StoreError::IllegalOrderTransition { from, to });
    }
    // The column name comes from a closed match over our own enum.
    let stamp = to.timestamp_column().map(|c| format!(", {c} = NOW(3)")).unwrap_or_default();
    let sql = format!("UPDATE orders SET status = ?, updated_at = NOW(3){stamp} WHERE id = ? AND status = ?");
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(to.as_str())
        .bind(order_id)
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(lost(conn, order_id, from).await?);
    }
    events::record(
        conn,
        &NewEvent {
            order_id,
            item_id: None,
            kind: EventKind::OrderStatus,
            from_status: Some(from.as_str()),
            to_status: Some(to.as_str()),
            actor,
            detail: reason,
        },
    )
    .await
}

/// A payment that does not change the locked order's status (an under-payment, or one the
/// order can no longer take), in one statement: the new sum, and with `attention` the flag
/// for an operator. The caller writes the events.
pub async fn record_payment_in(
    conn: &mut MySqlConnection,
    order_id: u64,
    status: OrderStatus,
    paid_vnd: i64,
    attention: Option<&str>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE orders SET paid_vnd = ?, attention = COALESCE(?, attention), updated_at = NOW(3)
         WHERE id = ? AND status = ?",
    )
    .bind(paid_vnd)
    .bind(attention)
    .bind(order_id)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(conn, order_id, status).await?);
    }
    Ok(())
}

pub async fn transition(
    pool: &MySqlPool,
    order_id: u64,
    from: OrderStatus,
    to: OrderStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    super::retry_deadlocks(|| async {
        let mut tx = pool.begin().await?;
        transition_in(&mut tx, order_id, from, to, actor, reason).await?;
        tx.commit().await?;
        Ok(())
    })
    .await
}

/// Why a compare-and-set from `expected` changed nothing: the order is gone, or it is in
/// another status now.
async fn lost(conn: &mut MySqlConnection, order_id: u64, expected: OrderStatus) -> Result<StoreError, StoreError> {
    Ok(match status(conn, order_id).await? {
        None => StoreError::NotFound { kind: "order", id: order_id.to_string() },
        Some(actual) => StoreError::OrderConflict { expected, actual },
    })
}

pub async fn status(conn: &mut MySqlConnection, order_id: u64) -> Result<Option<OrderStatus>, StoreError> {
    let s: Option<String> =
        sqlx::query_scalar("SELECT status FROM orders WHERE id = ?").bind(order_id).fetch_optional(conn).await?;
    Ok(s.map(|s| OrderStatus::parse(&s)).transpose()?)
}

/// Cancels a pending order and its items in one transaction: the sweeper's expiry and an
/// operator's cancel. A Conflict means the order is no longer pending (paid meanwhile).
///
/// An order that received some money (an under-payment) is flagged as it is cancelled: that
/// money needs an operator, to accept it late or to refund it.
pub async fn cancel_unpaid(pool: &MySqlPool, order_id: u64, actor: &str, reason: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    transition_in(&mut tx, order_id, OrderStatus::Pending, OrderStatus::Cancelled, actor, Some(reason)).await?;
    // The order no longer holds its coupon's use: another buyer may take it.
    super::coupons::release_for_order_in(&mut tx, order_id).await?;
    let (code, paid_vnd, total_vnd): (String, i64, i64) =
        sqlx::query_as("SELECT code, paid_vnd, total_vnd FROM orders WHERE id = ?")
            .bind(order_id)
            .fetch_one(&mut *tx)
            .await?;
    let money = (paid_vnd > 0).then(|| {
        format!(
            "cancelled with {paid_vnd} of {total_vnd} VND received: accept it (coursedrop-admin accept-late {code}) or refund it"
        )
    });
    if let Some(attention) = &money {
        record_payment_in(&mut tx, order_id, OrderStatus::Cancelled, paid_vnd, Some(attention)).await?;
    }
    let item_ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM order_items WHERE order_id = ? AND status = ?")
        .bind(order_id)
        .bind(ItemStatus::AwaitingPayment.as_str())
        .fetch_all(&mut *tx)
        .await?;
    let mut events = Vec::with_capacity(item_ids.len());
    let cancel = super::items::MoveAll {
        order_id,
        item_ids: &item_ids,
        from: ItemStatus::AwaitingPayment,
        to: ItemStatus::Cancelled,
        actor,
        reason: Some(reason),
    };
    super::items::move_all_in(&mut tx, &cancel, &mut events).await?;
    if let Some(attention) = &money {
        events.push(NewEvent {
            order_id,
            item_id: None,
            kind: EventKind::NeedsAttention,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(attention),
        });
    }
    events::record_all(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(())
}

/// Clears an order's flag for an operator, in the caller's transaction (the matter is dealt
/// with; the timeline keeps the story).
pub async fn clear_attention_in(conn: &mut MySqlConnection, order_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET attention = NULL WHERE id = ?").bind(order_id).execute(conn).await?;
    Ok(())
}

/// Locks the order's row in the caller's transaction.
pub async fn lock_in(conn: &mut MySqlConnection, order_id: u64) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM orders WHERE id = ? FOR UPDATE").bind(order_id).execute(conn).await?;
    Ok(())
}

/// Pending orders past their expiry, soonest first.
pub async fn expired(pool: &MySqlPool, limit: u32) -> Result<Vec<u64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM orders WHERE status = ? AND expires_at < NOW(3) ORDER BY expires_at LIMIT ?")
        .bind(OrderStatus::Pending.as_str())
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// An order's id, status and buyer email, by its code.
pub async fn by_code(pool: &MySqlPool, code: &OrderCode) -> Result<Option<(u64, OrderStatus, String)>, StoreError> {
    let row: Option<(u64, String, String)> = sqlx::query_as("SELECT id, status, email FROM orders WHERE code = ?")
        .bind(code.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(|(id, status, email)| Ok((id, OrderStatus::parse(&status)?, email))).transpose()
}

/// What the order API shows of an order, and what tells a retried create from a new one.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderHead {
    pub id: u64,
    pub code: String,
    #[sqlx(try_from = "String")]
    pub status: crate::domain::OrderStatus,
    pub total_vnd: i64,
    pub paid_vnd: i64,
    pub expires_at: DateTime<Utc>,
    pub request_hash: Option<String>,
    /// What opens the order's status view (`None` only for an order an older release placed).
    pub view_token: Option<String>,
    pub discount_vnd: i64,
    /// The coupon's code, when one was used.
    pub coupon: Option<String>,
}

const HEAD_COLUMNS: &str = "id, code, status, total_vnd, paid_vnd, expires_at, request_hash, view_token, discount_vnd,
    (SELECT c.code FROM coupons c WHERE c.id = orders.coupon_id) AS coupon";

pub async fn head_by_code(conn: &mut MySqlConnection, code: &str) -> Result<Option<OrderHead>, StoreError> {
    let sql = AssertSqlSafe(format!("SELECT {HEAD_COLUMNS} FROM orders WHERE code = ?"));
    Ok(sqlx::query_as(sql).bind(code).fetch_optional(conn).await?)
}

pub async fn head_by_key(conn: &mut MySqlConnection, key: &str) -> Result<Option<OrderHead>, StoreError> {
    let sql = AssertSqlSafe(format!("SELECT {HEAD_COLUMNS} FROM orders WHERE idempotency_key = ?"));
    Ok(sqlx::query_as(sql).bind(key).fetch_optional(conn).await?)
}

/// Unpaid orders of `email`, and of `client_ip` when given: what the per-client caps count.
pub async fn pending_for(
    conn: &mut MySqlConnection,
    email: &str,
    client_ip: Option<&str>,
) -> Result<(u32, u32), StoreError> {
    let (by_email, by_client): (i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT COUNT(*) FROM orders WHERE email = ? AND status = ?),
           (SELECT COUNT(*) FROM orders WHERE client_ip = ? AND status = ?)",
    )
    .bind(email)
    .bind(OrderStatus::Pending.as_str())
    .bind(client_ip)
    .bind(OrderStatus::Pending.as_str())
    .fetch_one(conn)
    .await?;
    Ok((by_email as u32, by_client as u32))
}

/// Records who placed the order, in the placing transaction.
pub async fn set_client_ip_in(conn: &mut MySqlConnection, order_id: u64, client_ip: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET client_ip = ? WHERE id = ?").bind(client_ip).bind(order_id).execute(conn).await?;
    Ok(())
}

/// Removes up to `limit` orders cancelled before `older_than_days` days ago that never
/// received money (no payment row, nothing paid): no entitlement and no money to account
/// for, only a stranger's email. With them go their items and timeline. Answers how many.
pub async fn purge_cancelled_unpaid(pool: &MySqlPool, older_than_days: u32, limit: u32) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT o.id FROM orders o
         WHERE o.status = ? AND o.paid_vnd = 0 AND o.expires_at < NOW(3) - INTERVAL ? DAY
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)
         ORDER BY o.id LIMIT ? FOR UPDATE",
    )
    .bind(OrderStatus::Cancelled.as_str())
    .bind(older_than_days)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // Placeholders only: the ids are bound, never written into the text.
    let marks = vec!["?"; ids.len()].join(", ");
    for sql in [
        format!("DELETE FROM order_events WHERE order_id IN ({marks})"),
        format!("DELETE FROM order_items WHERE order_id IN ({marks})"),
        format!("DELETE FROM orders WHERE id IN ({marks})"),
    ] {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}
