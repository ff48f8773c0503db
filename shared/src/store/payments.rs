//! Payments as a bank feed reported them, and the order a payment is applied to, locked.

use sqlx::pool::PoolConnection;
use sqlx::{FromRow, MySql, MySqlConnection, MySqlPool};

use super::events::{self, NewEvent};
use super::outbox::{self, OutboxMessage};
use super::script::{Answer, Script, Value};
use super::{StoreError, is_duplicate_key};
use crate::domain::{ItemStatus, OrderCode, OrderStatus, PaymentHold, Queue, Status};

/// A stored `payments.hold`.
fn hold_of(stored: Option<&str>) -> Result<Option<PaymentHold>, StoreError> {
    Ok(stored.map(PaymentHold::parse).transpose()?)
}

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
    /// The transfer's identity at the bank (`payments::identity`): the account without spaces
    /// and the bank's reference. With the direction and the amount, the unique key
    /// `uq_payments_bank_transfer`; `None` where the feed gave no reference.
    pub bank_account: Option<&'a str>,
    pub bank_reference: Option<&'a str>,
    /// `Some(id)`: kept but not counted, held for an operator as a suspected duplicate of
    /// payment `id`.
    pub held_duplicate_of: Option<u64>,
    pub transaction_date: Option<&'a str>,
    pub raw_payload: &'a str,
    pub arrived_by: &'a str,
}

/// Whether this feed's transaction is recorded, as a payment or as another feed's transfer
/// seen again: one read answers a repeated delivery. The unique keys stay the guard when two
/// deliveries race.
pub async fn is_recorded(conn: &mut MySqlConnection, gateway: &str, gateway_txn_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM payments WHERE feed = ? AND feed_txn_id = ?)
             OR EXISTS(SELECT 1 FROM payment_sightings WHERE feed = ? AND feed_txn_id = ?)",
    )
    .bind(gateway)
    .bind(gateway_txn_id)
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
        for table in [
            "SELECT feed_txn_id FROM payments WHERE feed = ",
            "SELECT feed_txn_id FROM payment_sightings WHERE feed = ",
        ] {
            let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new(table);
            query.push_bind(gateway).push(" AND feed_txn_id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(")");
            found.extend(query.build_query_scalar::<String>().fetch_all(pool).await?);
        }
    }
    Ok(found)
}

/// Whether `e` says this feed's transaction is already recorded (the race the unique keys decide).
fn is_recorded_already(e: &sqlx::Error) -> bool {
    is_duplicate_key(e, "uq_payments_feed_txn") || is_duplicate_key(e, "uq_payments_sepay_id")
}

/// Whether `e` says another row holds this transfer's bank identity: another feed reported it.
fn is_same_transfer(e: &sqlx::Error) -> bool {
    is_duplicate_key(e, "uq_payments_bank_transfer")
}

/// What inserting a payment row came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Fresh,
    /// This feed's transaction is recorded already.
    AlreadyRecorded,
    /// Another row holds its bank identity: the same transfer, reported by another feed.
    SameTransfer,
}

fn inserted(result: Result<(), sqlx::Error>) -> Result<Inserted, StoreError> {
    match result {
        Ok(()) => Ok(Inserted::Fresh),
        Err(e) if is_recorded_already(&e) => Ok(Inserted::AlreadyRecorded),
        Err(e) if is_same_transfer(&e) => Ok(Inserted::SameTransfer),
        Err(e) => Err(e.into()),
    }
}

/// SePay's id in its own column too: the previous release deduplicates on it.
fn sepay_id(p: &NewPayment<'_>) -> Option<i64> {
    (p.gateway == "sepay").then(|| p.gateway_txn_id.parse::<i64>().ok()).flatten()
}

/// Inserts the payment (the statement [`push_insert`] writes, alone).
pub async fn insert(conn: &mut MySqlConnection, p: &NewPayment<'_>) -> Result<Inserted, StoreError> {
    let mut script = Script::new();
    push_insert(&mut script, p);
    inserted(script.run(conn).await.map(drop))
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

/// [`lock_order`] by the order's id.
pub async fn lock_order_id(conn: &mut MySqlConnection, order_id: u64) -> Result<Option<LockedOrder>, StoreError> {
    let rows: Vec<LockedRow> = sqlx::query_as(
        "SELECT o.id, o.code, o.status, o.total_vnd, o.paid_vnd, i.id, i.status
         FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id = ? ORDER BY i.id FOR UPDATE",
    )
    .bind(order_id)
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
    /// Runs `script` and commits, in one round trip. When the script's payment row lost the
    /// race to another delivery of the same transaction, or to another feed's report of the
    /// same transfer, nothing is kept and the answer says which. A failed statement keeps
    /// nothing of the transaction.
    pub async fn commit(mut self, mut script: Script) -> Result<Committed, StoreError> {
        script.sql("COMMIT").end();
        match script.run(self.conn).await {
            Ok(mut answers) => {
                self.open = false;
                answers.pop();
                Ok(Committed::Done(answers))
            }
            Err(e) => {
                self.rollback().await?;
                match inserted(Err(e))? {
                    Inserted::SameTransfer => Ok(Committed::Lost(Inserted::SameTransfer)),
                    _ => Ok(Committed::Lost(Inserted::AlreadyRecorded)),
                }
            }
        }
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("ROLLBACK").execute(&mut **self.conn).await?;
        self.open = false;
        Ok(())
    }
}

/// What a payment transaction's commit came to.
#[derive(Debug)]
pub enum Committed {
    /// Each statement's answer, the COMMIT's left off.
    Done(Vec<Answer>),
    /// Rolled back: the payment row is another's (`AlreadyRecorded` or `SameTransfer`).
    Lost(Inserted),
}

/// Begins a transaction and locks the order with this code and its items (as
/// [`lock_order`]), then reads the recorded transfers like `like` (see [`suspects`]) as they
/// stand once the order is locked: one round trip.
pub async fn begin_locking<'c>(
    conn: &'c mut PoolConnection<MySql>,
    code: &OrderCode,
    like: Option<&Lookalike<'_>>,
) -> Result<(PaymentTransaction<'c>, Option<LockedOrder>, Vec<SuspectRow>), StoreError> {
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
    if let Some(like) = like {
        let _ = push_suspects(&mut script, like);
    }
    let tx = PaymentTransaction { conn, open: true };
    let answers = match script.run(tx.conn).await {
        Ok(answers) => answers,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    let rows = answers[1].rows.iter().map(LockedRow::from_row).collect::<Result<Vec<_>, _>>()?;
    let suspects = match answers.get(2) {
        Some(a) => a.rows.iter().map(SuspectRow::from_row).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok((tx, locked(rows)?, suspects))
}

/// What a transfer is compared with, found by index lookups only (never a scan of the
/// day's many transfers of one price): the payment holding its bank identity, if it has a
/// reference; and the payments of its order (a lookalike from another feed matched the same
/// order), or for a transfer that matches no order, the recent unmatched ones into the same
/// account.
#[derive(Debug, Clone, Copy)]
pub struct Lookalike<'a> {
    pub bank_account: Option<&'a str>,
    pub bank_reference: Option<&'a str>,
    pub amount_vnd: i64,
    pub transfer_type: &'a str,
    /// The order the transfer's code names, when it names one.
    pub order_code: Option<&'a str>,
    pub lookback_days: u32,
}

/// A recorded transfer like the one arriving, for `payments::identity::judge`.
#[derive(Debug, Clone, FromRow)]
pub struct SuspectRow {
    pub id: u64,
    pub feed: String,
    pub bank_reference: Option<String>,
    pub code: Option<String>,
    pub content: Option<String>,
    pub transaction_date: Option<String>,
    pub received_at: chrono::NaiveDateTime,
    hold: Option<String>,
}

impl SuspectRow {
    pub fn hold(&self) -> Result<Option<PaymentHold>, StoreError> {
        hold_of(self.hold.as_deref())
    }
}

const SUSPECT_COLUMNS: &str =
    "SELECT id, feed, bank_reference, code, content, transaction_date, received_at, hold FROM payments WHERE ";

/// Appends the read of `like`'s suspects; `false` (nothing appended) when there is nothing to
/// look them up by.
fn push_suspects(script: &mut Script, like: &Lookalike<'_>) -> bool {
    let mut parts = 0;
    let mut part = |script: &mut Script| {
        script.sql(if parts == 0 { "(" } else { " UNION (" }).sql(SUSPECT_COLUMNS);
        parts += 1;
    };
    if let (Some(account), Some(reference)) = (like.bank_account, like.bank_reference) {
        part(script);
        script
            .sql("bank_account = ")
            .value(account)
            .sql(" AND bank_reference = ")
            .value(reference)
            .sql(" AND transfer_type = ")
            .value(like.transfer_type)
            .sql(" AND amount_vnd = ")
            .value(like.amount_vnd)
            .sql(")");
    }
    match (like.order_code, like.bank_account) {
        (Some(code), _) => {
            part(script);
            script
                .sql("order_id = (SELECT id FROM orders WHERE code = ")
                .value(code)
                .sql(") AND amount_vnd = ")
                .value(like.amount_vnd)
                .sql(" AND transfer_type = ")
                .value(like.transfer_type)
                .sql(")");
        }
        (None, Some(account)) => {
            part(script);
            script
                .sql("bank_account = ")
                .value(account)
                .sql(" AND amount_vnd = ")
                .value(like.amount_vnd)
                .sql(" AND order_id IS NULL AND transfer_type = ")
                .value(like.transfer_type)
                .sql(" AND received_at > NOW(3) - INTERVAL ")
                .value(u64::from(like.lookback_days))
                .sql(" DAY ORDER BY id DESC LIMIT 200)");
        }
        (None, None) => {}
    }
    if parts > 0 {
        script.end();
    }
    parts > 0
}

/// Recorded transfers like `like`, read on their own (for a transfer that locks no order).
pub async fn suspects(conn: &mut MySqlConnection, like: &Lookalike<'_>) -> Result<Vec<SuspectRow>, StoreError> {
    let mut script = Script::new();
    if !push_suspects(&mut script, like) {
        return Ok(Vec::new());
    }
    let answers = script.run(conn).await?;
    Ok(answers[0].rows.iter().map(SuspectRow::from_row).collect::<Result<Vec<_>, _>>()?)
}

/// The payment holding this bank identity.
pub async fn by_identity(
    conn: &mut MySqlConnection,
    bank_account: &str,
    bank_reference: &str,
    transfer_type: &str,
    amount_vnd: i64,
) -> Result<Option<u64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM payments WHERE bank_account = ? AND bank_reference = ? AND transfer_type = ? AND amount_vnd = ?",
    )
    .bind(bank_account)
    .bind(bank_reference)
    .bind(transfer_type)
    .bind(amount_vnd)
    .fetch_optional(conn)
    .await?)
}

/// Another feed's report of a transfer recorded as payment `payment_id`: kept as evidence
/// (its id, how it came, what it said), with an event on the payment's order. `None` when
/// this report was kept before (a redelivery racing itself).
#[derive(Debug, Clone)]
pub struct NewSighting<'a> {
    pub payment_id: u64,
    pub feed: &'a str,
    pub feed_txn_id: &'a str,
    pub arrived_by: &'a str,
    pub raw_payload: &'a str,
    pub actor: &'a str,
}

/// The payment a sighting names: its feed and id, and its order.
#[derive(Debug, Clone, FromRow)]
pub struct SightedPayment {
    pub feed: String,
    pub feed_txn_id: Option<String>,
    pub order_id: Option<u64>,
}

/// Keeps a sighting; `false` when it was kept before.
pub async fn record_sighting(conn: &mut MySqlConnection, s: &NewSighting<'_>) -> Result<bool, StoreError> {
    use sqlx::Connection as _;
    let mut db = conn.begin().await?;
    let payment: Option<SightedPayment> =
        sqlx::query_as("SELECT feed, feed_txn_id, order_id FROM payments WHERE id = ? FOR UPDATE")
            .bind(s.payment_id)
            .fetch_optional(&mut *db)
            .await?;
    let payment = payment.ok_or(StoreError::NotFound { kind: "payment", id: s.payment_id.to_string() })?;
    if payment.feed == s.feed && payment.feed_txn_id.as_deref() == Some(s.feed_txn_id) {
        // The payment's own report, redelivered while it was being recorded: not a sighting.
        db.rollback().await?;
        return Ok(false);
    }
    let fresh = sqlx::query(
        "INSERT IGNORE INTO payment_sightings (payment_id, feed, feed_txn_id, arrived_by, raw_payload)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(s.payment_id)
    .bind(s.feed)
    .bind(s.feed_txn_id)
    .bind(s.arrived_by)
    .bind(s.raw_payload)
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1;
    if let (true, Some(order_id)) = (fresh, payment.order_id) {
        let detail = format!(
            "{} id {} ({}) reported the same bank transfer as {} id {}: kept as evidence, not counted again",
            s.feed,
            s.feed_txn_id,
            s.arrived_by,
            payment.feed,
            payment.feed_txn_id.as_deref().unwrap_or("?")
        );
        let event = NewEvent {
            order_id,
            item_id: None,
            kind: crate::domain::EventKind::PaymentSeenAgain,
            from_status: None,
            to_status: None,
            actor: s.actor,
            detail: Some(&detail),
        };
        events::record(&mut db, &event).await?;
    }
    db.commit().await?;
    Ok(fresh)
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
                                   account_number, bank_account, code, content, reference_code, bank_reference,
                                   hold, held_duplicate_of, transaction_date, raw_payload, arrived_by) VALUES ",
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
            p.bank_account.into(),
            p.code.into(),
            p.content.into(),
            p.reference_code.into(),
            p.bank_reference.into(),
            p.held_duplicate_of.map(|_| PaymentHold::Held.as_str()).into(),
            p.held_duplicate_of.into(),
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
    /// held, released or dropped (a suspected duplicate, and what an operator said of it).
    hold: Option<String>,
    /// The order of the payment it was held as a duplicate of.
    pub duplicate_order_id: Option<u64>,
    pub duplicate_of: Option<u64>,
    /// Who marked it handled (it matched no order and was dealt with outside coursedrop).
    pub handled_by: Option<String>,
}

impl HeldPayment {
    pub fn hold(&self) -> Result<Option<PaymentHold>, StoreError> {
        hold_of(self.hold.as_deref())
    }
}

/// Whether payment `payment_id` is counted towards no order (unmatched), by a plain read.
pub async fn is_unattached(conn: &mut MySqlConnection, payment_id: u64) -> Result<bool, StoreError> {
    let order: Option<Option<u64>> =
        sqlx::query_scalar("SELECT order_id FROM payments WHERE id = ?").bind(payment_id).fetch_optional(conn).await?;
    Ok(matches!(order, Some(None)))
}

pub async fn lock_payment(conn: &mut MySqlConnection, payment_id: u64) -> Result<Option<HeldPayment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.feed AS gateway, COALESCE(p.feed_txn_id, CAST(p.sepay_id AS CHAR)) AS gateway_txn_id, p.transfer_type,
                o.code AS attached_to, p.amount_vnd, p.hold, d.order_id AS duplicate_order_id,
                p.held_duplicate_of AS duplicate_of, p.handled_by
         FROM payments p LEFT JOIN orders o ON o.id = p.order_id
         LEFT JOIN payments d ON d.id = p.held_duplicate_of
         WHERE p.id = ? FOR UPDATE",
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
         FROM payments WHERE order_id IS NULL AND transfer_type = ? AND (hold IS NULL OR hold = 'released')
           AND handled_at IS NULL
         ORDER BY id DESC LIMIT ?",
    )
    .bind(incoming)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Records an operator's word on a held payment (`released` or `dropped`).
pub async fn decide_hold(
    conn: &mut MySqlConnection,
    payment_id: u64,
    decision: PaymentHold,
    actor: &str,
) -> Result<(), StoreError> {
    if !PaymentHold::Held.can_become(decision) {
        return Err(StoreError::Corrupt(format!("a held payment cannot become {decision}")));
    }
    let changed = sqlx::query(
        "UPDATE payments SET hold = ?, hold_decided_by = ?, hold_decided_at = NOW(3) WHERE id = ? AND hold = ?",
    )
    .bind(decision.as_str())
    .bind(actor)
    .bind(payment_id)
    .bind(PaymentHold::Held.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    if changed != 1 {
        return Err(StoreError::PartialChange { what: "deciding a held payment", expected: 1, changed });
    }
    Ok(())
}

/// A payment held as a suspected duplicate, with the payment it resembles.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PaymentOnHold {
    pub id: u64,
    pub feed: String,
    pub feed_txn_id: String,
    pub amount_vnd: i64,
    pub content: Option<String>,
    pub transaction_date: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub duplicate_of: u64,
    pub duplicate_feed: String,
    pub duplicate_feed_txn_id: String,
    pub duplicate_transaction_date: Option<String>,
    /// The order the resembled payment paid, if any.
    pub order_code: Option<String>,
}

/// Payments held as suspected duplicates, oldest first.
pub async fn on_hold(pool: &MySqlPool, limit: u32) -> Result<Vec<PaymentOnHold>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.feed, COALESCE(p.feed_txn_id, '') AS feed_txn_id, p.amount_vnd, p.content, p.transaction_date,
                p.received_at, d.id AS duplicate_of, d.feed AS duplicate_feed,
                COALESCE(d.feed_txn_id, '') AS duplicate_feed_txn_id, d.transaction_date AS duplicate_transaction_date,
                o.code AS order_code
         FROM payments p JOIN payments d ON d.id = p.held_duplicate_of LEFT JOIN orders o ON o.id = d.order_id
         WHERE p.hold = 'held' ORDER BY p.id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
