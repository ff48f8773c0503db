//! Transfers held as suspected duplicates, and an operator's word on each: released (a
//! transfer of its own: it counts, as if matched when it came) or dropped (the same transfer
//! as the one it resembles: kept as evidence, never counted). Each is one transaction with
//! the payment locked, and written to the order's events with who decided.

use sqlx::MySqlPool;

use super::{Recorded, apply_in, decide};
use crate::domain::{EventKind, PaymentHold};
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use crate::store::payments::{self as stored, PaymentOnHold};

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no payment {0}")]
    NoPayment(u64),
    #[error("payment {0} is not held: only a held payment can be released or dropped")]
    NotHeld(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for HoldError {
    fn from(e: sqlx::Error) -> Self {
        HoldError::Store(e.into())
    }
}

/// Payments held as suspected duplicates, oldest first.
pub async fn held(pool: &MySqlPool, limit: u32) -> Result<Vec<PaymentOnHold>, StoreError> {
    stored::on_hold(pool, limit).await
}

/// What releasing a held payment did.
#[derive(Debug)]
pub struct Released {
    /// The order it now counts towards, with what that did (`None`: the payment it resembled
    /// paid no order, so it stays unmatched for an operator to attach).
    pub recorded: Option<(String, Recorded)>,
}

/// An operator says a held payment is a transfer of its own: it counts towards the order the
/// payment it resembled paid, exactly as a matched transfer does.
pub async fn release(pool: &MySqlPool, payment_id: u64, actor: &str) -> Result<Released, HoldError> {
    let mut db = pool.begin().await?;
    let payment = stored::lock_payment(&mut db, payment_id).await?.ok_or(HoldError::NoPayment(payment_id))?;
    if payment.hold()? != Some(PaymentHold::Held) {
        return Err(HoldError::NotHeld(payment_id));
    }
    stored::decide_hold(&mut db, payment_id, PaymentHold::Released, actor).await?;
    let order = match payment.duplicate_order_id {
        Some(order_id) => stored::lock_order_id(&mut db, order_id).await?,
        None => None,
    };
    let Some(order) = order else {
        db.commit().await?;
        return Ok(Released { recorded: None });
    };
    stored::attach_to(&mut db, payment_id, order.id).await?;
    let what = format!(
        "{} id {}: {} VND, held as a possible duplicate of payment {}, released by an operator as a transfer of its own",
        payment.gateway,
        payment.gateway_txn_id,
        payment.amount_vnd,
        payment.duplicate_of.unwrap_or_default()
    );
    let code = order.code.clone();
    let decision = decide(order, payment.amount_vnd, &what)?;
    let outbox = apply_in(&mut db, &decision, actor).await?;
    db.commit().await?;
    decision.emit_metrics();
    Ok(Released { recorded: Some((code, Recorded { outcome: decision.outcome, outbox })) })
}

/// An operator says a held payment is the transfer it resembles, reported twice: it stays as
/// evidence and never counts.
pub async fn drop_held(pool: &MySqlPool, payment_id: u64, actor: &str) -> Result<(), HoldError> {
    let mut db = pool.begin().await?;
    let payment = stored::lock_payment(&mut db, payment_id).await?.ok_or(HoldError::NoPayment(payment_id))?;
    if payment.hold()? != Some(PaymentHold::Held) {
        return Err(HoldError::NotHeld(payment_id));
    }
    stored::decide_hold(&mut db, payment_id, PaymentHold::Dropped, actor).await?;
    if let Some(order_id) = payment.duplicate_order_id {
        let detail = format!(
            "{} id {}: {} VND dropped by an operator as the same transfer as payment {}: kept as evidence, never counted",
            payment.gateway,
            payment.gateway_txn_id,
            payment.amount_vnd,
            payment.duplicate_of.unwrap_or_default()
        );
        let event = NewEvent {
            order_id,
            item_id: None,
            kind: EventKind::PaymentDropped,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        };
        events::record(&mut db, &event).await?;
    }
    db.commit().await?;
    Ok(())
}
