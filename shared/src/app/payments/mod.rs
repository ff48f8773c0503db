//! Recording a bank transfer, from any feed and by any route (webhook, reconciliation): one
//! database transaction that keeps the payment whatever it matches, adds it to its order,
//! and when the order is paid moves its items into enrollment with their outbox rows.

pub mod hold;

use crate::domain::transfer_identity as identity;

use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlConnection, MySqlPool};

use crate::domain::payment_route::{VirtualAccountMatch, virtual_account_match};
pub use crate::domain::transfer::{Arrival, BankTransfer, Gateway, TransferType};
use crate::domain::{CodePattern, EventKind, ItemStatus, OrderCode, OrderStatus, PaymentHold, Status};
use crate::store::events::{self, NewEvent};
use crate::store::outbox::OutboxMessage;
use crate::store::payments::{Committed, Inserted, LockedOrder, Lookalike, NewPayment, OrderPayment, SuspectRow};
use crate::store::script::Script;
use crate::store::{self, StoreError, items, orders};

fn actor(gateway: Gateway, arrival: Arrival) -> &'static str {
    match (gateway, arrival) {
        (Gateway::Sepay, Arrival::Webhook) => "sepay-webhook",
        (Gateway::Casso, Arrival::Webhook) => "casso-webhook",
        (Gateway::Sepay, Arrival::Reconcile) => "sepay-reconcile",
        (Gateway::Casso, Arrival::Reconcile) => "casso-reconcile",
        (Gateway::Payos, Arrival::Webhook) => "payos-webhook",
        (Gateway::Payos, Arrival::Reconcile) => "payos-reconcile",
    }
}

pub use crate::domain::transfer::PaymentSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// This feed's transaction was recorded before; nothing changed.
    Duplicate,
    /// Another feed reported this bank transfer first (same reference): kept as evidence of
    /// payment `payment_id`, never counted again.
    SameTransfer { payment_id: u64 },
    /// No bank reference to tell it from payment `duplicate_of`, which it resembles: kept,
    /// not counted, held for an operator (`coursedrop-admin payments held`).
    Held { duplicate_of: u64 },
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
    code_in(tx.code.as_deref(), &[tx.content.as_deref(), tx.description.as_deref()], pattern)
}

/// The code a feed recognised, else the first found in `texts`, in order.
fn code_in(code: Option<&str>, texts: &[Option<&str>], pattern: &CodePattern) -> Option<OrderCode> {
    code.and_then(|c| OrderCode::parse(c, pattern).ok())
        .or_else(|| texts.iter().flatten().find_map(|t| OrderCode::find_in(t, pattern)))
}

/// A transfer's bank identity, worked out once per recording.
struct Identity {
    account: Option<String>,
    reference: Option<String>,
}

impl Identity {
    fn of(tx: &BankTransfer) -> Self {
        Identity { account: identity::bank_account(tx), reference: identity::bank_reference(tx) }
    }

    /// What to compare the transfer with: its order's payments when it names one.
    fn lookalike<'a>(&'a self, tx: &'a BankTransfer, order_code: Option<&'a str>) -> Lookalike<'a> {
        Lookalike {
            bank_account: self.account.as_deref(),
            bank_reference: self.reference.as_deref(),
            amount_vnd: tx.amount_vnd,
            transfer_type: tx.transfer_type.as_str(),
            order_code,
            lookback_days: identity::SUSPECT_LOOKBACK_DAYS,
        }
    }
}

/// The arriving transfer beside the recorded ones like it.
fn judge(
    tx: &BankTransfer,
    id: &Identity,
    rows: &[SuspectRow],
    pattern: &CodePattern,
) -> Result<identity::Verdict, StoreError> {
    // A recorded payment keeps the feed's code and the text (or description) it was matched by.
    let text_key = |code: Option<&str>, content: Option<&str>| {
        identity::text_key(code_in(code, &[content], pattern).as_ref().map(|c| c.as_str()), content)
    };
    let new = identity::Sighting {
        feed: tx.gateway.as_str().to_string(),
        reference: id.reference.clone(),
        text_key: identity::text_key(
            order_code_of(tx, pattern).as_ref().map(|c| c.as_str()),
            tx.content.as_deref().or(tx.description.as_deref()),
        ),
        bank_time: identity::bank_time(tx.transaction_date.as_deref()),
        received_at: chrono::Utc::now().naive_utc(),
    };
    let recorded = rows
        .iter()
        .map(|r| {
            Ok(identity::Recorded {
                payment_id: r.id,
                on_hold: r.hold()?.is_some_and(PaymentHold::uncounted),
                sighting: identity::Sighting {
                    feed: r.feed.clone(),
                    reference: r.bank_reference.clone(),
                    text_key: text_key(r.code.as_deref(), r.content.as_deref()),
                    bank_time: identity::bank_time(r.transaction_date.as_deref()),
                    received_at: r.received_at,
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(identity::judge(&new, &recorded))
}

fn new_payment<'a>(
    tx: &'a BankTransfer,
    id: &'a Identity,
    arrival: Arrival,
    order_id: Option<u64>,
    held_duplicate_of: Option<u64>,
) -> NewPayment<'a> {
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
        bank_account: id.account.as_deref(),
        bank_reference: id.reference.as_deref(),
        held_duplicate_of,
        transaction_date: tx.transaction_date.as_deref(),
        raw_payload: &tx.raw,
        arrived_by: arrival.as_str(),
    }
}

/// What a payment does to the order it is added to, decided from the order as locked and
/// nothing else, so every rule of paying is tested without a database: the new sum, whether
/// the order becomes paid (and which items go to enrollment), whether an operator must look
/// (an over-payment, money on a cancelled, refunded or paid order), and the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub order_id: u64,
    /// The order's status under the lock.
    pub status: OrderStatus,
    pub paid_vnd: i64,
    pub attention: Option<String>,
    /// `Some`: the order becomes paid, and these items, awaiting payment, go to enrollment.
    pub enrolling: Option<Vec<u64>>,
    /// The payment as the timeline tells it: what arrived, and the sum so far.
    pub detail: String,
    pub outcome: PaymentOutcome,
}

/// Adds a payment of `amount` (described by `what`) to the locked `order`.
pub fn decide(order: LockedOrder, amount: i64, what: &str) -> Result<Decision, StoreError> {
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
    let enrolling = becomes_paid.then(|| order.items_in(ItemStatus::AwaitingPayment));
    let outcome = match (order.status, &attention) {
        (OrderStatus::Pending, _) => PaymentOutcome::Applied {
            order_code: order.code,
            paid_vnd,
            total_vnd: order.total_vnd,
            became_paid: becomes_paid,
        },
        (_, reason) => PaymentOutcome::Flagged { order_code: order.code, reason: reason.clone().unwrap_or_default() },
    };
    Ok(Decision { order_id: order.id, status: order.status, paid_vnd, attention, enrolling, detail, outcome })
}

impl Decision {
    /// The timeline's rows for it, in order: the payment, the order paid, each item into
    /// enrollment, the flag.
    pub fn events<'a>(&'a self, actor: &'a str) -> Vec<NewEvent<'a>> {
        let event = |kind, from_status, to_status, detail, item_id| NewEvent {
            order_id: self.order_id,
            item_id,
            kind,
            from_status,
            to_status,
            actor,
            detail,
        };
        let mut events = vec![event(EventKind::PaymentReceived, None, None, Some(self.detail.as_str()), None)];
        if let Some(items) = &self.enrolling {
            events.push(event(
                EventKind::OrderStatus,
                Some(OrderStatus::Pending.as_str()),
                Some(OrderStatus::Paid.as_str()),
                Some(self.detail.as_str()),
                None,
            ));
            for &item in items {
                events.push(event(
                    EventKind::ItemStatus,
                    Some(ItemStatus::AwaitingPayment.as_str()),
                    Some(ItemStatus::Enrolling.as_str()),
                    Some("order paid"),
                    Some(item),
                ));
            }
        }
        if let Some(reason) = &self.attention {
            events.push(event(EventKind::NeedsAttention, None, None, Some(reason.as_str()), None));
        }
        events
    }

    /// The writes it takes, for the store.
    pub fn writes<'a>(&'a self, events: &'a [NewEvent<'a>]) -> OrderPayment<'a> {
        OrderPayment {
            order_id: self.order_id,
            status: self.status,
            paid_vnd: self.paid_vnd,
            attention: self.attention.as_deref(),
            enrolling: self.enrolling.as_deref(),
            events,
        }
    }

    /// Counted once the decision is committed.
    fn emit_metrics(&self) {
        for _ in self.enrolling.iter().flatten() {
            crate::support::metrics::emit(crate::support::metrics::Metric::ItemEntered {
                status: ItemStatus::Enrolling.as_str(),
            });
        }
    }
}

/// Records the transfer. Safe to call any number of times with the same feed and id, from
/// any number of concurrent requests and reconciliation passes: the payment is counted once.
/// A repeat is answered from one read. A payment that pays its order takes two more round
/// trips on the same connection: one begins the transaction and locks the order and its
/// items; the other writes the payment, the order paid with its items, their outbox rows and
/// the events, and commits.
pub async fn record(
    pool: &MySqlPool,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    record_with(&mut pool.acquire().await?, tx, settings, arrival).await
}

/// [`record`] on a connection the caller holds (the webhook keeps its connections:
/// `store::kept`).
pub async fn record_with(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    if store::payments::is_recorded(conn, tx.gateway.as_str(), &tx.id).await? {
        return Ok(Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] });
    }
    record_on(conn, tx, settings, arrival).await
}

/// [`record`] without its first read, for a caller that has just read (for many transfers at
/// once) that this one is not recorded. The unique key still decides a race.
pub(crate) async fn record_unseen(
    pool: &MySqlPool,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    record_on(&mut pool.acquire().await?, tx, settings, arrival).await
}

/// One transaction on `conn`, run again if it deadlocks.
async fn record_on(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    let mut retry = store::DeadlockRetry::default();
    loop {
        let result = record_once(conn, tx, settings, arrival).await;
        if !retry.again(&result).await {
            return result;
        }
    }
}

async fn record_once(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    settings: &PaymentSettings,
    arrival: Arrival,
) -> Result<Recorded, StoreError> {
    let id = Identity::of(tx);
    let kept = |outcome| Recorded { outcome, outbox: vec![] };
    // A transfer into an order's own virtual account names that order, whatever its text.
    let via_account = match (tx.transfer_type, tx.sub_account.as_deref()) {
        (TransferType::In, Some(sub)) => store::routes::order_of_virtual_account(conn, sub.trim()).await?,
        _ => None,
    };
    let (code, ours, wrong_amount) = match via_account {
        Some((code, amount)) => match virtual_account_match(amount, tx.amount_vnd) {
            VirtualAccountMatch::Pays => (OrderCode::parse(&code, &settings.pattern).ok(), true, false),
            VirtualAccountMatch::WrongAmount { .. } => (None, true, true),
        },
        None => (order_code_of(tx, &settings.pattern), is_our_account(tx, &settings.account_number), false),
    };
    let code = code.filter(|_| ours && tx.transfer_type == TransferType::In);

    let Some(code) = code else {
        // An outgoing transfer, or one that pays no order: one insert, its own transaction.
        // It counts towards nothing, so a lookalike read before it needs no lock.
        let suspect = match tx.transfer_type {
            TransferType::In => {
                let rows = store::payments::suspects(conn, &id.lookalike(tx, None)).await?;
                judge(tx, &id, &rows, &settings.pattern)?
            }
            TransferType::Out => identity::Verdict::New,
        };
        let held = match suspect {
            identity::Verdict::Same { payment_id } => return seen_again(conn, tx, arrival, payment_id, None).await,
            identity::Verdict::Suspect { payment_id } => Some(payment_id),
            identity::Verdict::New => None,
        };
        let outcome = match store::payments::insert(conn, &new_payment(tx, &id, arrival, None, held)).await? {
            Inserted::AlreadyRecorded => PaymentOutcome::Duplicate,
            Inserted::SameTransfer => return seen_again_by_identity(conn, tx, &id, arrival, None).await,
            Inserted::Fresh => match (held, tx.transfer_type) {
                (Some(duplicate_of), _) => PaymentOutcome::Held { duplicate_of },
                (None, TransferType::Out) => PaymentOutcome::Outgoing,
                (None, TransferType::In) if wrong_amount => {
                    PaymentOutcome::Unmatched { reason: "not the amount its order's virtual account takes" }
                }
                (None, TransferType::In) if ours => {
                    PaymentOutcome::Unmatched { reason: "no order code in the transfer" }
                }
                (None, TransferType::In) => PaymentOutcome::Unmatched { reason: "not paid into our account" },
            },
        };
        return Ok(kept(outcome));
    };

    // Locking the order first serialises concurrent deliveries of the same transfer (from one
    // feed or two), so the unique keys decide the winner without deadlocks, and the transfers
    // like this one are read as the previous holder of the lock left them.
    let like = id.lookalike(tx, Some(code.as_str()));
    let (db, order, suspects) = store::payments::begin_locking(conn, &code, Some(&like)).await?;
    let verdict = match judge(tx, &id, &suspects, &settings.pattern) {
        Ok(verdict) => verdict,
        Err(e) => {
            db.rollback().await?;
            return Err(e);
        }
    };
    let held = match verdict {
        identity::Verdict::Same { payment_id } => {
            db.rollback().await?;
            return seen_again(conn, tx, arrival, payment_id, Some(&code)).await;
        }
        identity::Verdict::Suspect { payment_id } => Some(payment_id),
        identity::Verdict::New => None,
    };
    let mut script = Script::new();
    let Some(order) = order else {
        store::payments::push_insert(&mut script, &new_payment(tx, &id, arrival, None, held));
        let outcome = match held {
            Some(duplicate_of) => PaymentOutcome::Held { duplicate_of },
            None => PaymentOutcome::Unmatched { reason: "no order with this code" },
        };
        let committed = db.commit(script).await?;
        return finish(conn, tx, &id, arrival, Some(&code), committed, kept(outcome)).await;
    };
    if let Some(duplicate_of) = held {
        // Kept without its order, so it counts towards nothing until an operator releases it.
        store::payments::push_insert(&mut script, &new_payment(tx, &id, arrival, None, held));
        let detail = format!(
            "{} id {}: {} VND looks like payment {duplicate_of} (same account, amount and text moments apart, \
             and no bank reference to tell them apart): held, not counted, until an operator decides",
            tx.gateway, tx.id, tx.amount_vnd
        );
        let event = NewEvent {
            order_id: order.id,
            item_id: None,
            kind: EventKind::PaymentHeld,
            from_status: None,
            to_status: None,
            actor: actor(tx.gateway, arrival),
            detail: Some(&detail),
        };
        events::push_insert(&mut script, std::slice::from_ref(&event));
        let outcome = PaymentOutcome::Held { duplicate_of };
        let committed = db.commit(script).await?;
        return finish(conn, tx, &id, arrival, Some(&code), committed, kept(outcome)).await;
    }
    store::payments::push_insert(&mut script, &new_payment(tx, &id, arrival, Some(order.id), None));
    let how = match arrival {
        Arrival::Webhook => "",
        Arrival::Reconcile => ", found by reconciliation",
    };
    let what = format!("{} id {}: {} VND{how}", tx.gateway, tx.id, tx.amount_vnd);
    let decision = match decide(order, tx.amount_vnd, &what) {
        Ok(decision) => decision,
        Err(e) => {
            db.rollback().await?;
            return Err(e);
        }
    };
    let events = decision.events(actor(tx.gateway, arrival));
    let layout = store::payments::push_payment(&mut script, &decision.writes(&events));
    let answers = match db.commit(script).await? {
        Committed::Done(answers) => answers,
        lost => return finish(conn, tx, &id, arrival, Some(&code), lost, kept(PaymentOutcome::Duplicate)).await,
    };
    // The order and its items were locked by this transaction's first statement, so the
    // compare-and-set cannot have lost; a count that differs is a defect, reported as such.
    let outbox = layout.read(&answers)?;
    decision.emit_metrics();
    Ok(Recorded { outcome: decision.outcome, outbox })
}

/// The answer for a transaction that wrote no outbox rows: `done` when it committed, else
/// what the row it lost to says.
async fn finish(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    id: &Identity,
    arrival: Arrival,
    names: Option<&OrderCode>,
    committed: Committed,
    done: Recorded,
) -> Result<Recorded, StoreError> {
    match committed {
        Committed::Done(_) => Ok(done),
        Committed::Lost(Inserted::SameTransfer) => seen_again_by_identity(conn, tx, id, arrival, names).await,
        Committed::Lost(_) => Ok(Recorded { outcome: PaymentOutcome::Duplicate, outbox: vec![] }),
    }
}

/// Keeps this report as another sighting of payment `payment_id`.
/// Another report of a transfer already recorded as payment `payment_id`: kept as a sighting.
/// When this report names an order (payOS's `orderCode`, a virtual account, a code in its
/// text) and the first report named none (payOS's short text, seen by SePay first, say), the
/// payment is attached to that order: the same money, now known to be that order's.
async fn seen_again(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    arrival: Arrival,
    payment_id: u64,
    names: Option<&OrderCode>,
) -> Result<Recorded, StoreError> {
    let sighting = store::payments::NewSighting {
        payment_id,
        feed: tx.gateway.as_str(),
        feed_txn_id: &tx.id,
        arrived_by: arrival.as_str(),
        raw_payload: &tx.raw,
        actor: actor(tx.gateway, arrival),
    };
    // The attach comes before the sighting is kept: if it fails (a deadlock, the database
    // gone), this report is not yet "seen", so its retry or redelivery attaches again
    // instead of being answered as a duplicate. Most second reports find the payment counted
    // already: one read, no locks.
    let mut attached = None;
    if let Some(code) = names
        && store::payments::is_unattached(conn, payment_id).await?
    {
        let how = format!("{} id {} named its order", tx.gateway, tx.id);
        match attach_on(conn, payment_id, code, actor(tx.gateway, arrival), &how).await {
            Ok(recorded) => attached = Some(recorded),
            // Attached meanwhile, held, or no such order: a sighting only.
            Err(AttachError::Store(e)) => return Err(e),
            Err(_) => {}
        }
    }
    let fresh = store::payments::record_sighting(conn, &sighting).await?;
    if let Some(recorded) = attached {
        return Ok(recorded);
    }
    let outcome = if fresh { PaymentOutcome::SameTransfer { payment_id } } else { PaymentOutcome::Duplicate };
    Ok(Recorded { outcome, outbox: vec![] })
}

/// [`seen_again`] for a report whose insert met the bank identity's key: a concurrent report
/// by another feed committed first.
async fn seen_again_by_identity(
    conn: &mut PoolConnection<MySql>,
    tx: &BankTransfer,
    id: &Identity,
    arrival: Arrival,
    names: Option<&OrderCode>,
) -> Result<Recorded, StoreError> {
    let found = match (id.account.as_deref(), id.reference.as_deref()) {
        (Some(account), Some(reference)) => {
            store::payments::by_identity(conn, account, reference, tx.transfer_type.as_str(), tx.amount_vnd).await?
        }
        _ => None,
    };
    match found {
        Some(payment_id) => seen_again(conn, tx, arrival, payment_id, names).await,
        None => Err(StoreError::Corrupt(format!(
            "{} id {}: its bank identity is taken, by no payment found",
            tx.gateway, tx.id
        ))),
    }
}

/// Writes a decided payment inside the caller's transaction (an operator's attach), checking
/// what changed before the caller commits.
async fn apply_in(
    db: &mut MySqlConnection,
    decision: &Decision,
    actor: &str,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let events = decision.events(actor);
    let mut script = Script::new();
    let layout = store::payments::push_payment(&mut script, &decision.writes(&events));
    let answers = script.run(db).await?;
    layout.read(&answers)
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no payment {0}")]
    NoPayment(u64),
    #[error("payment {payment} already belongs to order {order}")]
    AlreadyAttached { payment: u64, order: String },
    #[error("payment {0} is an outgoing transfer; only incoming ones can pay an order")]
    Outgoing(u64),
    #[error("payment {0} is held (or was dropped) as a suspected duplicate: `payments release {0}` counts it")]
    OnHold(u64),
    #[error("no order {0}")]
    NoOrder(String),
    /// Dealt with outside coursedrop (given back at the bank, say): counting it now could
    /// count the money twice.
    #[error("payment {payment} was marked handled by {by}; it cannot pay an order")]
    Handled { payment: u64, by: String },
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
    attach_on(&mut *pool.acquire().await?, payment_id, code, actor, "attached by an operator").await
}

/// [`attach`] on a connection the caller holds; `how` ends the timeline's line.
async fn attach_on(
    conn: &mut MySqlConnection,
    payment_id: u64,
    code: &OrderCode,
    actor: &str,
    how: &str,
) -> Result<Recorded, AttachError> {
    let mut db = sqlx::Connection::begin(&mut *conn).await?;
    match attach_in(&mut db, payment_id, code, actor, how).await {
        Ok((decision, outbox)) => {
            db.commit().await?;
            decision.emit_metrics();
            Ok(Recorded { outcome: decision.outcome, outbox })
        }
        Err(e) => {
            // Now, not when the connection is next used: a connection kept between webhook
            // requests would otherwise hold the order's lock until then.
            db.rollback().await?;
            Err(e)
        }
    }
}

/// [`attach_on`]'s work inside its transaction: the order and the payment locked, checked,
/// the payment counted towards the order.
async fn attach_in(
    db: &mut MySqlConnection,
    payment_id: u64,
    code: &OrderCode,
    actor: &str,
    how: &str,
) -> Result<(Decision, Vec<OutboxMessage>), AttachError> {
    let order = store::payments::lock_order(db, code).await?.ok_or_else(|| AttachError::NoOrder(code.to_string()))?;
    let Some(payment) = store::payments::lock_payment(db, payment_id).await? else {
        return Err(AttachError::NoPayment(payment_id));
    };
    if let Some(order) = payment.attached_to {
        return Err(AttachError::AlreadyAttached { payment: payment_id, order });
    }
    if payment.hold()?.is_some_and(PaymentHold::uncounted) {
        return Err(AttachError::OnHold(payment_id));
    }
    if payment.transfer_type != TransferType::In.as_str() {
        return Err(AttachError::Outgoing(payment_id));
    }
    if let Some(by) = payment.handled_by {
        return Err(AttachError::Handled { payment: payment_id, by });
    }
    store::payments::attach_to(db, payment_id, order.id).await?;
    let what = format!("{} id {}: {} VND, {how}", payment.gateway, payment.gateway_txn_id, payment.amount_vnd);
    let decision = decide(order, payment.amount_vnd, &what)?;
    let outbox = apply_in(db, &decision, actor).await?;
    Ok((decision, outbox))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, total_vnd: i64, paid_vnd: i64) -> LockedOrder {
        LockedOrder {
            id: 7,
            code: "CD00000007".into(),
            status,
            total_vnd,
            paid_vnd,
            items: vec![(71, ItemStatus::AwaitingPayment), (72, ItemStatus::AwaitingPayment)],
        }
    }

    fn kinds(d: &Decision) -> Vec<(EventKind, Option<u64>, Option<&str>)> {
        d.events("sepay-webhook").iter().map(|e| (e.kind, e.item_id, e.to_status)).collect()
    }

    #[test]
    fn paying_the_total_pays_the_order_and_enrolls_every_item_awaiting_payment() {
        let mut o = order(OrderStatus::Pending, 500_000, 200_000);
        o.items.push((73, ItemStatus::Cancelled));
        let d = decide(o, 300_000, "sepay id 1: 300000 VND").unwrap();
        assert_eq!(d.enrolling, Some(vec![71, 72]));
        assert_eq!((d.paid_vnd, d.attention.as_deref()), (500_000, None));
        assert_eq!(d.detail, "sepay id 1: 300000 VND, 500000 of 500000 paid");
        assert_eq!(
            d.outcome,
            PaymentOutcome::Applied {
                order_code: "CD00000007".into(),
                paid_vnd: 500_000,
                total_vnd: 500_000,
                became_paid: true
            }
        );
        assert_eq!(
            kinds(&d),
            vec![
                (EventKind::PaymentReceived, None, None),
                (EventKind::OrderStatus, None, Some("paid")),
                (EventKind::ItemStatus, Some(71), Some("enrolling")),
                (EventKind::ItemStatus, Some(72), Some("enrolling")),
            ]
        );
        let events = d.events("sepay-webhook");
        let w = d.writes(&events);
        assert_eq!((w.order_id, w.status, w.enrolling), (7, OrderStatus::Pending, Some(&[71u64, 72][..])));
    }

    #[test]
    fn a_part_payment_records_the_sum_and_waits() {
        let d = decide(order(OrderStatus::Pending, 500_000, 0), 100_000, "x").unwrap();
        assert_eq!((d.paid_vnd, d.enrolling.as_ref(), d.attention.as_ref()), (100_000, None, None));
        assert!(matches!(d.outcome, PaymentOutcome::Applied { became_paid: false, .. }));
        assert_eq!(kinds(&d), vec![(EventKind::PaymentReceived, None, None)]);
    }

    #[test]
    fn an_over_payment_pays_and_flags_the_order() {
        let d = decide(order(OrderStatus::Pending, 500_000, 0), 600_000, "x").unwrap();
        assert_eq!(d.attention.as_deref(), Some("over-paid by 100000 VND"));
        assert!(matches!(d.outcome, PaymentOutcome::Applied { became_paid: true, .. }));
        assert_eq!(kinds(&d).last(), Some(&(EventKind::NeedsAttention, None, None)));
    }

    #[test]
    fn money_on_a_closed_order_is_kept_and_flagged_never_enrolls() {
        for status in [OrderStatus::Cancelled, OrderStatus::Refunded, OrderStatus::Paid] {
            let d = decide(order(status, 500_000, 0), 500_000, "x").unwrap();
            assert_eq!(d.enrolling, None, "{status}");
            let reason = format!("payment of 500000 VND received while the order is {status}");
            assert_eq!(
                d.outcome,
                PaymentOutcome::Flagged { order_code: "CD00000007".into(), reason: reason.clone() },
                "{status}"
            );
            assert_eq!(d.attention, Some(reason));
            assert_eq!(
                kinds(&d),
                vec![(EventKind::PaymentReceived, None, None), (EventKind::NeedsAttention, None, None)]
            );
        }
    }

    #[test]
    fn a_sum_past_the_integer_is_refused_not_wrapped() {
        assert!(matches!(decide(order(OrderStatus::Pending, 1, i64::MAX), 1, "x"), Err(StoreError::Overflow)));
    }
}
