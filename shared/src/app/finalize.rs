//! Finalizing a delivered item: share its Drive folder with the buyer (reader), email the
//! link exactly once, mark it completed, and complete the order with its last item.
//!
//! The email is sent once per item even when the message comes twice: the Message-ID is
//! fixed and stored before sending, and the send is recorded after. One window no system can
//! close remains: the function dies after the SMTP server accepted the mail but before the
//! send was recorded. The retry then sends again with the same Message-ID, and mail clients
//! show one message.
//!
//! Two runs of one item at once (a redelivered message while the first is still working)
//! never both send: the run first takes the item's lease (a compare-and-set on `delivered`),
//! and the other answers "retry" and finds it completed when it comes back.

use sqlx::MySqlPool;

use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::mail::{DeliveryMail, MailError, Mailer};
use crate::app::drive_access::{self, AccessError};
use crate::app::stage;
use crate::domain::{ItemStatus, OrderStatus, Queue, Stage};
use crate::store::items::{self, ItemChange};
use crate::store::{StoreError, leases, orders, outbox};

const ACTOR: &str = "finalize";
/// Long enough for a share and an SMTP send with its timeouts; a run that died holding it
/// delays the next by at most this.
const LEASE_SECS: u32 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Shared, emailed, completed; and whether the order is now completed too.
    Completed {
        order_completed: bool,
    },
    AlreadyDone(ItemStatus),
    /// The order was refunded or cancelled: nothing is shared or sent.
    OrderClosed(OrderStatus),
    UnknownItem,
    Retry(String),
    Failed(String),
}

async fn fail(pool: &MySqlPool, item_id: u64, reason: &str) -> Result<Outcome, StoreError> {
    Ok(match stage::fail(pool, item_id, ItemStatus::Delivered, Stage::Finalize, reason, ACTOR, None).await? {
        Ok(()) => Outcome::Failed(reason.to_string()),
        Err(now) => Outcome::AlreadyDone(now),
    })
}

/// Finalizing as a [`stage::Stage`]: what it needs to finalize the item a queue message names.
pub struct Finalize<T> {
    pub pool: MySqlPool,
    pub drive: DriveClient<T>,
    pub mailer: Mailer,
}

impl<T: AccessToken> stage::Stage for Finalize<T> {
    const NAME: Stage = Stage::Finalize;

    async fn run(&self, item_id: u64) -> Result<stage::Outcome, StoreError> {
        Ok(match finalize_item(&self.pool, &self.drive, &self.mailer, item_id).await? {
            Outcome::Completed { order_completed: true } => {
                stage::Outcome::Done("shared, emailed, completed; the order is completed".into())
            }
            Outcome::Completed { order_completed: false } => stage::Outcome::Done("shared, emailed, completed".into()),
            Outcome::AlreadyDone(status) => stage::Outcome::Skipped(format!("the item is {status}")),
            Outcome::OrderClosed(status) => stage::Outcome::Skipped(format!("the order is {status}")),
            Outcome::UnknownItem => stage::Outcome::Skipped("no such item".into()),
            Outcome::Retry(reason) => stage::Outcome::Retry(reason),
            Outcome::Failed(reason) => stage::Outcome::Failed(reason),
        })
    }
}

pub async fn finalize_item<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    item_id: u64,
) -> Result<Outcome, StoreError> {
    let facts = items::finalize_facts(pool, item_id).await?;
    let Some(f) = facts else { return Ok(Outcome::UnknownItem) };
    crate::support::spans::record_order_code(&f.code);
    let status = f.status;
    if status == ItemStatus::Revoked {
        // A refund's message: the access it could not take back then (Drive unavailable).
        return match drive_access::take_back(pool, drive, item_id, None).await {
            Ok(removed) => {
                if removed > 0 {
                    tracing::info!(item_id, removed, "access of a refunded item taken back");
                }
                outbox::mark_consumed(&mut *pool.acquire().await?, Queue::Finalize, &[item_id]).await?;
                Ok(Outcome::AlreadyDone(status))
            }
            Err(AccessError::Store(e)) => Err(e),
            Err(AccessError::Drive(e)) => Ok(Outcome::Retry(format!("taking back a refunded item's access: {e}"))),
        };
    }
    if status != ItemStatus::Delivered {
        return Ok(Outcome::AlreadyDone(status));
    }
    let order_status = f.order_status;
    if matches!(order_status, OrderStatus::Refunded | OrderStatus::Cancelled) {
        return Ok(Outcome::OrderClosed(order_status));
    }
    let (Some(folder), Some(link)) = (f.drive_folder_id.as_deref(), f.drive_link.as_deref()) else {
        return fail(pool, item_id, "the item has no Drive folder").await;
    };
    let worker = format!("finalize-{:016x}", rand::random::<u64>());
    if !leases::take(pool, item_id, ItemStatus::Delivered, &worker, LEASE_SECS).await? {
        return Ok(Outcome::Retry("another run is finalizing this item".into()));
    }
    let outcome = finalize_held(pool, drive, mailer, item_id, &f, folder, link, order_status).await;
    // Whatever happened, the lease goes: completing or failing the item clears it already.
    if !matches!(outcome, Ok(Outcome::Completed { .. } | Outcome::Failed(_))) {
        leases::release(pool, item_id, ItemStatus::Delivered, &worker, None).await?;
    }
    outcome
}

/// The finalize of an item whose lease this run holds.
#[allow(clippy::too_many_arguments)]
async fn finalize_held<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    item_id: u64,
    f: &items::FinalizeFacts,
    folder: &str,
    link: &str,
    order_status: OrderStatus,
) -> Result<Outcome, StoreError> {
    let permission = match drive_access::grant(pool, drive, item_id, folder, &f.email).await {
        Ok(id) => id,
        Err(AccessError::Drive(e @ (DriveError::Refused { .. } | DriveError::Auth(_)))) => {
            return fail(pool, item_id, &format!("sharing: {e}")).await;
        }
        Err(AccessError::Drive(e)) => return Ok(Outcome::Retry(format!("sharing: {e}"))),
        Err(AccessError::Store(e)) => return Err(e),
    };
    items::set_permission_id(pool, item_id, &permission).await?;
    // Fixed before the first send (and before the locks below); a retry reuses it.
    let message_id = if f.sent {
        None
    } else {
        // The Message-ID the item's delivery email carries, every time it is sent.
        let fresh = f.email_message_id.clone().unwrap_or_else(|| mailer.new_message_id(&format!("delivery.{item_id}")));
        Some(items::keep_email_message_id(pool, item_id, &fresh).await?)
    };

    // A refund racing us: from here the order and the item are locked (in the order a refund
    // locks them), so its revoke either happened and is seen now, and the access just given
    // is taken back and nothing is sent; or it waits until the email is sent and the item
    // completed, and then finds the permission to remove.
    let mut tx = pool.begin().await?;
    orders::lock_in(&mut tx, f.order_id).await?;
    match items::status_for_update_in(&mut tx, item_id).await? {
        Some(ItemStatus::Delivered) => {}
        now => {
            drop(tx);
            match drive_access::take_back(pool, drive, item_id, None).await {
                Ok(_) => {}
                Err(AccessError::Store(e)) => return Err(e),
                Err(AccessError::Drive(e)) => {
                    tracing::warn!(item_id, error = %e, "the item was revoked while it was shared; access not removed yet");
                    return Ok(Outcome::Retry(format!("removing access from a revoked item: {e}")));
                }
            }
            return Ok(match now {
                None => Outcome::UnknownItem,
                Some(s) => Outcome::AlreadyDone(s),
            });
        }
    }

    if let Some(message_id) = message_id {
        let mail =
            DeliveryMail { to: &f.email, lang: &f.lang, title: &f.title, code: &f.code, link, message_id: &message_id };
        let message = match mailer.delivery(&mail) {
            Ok(m) => m,
            Err(e) => {
                drop(tx);
                return fail(pool, item_id, &format!("email: {e}")).await;
            }
        };
        match mailer.send(message).await {
            // The address is masked: logs are read by more people than orders are.
            Ok(()) => tracing::info!(to = %crate::domain::mask_email(&f.email), %message_id, "delivery email sent"),
            Err(MailError::Transient(e)) => return Ok(Outcome::Retry(format!("email: {e}"))),
            Err(e @ MailError::Permanent(_)) => {
                drop(tx);
                return fail(pool, item_id, &format!("email: {e}")).await;
            }
        }
        items::mark_email_sent_in(&mut tx, item_id).await?;
    }

    // The order's row was locked first: two items of one order finalized at once would each
    // see the other still open and neither complete the order (found by `make chaos`).
    // Locked, they take turns, and the second sees the first's item completed.
    let change =
        ItemChange::new(item_id, ItemStatus::Delivered, ItemStatus::Completed, ACTOR).because("shared and emailed");
    match items::transition_in(&mut tx, &change).await {
        Ok(_) => {}
        Err(StoreError::ItemConflict { actual, .. }) => return Ok(Outcome::AlreadyDone(actual)),
        Err(e) => return Err(e),
    }
    let open = items::open_in_order_in(&mut tx, f.order_id).await?;
    let order_completed = open == 0 && order_status == OrderStatus::Paid;
    if order_completed {
        orders::transition_in(&mut tx, f.order_id, OrderStatus::Paid, OrderStatus::Completed, ACTOR, None).await?;
    }
    tx.commit().await?;
    Ok(Outcome::Completed { order_completed })
}
