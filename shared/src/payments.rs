//! Recording a SePay transaction: one database transaction that keeps the payment whatever
//! it matches, adds it to its order, and when the order is paid moves its items into
//! enrollment with their outbox rows.

use sqlx::{MySqlConnection, MySqlPool};

use crate::adapters::sepay::{SepayTransaction, TransferType};
use crate::domain::{CodePattern, ItemStatus, OrderCode, OrderStatus, Status};
use crate::store::events::{self, NewEvent};
use crate::store::items::{self, ItemChange};
use crate::store::outbox::OutboxMessage;
use crate::store::{StoreError, is_duplicate_key, orders};

const ACTOR: &str = "sepay-webhook";

/// What we are paid into, to tell our transfers from others'.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub pattern: CodePattern,
    pub account_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// This SePay id was recorded before; nothing changed.
    Duplicate,
    /// An outgoing transfer: recorded, otherwise ignored.
    Outgoing,
    /// Kept with no order: no code found, no such order, or not our account.
    Unmatched { reason: &'static str },
    /// Added to the order; `paid` says whether the order became paid with this payment.
    Applied { order_code: String, paid_vnd: i64, total_vnd: i64, became_paid: bool },
    /// Kept and flagged: the order could not take it (cancelled, refunded, already paid).
    Flagged { order_code: String, reason: String },
}

#[derive(Debug)]
pub struct Recorded {
    pub outcome: PaymentOutcome,
    /// Outbox rows written in the transaction, to publish now that it has committed.
    pub outbox: Vec<OutboxMessage>,
}

struct OrderRow {
    id: u64,
    code: String,
    status: OrderStatus,
    total_vnd: i64,
    paid_vnd: i64,
}

fn normalise_account(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn is_our_account(tx: &SepayTransaction, ours: &str) -> bool {
    let ours = normalise_account(ours);
    [tx.account_number.as_deref(), tx.sub_account.as_deref()]
        .into_iter()
        .flatten()
        .any(|a| normalise_account(a) == ours)
}

/// The order code a transfer carries: SePay's own `code` first, then the transfer text.
pub fn order_code_of(tx: &SepayTransaction, pattern: &CodePattern) -> Option<OrderCode> {
    tx.code
        .as_deref()
        .and_then(|c| OrderCode::parse(c, pattern).ok())
        .or_else(|| tx.content.as_deref().and_then(|t| OrderCode::find_in(t, pattern)))
        .or_else(|| tx.description.as_deref().and_then(|t| OrderCode::find_in(t, pattern)))
}

async fn insert_payment(
    conn: &mut MySqlConnection,
    tx: &SepayTransaction,
    raw: &str,
    order_id: Option<u64>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO payments (sepay_id, order_id, transfer_type, amount_vnd, gateway, account_number, code, content,
                               reference_code, transaction_date, raw_payload)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tx.id)
    .bind(order_id)
    .bind(tx.transfer_type.as_str())
    .bind(tx.transfer_amount)
    .bind(&tx.gateway)
    .bind(&tx.account_number)
    .bind(&tx.code)
    .bind(&tx.content)
    .bind(&tx.reference_code)
    .bind(&tx.transaction_date)
    .bind(raw)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_key(&e, "uq_payments_sepay_id") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn lock_order(conn: &mut MySqlConnection, code: &OrderCode) -> Result<Option<OrderRow>, StoreError> {
    let row: Option<(u64, String, String, i64, i64)> =
        sqlx::query_as("SELECT id, code, status, total_vnd, paid_vnd FROM orders WHERE code = ? FOR UPDATE")
            .bind(code.as_str())
            .fetch_optional(conn)
            .await?;
    row.map(|(id, code, status, total_vnd, paid_vnd)| {
        Ok(OrderRow { id, code, status: OrderStatus::parse(&status)?, total_vnd, paid_vnd })
    })
    .transpose()
}

/// Adds a payment of `amount` to the locked `order`: the order becomes paid when the sum
/// reaches its total, and its items go to enrollment with their outbox rows. A payment the
/// order cannot take (cancelled, refunded, already paid) is kept and the order flagged.
async fn apply(
    db: &mut MySqlConnection,
    order: OrderRow,
    amount: i64,
    what: &str,
    actor: &str,
) -> Result<(PaymentOutcome, Vec<OutboxMessage>), StoreError> {
    let paid_vnd = order.paid_vnd + amount;
    sqlx::query("UPDATE orders SET paid_vnd = ? WHERE id = ?").bind(paid_vnd).bind(order.id).execute(&mut *db).await?;
    let detail = format!("{what}, {} of {} paid", paid_vnd, order.total_vnd);
    events::record(
        db,
        &NewEvent {
            order_id: order.id,
            item_id: None,
            kind: "payment_received",
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        },
    )
    .await?;

    let mut outbox = Vec::new();
    let outcome = match order.status {
        OrderStatus::Pending if paid_vnd >= order.total_vnd => {
            orders::transition_in(db, order.id, OrderStatus::Pending, OrderStatus::Paid, actor, Some(&detail)).await?;
            let item_ids: Vec<u64> =
                sqlx::query_scalar("SELECT id FROM order_items WHERE order_id = ? AND status = ? ORDER BY id")
                    .bind(order.id)
                    .bind(ItemStatus::AwaitingPayment.as_str())
                    .fetch_all(&mut *db)
                    .await?;
            for item_id in item_ids {
                let change = ItemChange::new(item_id, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, actor)
                    .because("order paid");
                outbox.extend(items::transition_in(db, &change).await?.outbox);
            }
            if paid_vnd > order.total_vnd {
                flag(db, order.id, &format!("over-paid by {} VND", paid_vnd - order.total_vnd), actor).await?;
            }
            PaymentOutcome::Applied { order_code: order.code, paid_vnd, total_vnd: order.total_vnd, became_paid: true }
        }
        OrderStatus::Pending => {
            PaymentOutcome::Applied { order_code: order.code, paid_vnd, total_vnd: order.total_vnd, became_paid: false }
        }
        status => {
            let reason = format!("payment of {} VND received while the order is {status}", amount);
            flag(db, order.id, &reason, actor).await?;
            PaymentOutcome::Flagged { order_code: order.code, reason }
        }
    };
    Ok((outcome, outbox))
}

async fn flag(conn: &mut MySqlConnection, order_id: u64, reason: &str, actor: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET attention = ? WHERE id = ?").bind(reason).bind(order_id).execute(&mut *conn).await?;
    events::record(
        conn,
        &NewEvent {
            order_id,
            item_id: None,
            kind: "needs_attention",
            from_status: None,
            to_status: None,
            actor,
            detail: Some(reason),
        },
    )
    .await
}

/// Records the transaction. Safe to call any number of times with the same SePay id, from
/// any number of concurrent requests: the payment is counted once.
pub async fn record(
    pool: &MySqlPool,
    tx: &SepayTransaction,
    raw: &str,
    settings: &PaymentSettings,
) -> Result<Recorded, StoreError> {
    crate::store::retry_deadlocks(|| record_once(pool, tx, raw, settings)).await
}

async fn record_once(
    pool: &MySqlPool,
    tx: &SepayTransaction,
    raw: &str,
    settings: &PaymentSettings,
) -> Result<Recorded, StoreError> {
    let mut db = pool.begin().await?;
    let unmatched = |reason| Recorded { outcome: PaymentOutcome::Unmatched { reason }, outbox: vec![] };

    if tx.transfer_type == TransferType::Out {
        let fresh = insert_payment(&mut db, tx, raw, None).await?;
        db.commit().await?;
        let outcome = if fresh { PaymentOutcome::Outgoing } else { PaymentOutcome::Duplicate };
        return Ok(Recorded { outcome, outbox: vec![] });
    }

    let code = order_code_of(tx, &settings.pattern);
    let ours = is_our_account(tx, &settings.account_number);
    // Locking the order first serialises concurrent deliveries of the same transaction, so
    // the unique key on sepay_id decides the winner without deadlocks.
    let order = match (&code, ours) {
        (Some(code), true) => lock_order(&mut db, code).await?,
        _ => None,
    };
    let Some(order) = order else {
        let fresh = insert_payment(&mut db, tx, raw, None).await?;
        db.commit().await?;
        if !fresh {
            return Ok(Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] });
        }
        let reason = match (code, ours) {
            (_, false) => "not paid into our account",
            (None, true) => "no order code in the transfer",
            (Some(_), true) => "no order with this code",
        };
        return Ok(unmatched(reason));
    };

    if !insert_payment(&mut db, tx, raw, Some(order.id)).await? {
        db.rollback().await?;
        return Ok(Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] });
    }
    let detail = format!("sepay id {}: {} VND", tx.id, tx.transfer_amount);
    let (outcome, outbox) = apply(&mut db, order, tx.transfer_amount, &detail, ACTOR).await?;
    db.commit().await?;
    Ok(Recorded { outcome, outbox })
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no payment {0}")]
    NoPayment(u64),
    #[error("payment {payment} already belongs to order {order}")]
    AlreadyAttached { payment: u64, order: String },
    #[error("payment {0} is an outgoing transfer; only incoming ones can pay an order")]
    Outgoing(u64),
    #[error("no order {0}")]
    NoOrder(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AttachError {
    fn from(e: sqlx::Error) -> Self {
        AttachError::Store(e.into())
    }
}

/// An operator attaches an unmatched payment (a transfer whose text lost the code, say) to
/// an order. It counts exactly as if the webhook had matched it: the order becomes paid
/// when the sum reaches its total, and its items go to enrollment.
pub async fn attach(pool: &MySqlPool, payment_id: u64, code: &OrderCode, actor: &str) -> Result<Recorded, AttachError> {
    let mut db = pool.begin().await?;
    let order = lock_order(&mut db, code).await?.ok_or_else(|| AttachError::NoOrder(code.to_string()))?;
    let payment: Option<(i64, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT p.sepay_id, p.transfer_type, o.code, p.amount_vnd
         FROM payments p LEFT JOIN orders o ON o.id = p.order_id WHERE p.id = ? FOR UPDATE",
    )
    .bind(payment_id)
    .fetch_optional(&mut *db)
    .await?;
    let Some((sepay_id, transfer_type, attached_to, amount)) = payment else {
        return Err(AttachError::NoPayment(payment_id));
    };
    if let Some(order) = attached_to {
        return Err(AttachError::AlreadyAttached { payment: payment_id, order });
    }
    if transfer_type != TransferType::In.as_str() {
        return Err(AttachError::Outgoing(payment_id));
    }
    sqlx::query("UPDATE payments SET order_id = ? WHERE id = ?")
        .bind(order.id)
        .bind(payment_id)
        .execute(&mut *db)
        .await?;
    let what = format!("sepay id {sepay_id}: {amount} VND, attached by an operator");
    let (outcome, outbox) = apply(&mut db, order, amount, &what, actor).await?;
    db.commit().await?;
    Ok(Recorded { outcome, outbox })
}

/// A transfer kept with no order, for an operator to look at.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct UnmatchedPayment {
    pub id: u64,
    pub sepay_id: i64,
    pub amount_vnd: i64,
    pub gateway: Option<String>,
    pub account_number: Option<String>,
    pub content: Option<String>,
    pub reference_code: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Incoming transfers that matched no order, newest first.
pub async fn unmatched(pool: &MySqlPool, limit: u32) -> Result<Vec<UnmatchedPayment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, sepay_id, amount_vnd, gateway, account_number, content, reference_code, received_at
         FROM payments WHERE order_id IS NULL AND transfer_type = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(TransferType::In.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
