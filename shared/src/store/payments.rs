//! Payments as a bank feed reported them, and the order a payment is applied to, locked.

use sqlx::pool::PoolConnection;
use sqlx::{FromRow, MySql, MySqlConnection, MySqlPool};

use super::events::{self, NewEvent};
use super::outbox::{self, OutboxMessage};
use super::script::{Answer, Script, Value};
use super::{StoreError, is_duplicate_key};
use crate::domain::{ItemStatus, OrderCode, OrderStatus, Queue, Status};

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
pub async fn is_recorded(conn: &mut MySqlConnection, gateway: &str, gateway_txn_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM payments WHERE feed = ? AND feed_txn_id = ?)")
        .bind(gateway)
        .bind(gateway_txn_id)
        .fetch_one(conn)
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

/// Whether `e` says this feed's transaction is already recorded (the race the unique keys decide).
fn is_recorded_already(e: &sqlx::Error) -> bool {
    is_duplicate_key(e, "uq_payments_feed_txn") || is_duplicate_key(e, "uq_payments_sepay_id")
}

/// SePay's id in its own column too: the previous release deduplicates on it.
fn sepay_id(p: &NewPayment<'_>) -> Option<i64> {
    (p.gateway == "sepay").then(|| p.gateway_txn_id.parse::<i64>().ok()).flatten()
}

/// Inserts the payment (the statement [`push_insert`] writes, alone); `false` when this feed's
/// transaction is already recorded.
pub async fn insert(conn: &mut MySqlConnection, p: &NewPayment<'_>) -> Result<bool, StoreError> {
    let mut script = Script::new();
    push_insert(&mut script, p);
    match script.run(conn).await {
        Ok(_) => Ok(true),
        Err(e) if is_recorded_already(&e) => Ok(false),
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

/// A transaction begun by a script, which sqlx's `Transaction` cannot track: it ends with
/// [`PaymentTransaction::commit`] or [`PaymentTransaction::rollback`]. Dropped before either
/// (a cancelled request, a rollback that failed), its connection is closed instead of going
/// back to the pool, so the server rolls the transaction back and no later user of the
/// connection inherits its locks.
pub struct PaymentTransaction<'c> {
    conn: &'c mut PoolConnection<MySql>,
    open: bool,
}

impl Drop for PaymentTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl PaymentTransaction<'_> {
    /// Runs `script` and commits, in one round trip; `Ok(None)` when the script's payment row
    /// lost the race to another delivery of the same transaction (nothing is kept). A failed
    /// statement keeps nothing of the transaction.
    pub async fn commit(mut self, mut script: Script) -> Result<Option<Vec<Answer>>, StoreError> {
        script.sql("COMMIT").end();
        match script.run(self.conn).await {
            Ok(mut answers) => {
                self.open = false;
                answers.pop();
                Ok(Some(answers))
            }
            Err(e) => {
                self.rollback().await?;
                if is_recorded_already(&e) { Ok(None) } else { Err(e.into()) }
            }
        }
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("ROLLBACK").execute(&mut **self.conn).await?;
        self.open = false;
        Ok(())
    }
}

/// Begins a transaction and locks the order with this code and its items (as
/// [`lock_order`]), in one round trip.
pub async fn begin_locking<'c>(
    conn: &'c mut PoolConnection<MySql>,
    code: &OrderCode,
) -> Result<(PaymentTransaction<'c>, Option<LockedOrder>), StoreError> {
    let mut script = Script::new();
    script.sql("START TRANSACTION").end();
    script
        .sql(
            "SELECT o.id, o.code, o.status, o.total_vnd, o.paid_vnd, i.id, i.status
             FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.code = ",
        )
        .value(code.as_str())
        .sql(" ORDER BY i.id FOR UPDATE")
        .end();
    let tx = PaymentTransaction { conn, open: true };
    let answers = match script.run(tx.conn).await {
        Ok(answers) => answers,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    let rows = answers[1].rows.iter().map(LockedRow::from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((tx, locked(rows)?))
}

/// What a payment does to its locked order, as `payments::decide` decided it.
#[derive(Debug, Clone)]
pub struct OrderPayment<'a> {
    pub order_id: u64,
    /// The order's status under the lock: the update's compare-and-set.
    pub status: OrderStatus,
    pub paid_vnd: i64,
    /// Why the order needs an operator (an over-payment, money on a closed order).
    pub attention: Option<&'a str>,
    /// `Some`: the order becomes paid and these items, awaiting payment, go to enrollment.
    /// `None`: the order keeps its status and records the new sum.
    pub enrolling: Option<&'a [u64]>,
    pub events: &'a [NewEvent<'a>],
}

/// Where a payment script's answers are, to read them back.
#[derive(Debug, Clone)]
pub struct PaymentScript {
    update_at: usize,
    /// The items' update and how many items it must move.
    items_at: Option<(usize, u64)>,
    /// The outbox insert, its queue and the items it carries.
    outbox_at: Option<(usize, Queue, Vec<u64>)>,
}

/// Appends an inserted payment row (kept with no order when `order_id` is `None`).
pub fn push_insert(script: &mut Script, p: &NewPayment<'_>) {
    script
        .sql(
            "INSERT INTO payments (feed, feed_txn_id, sepay_id, order_id, transfer_type, amount_vnd, gateway,
                                   account_number, code, content, reference_code, transaction_date, raw_payload,
                                   arrived_by) VALUES ",
        )
        .tuple([
            Value::Text(p.gateway),
            Value::Text(p.gateway_txn_id),
            sepay_id(p).into(),
            p.order_id.into(),
            Value::Text(p.transfer_type),
            Value::Int(p.amount_vnd),
            p.bank.into(),
            p.account_number.into(),
            p.code.into(),
            p.content.into(),
            p.reference_code.into(),
            p.transaction_date.into(),
            Value::Text(p.raw_payload),
            Value::Text(p.arrived_by),
        ])
        .end();
}

/// Appends a payment's writes to `script`, set-based: the order's update (paid, or its new
/// sum), its items into enrollment in one update, their outbox rows in one insert, and every
/// event in one insert.
pub fn push_payment(script: &mut Script, p: &OrderPayment<'_>) -> PaymentScript {
    // Two single-table updates rather than one multi-table UPDATE: in the webhook bench, perf
    // put MariaDB's multi-table UPDATE at 18.6 % of its CPU, and the pair did better.
    let update_at = script.statements();
    script
        .sql("UPDATE orders SET paid_vnd = ")
        .value(p.paid_vnd)
        .sql(", attention = COALESCE(")
        .value(p.attention)
        .sql(", attention), updated_at = NOW(3)");
    if p.enrolling.is_some() {
        script.sql(", status = ").value(OrderStatus::Paid.as_str()).sql(", paid_at = NOW(3)");
    }
    script.sql(" WHERE id = ").value(p.order_id).sql(" AND status = ").value(p.status.as_str()).end();
    let items_at = p.enrolling.map(|items| {
        let at = script.statements();
        script
            .sql("UPDATE order_items SET status = ")
            .value(ItemStatus::Enrolling.as_str())
            .sql(", enrolling_at = NOW(3), updated_at = NOW(3) WHERE order_id = ")
            .value(p.order_id)
            .sql(" AND status = ")
            .value(ItemStatus::AwaitingPayment.as_str())
            .end();
        (at, items.len() as u64)
    });
    let queue = ItemStatus::Enrolling.starts_queue().expect("enrolling starts the enroll queue");
    let outbox_at = match p.enrolling {
        Some(items) if !items.is_empty() => {
            let at = script.statements();
            outbox::push_enqueue_all(script, queue, items);
            Some((at, queue, items.to_vec()))
        }
        _ => None,
    };
    events::push_insert(script, p.events);
    PaymentScript { update_at, items_at, outbox_at }
}

impl PaymentScript {
    /// Checks what the script's statements changed against what the locks promised, and
    /// returns the outbox rows written.
    pub fn read(&self, answers: &[Answer]) -> Result<Vec<OutboxMessage>, StoreError> {
        let changed = answers[self.update_at].rows_affected;
        if changed != 1 {
            return Err(StoreError::PartialChange { what: "applying a payment to its order", expected: 1, changed });
        }
        if let Some((at, expected)) = self.items_at {
            let changed = answers[at].rows_affected;
            if changed != expected {
                return Err(StoreError::PartialChange { what: "moving a paid order's items", expected, changed });
            }
        }
        match &self.outbox_at {
            Some((at, queue, items)) => outbox::enqueued(&answers[*at], *queue, items),
            None => Ok(Vec::new()),
        }
    }
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
