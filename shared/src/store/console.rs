//! What the seller's console reads: the dashboard's figures, the orders list (searched,
//! filtered and paged by key so it stays fast at 100,000 orders), an order's payments, the
//! problems, and the revenue rows the tax report sums.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, MySqlPool, QueryBuilder};

use super::StoreError;
use super::outbox::OutboxMessage;
use crate::domain::{EventKind, ItemStatus, OrderStatus, Status};

// ------------------------------------------------------------------ dashboard

/// Paid orders and their value since `since`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow, Serialize)]
pub struct Takings {
    pub orders: i64,
    pub revenue_vnd: i64,
}

/// Orders paid since each of `since` (the revenue is the order's price: what a refund gives
/// back is netted in the revenue report, not here).
pub async fn takings_since(pool: &MySqlPool, since: &[DateTime<Utc>]) -> Result<Vec<Takings>, StoreError> {
    let mut out = Vec::with_capacity(since.len());
    for t in since {
        let row: Takings = sqlx::query_as(
            "SELECT COUNT(*) AS orders, CAST(COALESCE(SUM(total_vnd), 0) AS SIGNED) AS revenue_vnd
             FROM orders WHERE paid_at >= ?",
        )
        .bind(t)
        .fetch_one(pool)
        .await?;
        out.push(row);
    }
    Ok(out)
}

pub async fn pending(pool: &MySqlPool) -> Result<Takings, StoreError> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS orders, CAST(COALESCE(SUM(total_vnd), 0) AS SIGNED) AS revenue_vnd
         FROM orders WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await?)
}

/// Orders placed since `since`, and how many of them were paid.
pub async fn conversion_since(pool: &MySqlPool, since: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(paid_at IS NOT NULL), 0) AS SIGNED) FROM orders WHERE created_at >= ?",
    )
    .bind(since)
    .fetch_one(pool)
    .await?)
}

/// For each item emailed since `since`: the Vietnam day it was paid and the seconds from the
/// payment to the email (at most `limit`, newest first).
pub async fn delivery_times(
    pool: &MySqlPool,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.paid_at, TIMESTAMPDIFF(SECOND, o.paid_at, i.email_sent_at)
         FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE i.email_sent_at >= ? AND o.paid_at IS NOT NULL
         ORDER BY i.email_sent_at DESC LIMIT ?",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The paid time and price of each order paid since `since`, for the revenue plot.
pub async fn paid_since(pool: &MySqlPool, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    Ok(sqlx::query_as("SELECT paid_at, total_vnd FROM orders WHERE paid_at >= ? ORDER BY paid_at")
        .bind(since)
        .fetch_all(pool)
        .await?)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProblemCounts {
    pub failed_items: i64,
    pub unmatched_transfers: i64,
    pub held_transfers: i64,
    pub orders_needing_attention: i64,
}

pub async fn problem_counts(pool: &MySqlPool) -> Result<ProblemCounts, StoreError> {
    let (failed_items, unmatched_transfers, held_transfers, orders_needing_attention): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT
                (SELECT COUNT(*) FROM order_items WHERE status = 'failed'),
                (SELECT COUNT(*) FROM payments WHERE order_id IS NULL AND transfer_type = 'in'
                    AND (hold IS NULL OR hold = 'released') AND handled_at IS NULL),
                (SELECT COUNT(*) FROM payments WHERE hold = 'held'),
                (SELECT COUNT(*) FROM orders WHERE attention IS NOT NULL)",
        )
        .fetch_one(pool)
        .await?;
    Ok(ProblemCounts { failed_items, unmatched_transfers, held_transfers, orders_needing_attention })
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct FeedPass {
    pub feed: String,
    pub last_pass_at: DateTime<Utc>,
    pub last_listed: u32,
    pub last_recorded: u32,
}

pub async fn reconcile_passes(pool: &MySqlPool) -> Result<Vec<FeedPass>, StoreError> {
    Ok(sqlx::query_as("SELECT feed, last_pass_at, last_listed, last_recorded FROM reconcile_cursors ORDER BY feed")
        .fetch_all(pool)
        .await?)
}

// ------------------------------------------------------------------ the orders list

/// What the orders list is narrowed to. Every part is optional; `text` is matched against
/// the order code, the email and phone (from their start), the amount and the bank reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub text: Option<String>,
    pub status: Option<OrderStatus>,
    pub course: Option<String>,
    pub coupon: Option<String>,
    pub placed_from: Option<DateTime<Utc>>,
    pub placed_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OrderRow {
    pub id: u64,
    pub code: String,
    pub email: String,
    pub phone: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub total_vnd: i64,
    pub paid_vnd: i64,
    pub discount_vnd: i64,
    pub coupon: Option<String>,
    pub courses: Option<String>,
    pub attention: Option<String>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// The ways a phone number typed as `text` may be stored: without spaces, dots, dashes or
/// brackets, and in both the national (`0912…`) and international (`+84912…`) forms. Empty
/// for text that is not a phone number.
fn phone_forms(text: &str) -> Vec<String> {
    let bare: String = text.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')')).collect();
    let digits = bare.strip_prefix('+').unwrap_or(&bare);
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let mut forms = vec![bare.clone()];
    if let Some(rest) = bare.strip_prefix("+84") {
        forms.push(format!("0{rest}"));
    } else if let Some(rest) = bare.strip_prefix('0') {
        forms.push(format!("+84{rest}"));
    }
    forms.retain(|f| f != text);
    forms
}

/// `FROM …` and the `WHERE` of the orders `f` matches. A text search first collects the ids
/// it names, each alternative by its own index, into a derived table the database builds
/// once; the other filters then apply to those orders only.
fn push_from_where(q: &mut QueryBuilder<sqlx::MySql>, f: &OrderFilter) {
    if let Some(text) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let like = format!("{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        q.push(" FROM (SELECT id FROM orders WHERE code = ")
            .push_bind(text.to_ascii_uppercase())
            .push(" UNION SELECT id FROM orders WHERE email LIKE ")
            .push_bind(like.clone())
            .push(" UNION SELECT id FROM orders WHERE phone LIKE ")
            .push_bind(like);
        // Phones are stored as digits with an optional `+` (the order form's normalising): a
        // number typed with spaces or dots, or in the other of 0… and +84…, is found too.
        for phone in phone_forms(text) {
            q.push(" UNION SELECT id FROM orders WHERE phone LIKE ").push_bind(format!("{phone}%"));
        }
        let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
        let amount_like = text.chars().all(|c| c.is_ascii_digit() || ".,  ".contains(c));
        if amount_like
            && (1..=15).contains(&digits.len())
            && let Ok(amount) = digits.parse::<i64>()
        {
            q.push(" UNION SELECT id FROM orders WHERE total_vnd = ").push_bind(amount);
        }
        q.push(" UNION SELECT order_id FROM payments WHERE order_id IS NOT NULL AND bank_reference = ")
            .push_bind(text.to_string())
            .push(" UNION SELECT order_id FROM payments WHERE order_id IS NOT NULL AND reference_code = ")
            .push_bind(text.to_string())
            .push(") AS hit JOIN orders o ON o.id = hit.id");
    } else {
        q.push(" FROM orders o");
    }
    q.push(" WHERE 1 = 1");
    if let Some(status) = f.status {
        q.push(" AND o.status = ").push_bind(status.as_str());
    }
    if let Some(course) = &f.course {
        q.push(
            " AND EXISTS (SELECT 1 FROM order_items fi JOIN courses fc ON fc.id = fi.course_id
               WHERE fi.order_id = o.id AND fc.slug = ",
        )
        .push_bind(course.clone())
        .push(")");
    }
    if let Some(coupon) = &f.coupon {
        q.push(" AND o.coupon_id = (SELECT id FROM coupons WHERE code = ").push_bind(coupon.clone()).push(")");
    }
    if let Some(from) = f.placed_from {
        q.push(" AND o.created_at >= ").push_bind(from);
    }
    if let Some(before) = f.placed_before {
        q.push(" AND o.created_at < ").push_bind(before);
    }
}

const ORDER_COLUMNS: &str = "SELECT o.id, o.code, o.email, o.phone, o.status, o.total_vnd, o.paid_vnd, o.discount_vnd,
        (SELECT code FROM coupons WHERE id = o.coupon_id) AS coupon,
        (SELECT GROUP_CONCAT(c.slug ORDER BY i.id SEPARATOR ', ') FROM order_items i JOIN courses c ON c.id = i.course_id
          WHERE i.order_id = o.id) AS courses,
        o.attention, o.created_at, o.paid_at";

/// One page of the orders matching `f`, newest first: those with an id below `before` (the
/// last id of the previous page), at most `limit`.
pub async fn search_orders(
    pool: &MySqlPool,
    f: &OrderFilter,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<OrderRow>, StoreError> {
    let mut q = QueryBuilder::new(ORDER_COLUMNS);
    push_from_where(&mut q, f);
    if let Some(before) = before {
        q.push(" AND o.id < ").push_bind(before);
    }
    q.push(" ORDER BY o.id DESC LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

pub async fn count_orders(pool: &MySqlPool, f: &OrderFilter) -> Result<i64, StoreError> {
    let mut q = QueryBuilder::new("SELECT COUNT(*)");
    push_from_where(&mut q, f);
    let (n,): (i64,) = q.build_query_as().fetch_one(pool).await?;
    Ok(n)
}

// ------------------------------------------------------------------ one order

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OrderPayment {
    pub id: u64,
    pub feed: String,
    pub feed_txn_id: Option<String>,
    pub amount_vnd: i64,
    pub transfer_type: String,
    pub bank_reference: Option<String>,
    pub content: Option<String>,
    pub transaction_date: Option<String>,
    pub hold: Option<String>,
    pub raw_payload: String,
    pub received_at: DateTime<Utc>,
}

pub async fn payments_of(pool: &MySqlPool, order_id: u64) -> Result<Vec<OrderPayment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, feed, COALESCE(feed_txn_id, CAST(sepay_id AS CHAR)) AS feed_txn_id, amount_vnd, transfer_type,
                bank_reference, content, transaction_date, hold, raw_payload, received_at
         FROM payments WHERE order_id = ? ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?)
}

pub async fn order_row(pool: &MySqlPool, code: &str) -> Result<Option<OrderRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("{ORDER_COLUMNS} FROM orders o WHERE o.code = ?"));
    Ok(sqlx::query_as(sql).bind(code).fetch_optional(pool).await?)
}

/// Sends the message of the stage an item is in again (queued in the outbox, recorded in the
/// order's events), for an item stuck there: every stage is idempotent, so a message too many
/// does nothing. `None` when there is no such item; `Some(None)` when no stage serves its
/// status (nothing to send).
pub async fn resend_stage(
    pool: &MySqlPool,
    item_id: u64,
    actor: &str,
) -> Result<Option<Option<OutboxMessage>>, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(u64, String)> = sqlx::query_as("SELECT order_id, status FROM order_items WHERE id = ? FOR UPDATE")
        .bind(item_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((order_id, status)) = row else { return Ok(None) };
    let status = ItemStatus::parse(&status)?;
    let Some(queue) = status.served_by() else { return Ok(Some(None)) };
    let message = super::outbox::enqueue(&mut tx, queue, item_id).await?;
    let detail = format!("the {queue} message sent again by hand (the item is {status})");
    super::events::record(
        &mut tx,
        &super::events::NewEvent {
            order_id,
            item_id: Some(item_id),
            kind: EventKind::StageResent,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Some(message)))
}

/// Orders an operator must look at (an under- or over-payment, a payment after expiry…).
pub async fn needing_attention(pool: &MySqlPool, limit: u32) -> Result<Vec<OrderRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{ORDER_COLUMNS} FROM orders o WHERE o.attention IS NOT NULL ORDER BY o.id DESC LIMIT ?"
    ));
    Ok(sqlx::query_as(sql).bind(limit).fetch_all(pool).await?)
}

/// Marks a transfer that matched no order as handled (it leaves the problems list; the row
/// stays). `false` when it is not such a transfer, or was handled already.
pub async fn mark_handled(pool: &MySqlPool, payment_id: u64, actor: &str, note: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE payments SET handled_by = ?, handled_at = NOW(3), handled_note = ?
         WHERE id = ? AND order_id IS NULL AND handled_at IS NULL AND transfer_type = 'in'
           AND (hold IS NULL OR hold = 'released')",
    )
    .bind(actor)
    .bind(note)
    .bind(payment_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        super::staff::audit(&mut tx, actor, "payment.handled", Some(&payment_id.to_string()), Some(note)).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

// ------------------------------------------------------------------ revenue

/// One course of one order paid in the period asked, with what the order as a whole cost and
/// its discount, and when (if ever) it was refunded.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct SoldItem {
    pub order_id: u64,
    pub order_code: String,
    pub paid_at: DateTime<Utc>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub course: String,
    pub course_title: String,
    pub price_vnd: i64,
    pub order_total_vnd: i64,
    pub order_discount_vnd: i64,
    /// Whether the order's coupon applied to this course (a coupon may be limited to some).
    pub discounted: bool,
}

/// Every item of every order paid in `[from, to)` or refunded in it, by order.
pub async fn sold_items(pool: &MySqlPool, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<SoldItem>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.id AS order_id, o.code AS order_code, o.paid_at, r.refunded_at, c.slug AS course,
                c.title AS course_title, i.price_vnd, o.total_vnd AS order_total_vnd,
                o.discount_vnd AS order_discount_vnd,
                (o.coupon_id IS NOT NULL AND (
                    NOT EXISTS (SELECT 1 FROM coupon_courses cc WHERE cc.coupon_id = o.coupon_id)
                    OR EXISTS (SELECT 1 FROM coupon_courses cc WHERE cc.coupon_id = o.coupon_id AND cc.course_id = i.course_id)
                )) AS discounted
         FROM orders o
         JOIN order_items i ON i.order_id = o.id
         JOIN courses c ON c.id = i.course_id
         LEFT JOIN (SELECT order_id, MAX(created_at) AS refunded_at FROM order_events
                    WHERE to_status = 'refunded' AND item_id IS NULL GROUP BY order_id) r ON r.order_id = o.id
         WHERE o.paid_at IS NOT NULL
           AND ((o.paid_at >= ? AND o.paid_at < ?) OR (o.status = 'refunded' AND r.refunded_at >= ? AND r.refunded_at < ?))
         ORDER BY o.id, i.id",
    )
    .bind(from)
    .bind(to)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::phone_forms;

    #[test]
    fn a_phone_is_searched_in_every_form_it_may_be_stored_in() {
        assert_eq!(phone_forms("0912 345 678"), vec!["0912345678", "+84912345678"]);
        assert_eq!(phone_forms("+84 912.345.678"), vec!["+84912345678", "0912345678"]);
        assert_eq!(phone_forms("0912345678"), vec!["+84912345678"], "the typed form is searched already");
        assert!(phone_forms("buyer@example.com").is_empty());
        assert!(phone_forms("CD12345678").is_empty());
    }
}
