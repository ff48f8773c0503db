//! Refunds: the order becomes `refunded`, every item the buyer had is `revoked`, and the
//! buyer's access to each Drive folder is removed, and each item that reached the seller's LMS
//! is queued for unenrollment (the enroll function calls the provider). The payment rows stay:
//! a refund is a new fact, not an erasure. Safe to repeat: a second call finishes removing
//! access.

use serde::Serialize;
use sqlx::MySqlPool;

use crate::adapters::drive::AccessToken;
use crate::adapters::drive::upload::DriveClient;
use crate::app::drive_access::{self, AccessError};
use crate::domain::Queue;
use crate::domain::{ItemStatus, OrderCode, OrderStatus, Status};
use crate::store::items::{self, ItemChange};
use crate::store::outbox::{self, ItemMessage};
use crate::store::{StoreError, grants, orders};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefundReport {
    pub items_revoked: usize,
    /// Items queued to be taken out of the seller's LMS.
    pub unenrollments_queued: usize,
    /// Their enroll-queue messages, to publish after the refund (the sweeper publishes any
    /// that are not).
    #[serde(skip)]
    pub outbox: Vec<crate::store::outbox::OutboxMessage>,
    pub permissions_removed: usize,
    /// Items whose access could not be removed now (Drive unavailable): their finalize-queue
    /// message (in `outbox`) takes it back when Drive answers.
    pub folders_left: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no order {0}")]
    NotFound(String),
    #[error(
        "order {code} is {status}: only a paid or completed order, or a cancelled one that received money, can be refunded"
    )]
    NotRefundable { code: String, status: OrderStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Store(e.into())
    }
}

pub async fn refund<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    code: &OrderCode,
    actor: &str,
    reason: &str,
) -> Result<RefundReport, RefundError> {
    let Some((order_id, _, _)) = orders::by_code(pool, code).await? else {
        return Err(RefundError::NotFound(code.to_string()));
    };
    let mut report = RefundReport::default();
    let mut tx = pool.begin().await?;
    // The order's row by its key first, as finalize locks it (the status update alone may take
    // a secondary index's lock before the row's, and deadlock with a finalize), and its status
    // read under that lock: a finalize may have completed it a moment ago.
    orders::lock_in(&mut tx, order_id).await?;
    let head =
        orders::head_by_code(&mut tx, code.as_str()).await?.ok_or_else(|| RefundError::NotFound(code.to_string()))?;
    let status = head.status;
    // A cancelled order is refunded only for money it received (an expired under-payment).
    let received_nothing = status == OrderStatus::Cancelled && head.paid_vnd <= 0;
    if status != OrderStatus::Refunded {
        if !status.can_become(OrderStatus::Refunded) || received_nothing {
            return Err(RefundError::NotRefundable { code: code.to_string(), status });
        }
        orders::transition_in(&mut tx, order_id, status, OrderStatus::Refunded, actor, Some(reason)).await?;
        for (item_id, from) in items::lock_all_of_order_in(&mut tx, order_id).await? {
            if from.can_become(ItemStatus::Revoked) {
                items::transition_in(
                    &mut tx,
                    &ItemChange::new(item_id, from, ItemStatus::Revoked, actor).because(reason),
                )
                .await?;
                report.items_revoked += 1;
                // Everything past awaiting payment may be in the LMS (an item revoked while
                // enrolling too: its enroller takes back what it makes after this).
                if !matches!(from, ItemStatus::AwaitingPayment | ItemStatus::Cancelled)
                    && let Some(message) = items::request_unenroll_in(&mut tx, item_id).await?
                {
                    report.unenrollments_queued += 1;
                    report.outbox.push(message);
                }
            }
        }
    }
    // Taking access back is work with its own message (the finalize queue, whose consumer
    // holds the Drive credentials), written in this transaction: if Drive fails below, or this
    // process dies, the message retries it until it succeeds, and the queue's alarms fire
    // when it keeps failing.
    let grant_items = grants::items_with_live_grants(&mut tx, order_id).await?;
    let take_backs = outbox::enqueue_all(&mut tx, Queue::Finalize, &grant_items).await?;
    tx.commit().await?;
    // Every permission we gave for the order's items, to whichever address (the order's, one
    // a move gave, one a stopped move was giving), and only those: the seller's own, another
    // buyer's, and one the buyer holds through another paid order stay.
    for item_id in grants::items_with_live_grants(&mut *pool.acquire().await?, order_id).await? {
        match drive_access::take_back(pool, drive, item_id, None).await {
            Ok(n) => {
                report.permissions_removed += n;
                outbox::mark_consumed(&mut *pool.acquire().await?, Queue::Finalize, &[item_id]).await?;
            }
            Err(AccessError::Store(e)) => return Err(e.into()),
            Err(AccessError::Drive(e)) => {
                tracing::warn!(item_id, error = %e, "could not remove access yet; the finalize queue retries it");
                report.folders_left.push(format!("item {item_id}"));
                report.outbox.extend(take_backs.iter().filter(|m| m.body == ItemMessage::body(item_id)).cloned());
            }
        }
    }
    Ok(report)
}
