//! Recording a bank transfer, from any feed and by any route (webhook, reconciliation): one
//! database transaction that keeps the payment whatever it matches, adds it to its order,
//! and when the order is paid moves its items into enrollment with their outbox rows.

pub mod reconcile;
pub mod transfer;

use sqlx::{MySqlConnection, MySqlPool};

use crate::domain::{CodePattern, EventKind, ItemStatus, OrderCode, OrderStatus, Status};
use crate::store::events::{self, NewEvent};
use crate::store::outbox::OutboxMessage;
use crate::store::payments::{LockedOrder, NewPayment};
use crate::store::{self, StoreError, items, orders};
pub use transfer::{Arrival, BankTransfer, Gateway, TransferType};

fn actor(gateway: Gateway, arrival: Arrival) -> &'static str {
    match (gateway, arrival) {
        (Gateway::Sepay, Arrival::Webhook) => "sepay-webhook",
        (Gateway::Casso, Arrival::Webhook) => "casso-webhook",
        (Gateway::Sepay, Arrival::Reconcile) => "sepay-reconcile",
        (Gateway::Casso, Arrival::Reconcile) => "casso-reconcile",
    }
}

/// What we are paid into, to tell our transfers from others'.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub pattern: CodePattern,
    pub account_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// This feed's transaction was recorded before; nothing changed.
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

fn normalise_account(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn is_our_account(tx: &BankTransfer, ours: &str) -> bool {
    let ours = normalise_account(ours);
    [tx.account_number.as_deref(), tx.sub_account.as_deref()]
        .into_iter()
        .flatten()
        .any(|a| normalise_account(a) == ours)
}

/// The order code a transfer carries: the code the feed recognised first, then the transfer
/// text, then its description. The same whichever feed reported it.
pub fn order_code_of(tx: &BankTransfer, pattern: &CodePattern) -> Option<OrderCode> {
    tx.code
        .as_deref()
        .and_then(|c| OrderCode::parse(c, pattern).ok())
        .or_else(|| tx.content.as_deref().and_then(|t| OrderCode::find_in(t, pattern)))
        .or_else(|| tx.description.as_deref().and_then(|t| OrderCode::find_in(t, pattern)))
}

fn new_payment(tx: &BankTransfer, arrival: Arrival, order_id: Option<u64>) -> NewPayment<'_> {
    NewPayment {
        gateway: tx.gateway.as_str(),
        gateway_txn_id: &tx.id,
        order_id,
        transfer_type: tx.transfer_type.as_str(),
        amount_vnd: tx.amount_vnd,
        bank: tx.bank.as_deref(),
        account_number: tx.account_number.as_deref(),
        code: tx.code.as_deref(),
        content: tx.content.as_deref().or(tx.description.as_deref()),
        reference_code: tx.reference.as_deref(),
        transaction_date: tx.transaction_date.as_deref(),
        raw_payload: &tx.raw,
        arrived_by: arrival.as_str(),
    }
}

/// Adds a payment of `amount` to the locked `order`, set-based: one update of the order (with
/// its items into enrollment when the sum reaches its total), one insert of their outbox
/// rows, and every event in one insert. A payment the order cannot take
/// (cancelled, refunded, already paid) is kept and the order flagged.
async fn apply(
    db: &mut MySqlConnection,
    order: LockedOrder,
    amount: i64,
    what: &str,
    actor: &str,
) -> Result<(PaymentOutcome, Vec<OutboxMessage>), StoreError> {
    // Amounts are bounded where they are parsed; a sum past i64 is still refused, not wrapped.
    let paid_vnd = order.paid_vnd.checked_add(amount).ok_or(StoreError::Overflow)?;
    let detail = format!("{what}, {} of {} paid", paid_vnd, order.total_vnd);
    let becomes_paid = order.status == OrderStatus::Pending && paid_vnd >= order.total_vnd;
    let attention = match order.status {
        OrderStatus::Pending if paid_vnd > order.total_vnd => {
            Some(format!("over-paid by {} VND", paid_vnd - order.total_vnd))
        }
        OrderStatus::Pending => None,
        status => Some(format!("payment of {amount} VND received while the order is {status}")),
    };
    let event = |kind, from_status, to_status, detail, item_id| NewEvent {
        order_id: order.id,
        item_id,
        kind,
        from_status,
        to_status,
        actor,
        detail,
    };
    // Declared before the events that borrow it.
    let awaiting = order.items_in(ItemStatus::AwaitingPayment);
    let mut events = vec![event(EventKind::PaymentReceived, None, None, Some(detail.as_str()), None)];
    let mut outbox = Vec::new();
    if becomes_paid {
        orders::pay_in(db, order.id, paid_vnd, attention.as_deref(), awaiting.len()).await?;
        events.push(event(
            EventKind::OrderStatus,
            Some(OrderStatus::Pending.as_str()),
            Some(OrderStatus::Paid.as_str()),
            Some(detail.as_str()),
            None,
        ));
        let enrolling = items::MoveAll {
            order_id: order.id,
            item_ids: &awaiting,
            from: ItemStatus::AwaitingPayment,
            to: ItemStatus::Enrolling,
            actor,
            reason: Some("order paid"),
        };
        outbox = items::moved_in(db, &enrolling, &mut events).await?;
    } else {
        orders::record_payment_in(db, order.id, order.status, paid_vnd, attention.as_deref()).await?;
    }
    if let Some(reason) = &attention {
        events.push(event(EventKind::NeedsAttention, None, None, Some(reason.as_str()), None));
    }
    events::record_all(db, &events).await?;

    let outcome = match (order.status, attention) {
        (OrderStatus::Pending, _) => PaymentOutcome::Applied {
            order_code: order.code,
            paid_vnd,
            total_vnd: order.total_vnd,
            became_paid: becomes_paid,
        },
        (_, reason) => PaymentOutcome::Flagged { order_code: order.code, reason: reason.unwrap_or_default() },
    };
    Ok((outcome, outbox))
}

/// Records the transfer. Safe to call any number of times with the same feed and id, from
/// any number of concurrent requests and reconciliation passes: the payment is counted once.
/// A repeat is answered from one read; a payment that pays its order is one transaction of
/// six statements and one commit.
pub async fn record(
    pool: &MySqlPool,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    if store::payments::is_recorded(pool, tx.gateway.as_str(), &tx.id).await? {
        return Ok(Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] });
    }
    record_unseen(pool, tx, settings, arrival).await
}

/// [`record`] without its first read, for a caller that has just read (for many transfers at
/// once) that this one is not recorded. The unique key still decides a race.
pub(crate) async fn record_unseen(
    pool: &MySqlPool,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    crate::store::retry_deadlocks(|| record_once(pool, tx, settings, arrival)).await
}

async fn record_once(
    pool: &MySqlPool,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    let unmatched = |reason| Recorded { outcome: PaymentOutcome::Unmatched { reason }, outbox: vec![] };
    let duplicate = || Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] };

    if tx.transfer_type == TransferType::Out {
        // One statement: its own transaction.
        let fresh = store::payments::insert(&mut *pool.acquire().await?, &new_payment(tx, arrival, None)).await?;
        let outcome = if fresh { PaymentOutcome::Outgoing } else { PaymentOutcome::Duplicate };
        return Ok(Recorded { outcome, outbox: vec![] });
    }

    let code = order_code_of(tx, &settings.pattern);
    let ours = is_our_account(tx, &settings.account_number);
    let Some(code) = code.filter(|_| ours) else {
        let fresh = store::payments::insert(&mut *pool.acquire().await?, &new_payment(tx, arrival, None)).await?;
        if !fresh {
            return Ok(duplicate());
        }
        return Ok(unmatched(if ours { "no order code in the transfer" } else { "not paid into our account" }));
    };

    let mut db = pool.begin().await?;
    // Locking the order first serialises concurrent deliveries of the same transaction, so
    // the unique key on (gateway, gateway_txn_id) decides the winner without deadlocks.
    let Some(order) = store::payments::lock_order(&mut db, &code).await? else {
        let fresh = store::payments::insert(&mut db, &new_payment(tx, arrival, None)).await?;
        db.commit().await?;
        return Ok(if fresh { unmatched("no order with this code") } else { duplicate() });
    };
    if !store::payments::insert(&mut db, &new_payment(tx, arrival, Some(order.id))).await? {
        db.rollback().await?;
        return Ok(duplicate());
    }
    let how = match arrival {
        Arrival::Webhook => "",
        Arrival::Reconcile => ", found by reconciliation",
    };
    let detail = format!("{} id {}: {} VND{how}", tx.gateway, tx.id, tx.amount_vnd);
    let (outcome, outbox) = apply(&mut db, order, tx.amount_vnd, &detail, actor(tx.gateway, arrival)).await?;
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
    let order =
        store::payments::lock_order(&mut db, code).await?.ok_or_else(|| AttachError::NoOrder(code.to_string()))?;
    let Some(payment) = store::payments::lock_payment(&mut db, payment_id).await? else {
        return Err(AttachError::NoPayment(payment_id));
    };
    if let Some(order) = payment.attached_to {
        return Err(AttachError::AlreadyAttached { payment: payment_id, order });
    }
    if payment.transfer_type != TransferType::In.as_str() {
        return Err(AttachError::Outgoing(payment_id));
    }
    store::payments::attach_to(&mut db, payment_id, order.id).await?;
    let what = format!(
        "{} id {}: {} VND, attached by an operator",
        payment.gateway, payment.gateway_txn_id, payment.amount_vnd
    );
    let (outcome, outbox) = apply(&mut db, order, payment.amount_vnd, &what, actor).await?;
    db.commit().await?;
    Ok(Recorded { outcome, outbox })
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("no order {0}")]
    NoOrder(String),
    #[error("order {code} is {status}: only a cancelled (expired) order's late payment can be accepted")]
    NotCancelled { code: String, status: OrderStatus },
    #[error("order {0} received no money: there is nothing to accept")]
    NothingPaid(String),
    #[error("order {code} received {paid_vnd} of {total_vnd} VND: the rest must arrive first (or refund what came)")]
    Short { code: String, paid_vnd: i64, total_vnd: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AcceptError {
    fn from(e: sqlx::Error) -> Self {
        AcceptError::Store(e.into())
    }
}

/// An operator accepts the payment of an order that expired before (all of) it arrived: the
/// order becomes paid, its items go to enrollment with their outbox rows, its flag is
/// cleared. One transaction, with the order locked, as a paying transfer is.
pub async fn accept_late(pool: &MySqlPool, code: &OrderCode, actor: &str) -> Result<Recorded, AcceptError> {
    let mut db = pool.begin().await?;
    let order =
        store::payments::lock_order(&mut db, code).await?.ok_or_else(|| AcceptError::NoOrder(code.to_string()))?;
    if order.status != OrderStatus::Cancelled {
        return Err(AcceptError::NotCancelled { code: order.code, status: order.status });
    }
    if order.paid_vnd <= 0 {
        return Err(AcceptError::NothingPaid(order.code));
    }
    if order.paid_vnd < order.total_vnd {
        return Err(AcceptError::Short { code: order.code, paid_vnd: order.paid_vnd, total_vnd: order.total_vnd });
    }
    let reason = format!("late payment of {} VND accepted by an operator", order.paid_vnd);
    orders::transition_in(&mut db, order.id, OrderStatus::Cancelled, OrderStatus::Paid, actor, Some(&reason)).await?;
    orders::clear_attention_in(&mut db, order.id).await?;
    store::coupons::retake_for_order_in(&mut db, order.id).await?;
    let cancelled = order.items_in(ItemStatus::Cancelled);
    let mut events = Vec::new();
    let enrolling = items::MoveAll {
        order_id: order.id,
        item_ids: &cancelled,
        from: ItemStatus::Cancelled,
        to: ItemStatus::Enrolling,
        actor,
        reason: Some("late payment accepted"),
    };
    let outbox = items::move_all_in(&mut db, &enrolling, &mut events).await?;
    events::record_all(&mut db, &events).await?;
    db.commit().await?;
    let outcome = PaymentOutcome::Applied {
        order_code: order.code,
        paid_vnd: order.paid_vnd,
        total_vnd: order.total_vnd,
        became_paid: true,
    };
    Ok(Recorded { outcome, outbox })
}

pub use crate::store::payments::UnmatchedPayment;

/// Incoming transfers that matched no order, newest first.
pub async fn unmatched(pool: &MySqlPool, limit: u32) -> Result<Vec<UnmatchedPayment>, StoreError> {
    store::payments::unmatched(pool, TransferType::In.as_str(), limit).await
}
