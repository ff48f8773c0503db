//! Finalizing a delivered item: share its Drive folder with the buyer (reader), email the
//! link exactly once, mark it completed, and complete the order with its last item.
//!
//! The email is sent once per item even when the message comes twice: the Message-ID is
//! fixed and stored before sending, and the send is recorded after. One window no system can
//! close remains: the function dies after the SMTP server accepted the mail but before the
//! send was recorded. The retry then sends again with the same Message-ID, and mail clients
//! show one message.

use sqlx::{FromRow, MySqlPool};

use crate::domain::{ItemStatus, OrderStatus, Stage, Status};
use crate::drive::upload::DriveClient;
use crate::drive::{AccessToken, DriveError};
use crate::mail::{DeliveryMail, MailError, Mailer};
use crate::store::items::{self, ItemChange};
use crate::store::{StoreError, orders};

const ACTOR: &str = "finalize";

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

#[derive(FromRow)]
struct Facts {
    status: String,
    order_id: u64,
    order_status: String,
    email: String,
    lang: String,
    code: String,
    title: String,
    drive_folder_id: Option<String>,
    drive_link: Option<String>,
    email_message_id: Option<String>,
    sent: bool,
}

/// The `Message-ID` an item's delivery email carries, every time it is sent.
fn new_message_id(item_id: u64, domain: &str) -> String {
    format!("<delivery.{item_id}.{:016x}@{domain}>", rand::random::<u64>())
}

async fn fail(pool: &MySqlPool, item_id: u64, reason: &str) -> Result<Outcome, StoreError> {
    let change = ItemChange::failure(item_id, ItemStatus::Delivered, Stage::Finalize, reason, ACTOR);
    Ok(match items::transition_unless_moved(pool, &change).await? {
        Ok(_) => Outcome::Failed(reason.to_string()),
        Err(now) => Outcome::AlreadyDone(now),
    })
}

/// Makes sure the buyer can read the folder: existing access is success; a silent share to
/// an address with no Google account is refused by Drive, so that one goes with Drive's own
/// invitation.
async fn share<T: AccessToken>(drive: &DriveClient<T>, folder: &str, email: &str) -> Result<(), DriveError> {
    let has_access = drive
        .permissions(folder)
        .await?
        .iter()
        .any(|p| p.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(email)));
    if has_access {
        return Ok(());
    }
    match drive.share_reader(folder, email, false).await {
        Err(DriveError::Refused { reason, .. }) if reason == "invalidSharingRequest" => {
            drive.share_reader(folder, email, true).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

pub async fn finalize_item<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    item_id: u64,
) -> Result<Outcome, StoreError> {
    let facts: Option<Facts> = sqlx::query_as(
        "SELECT i.status, o.id AS order_id, o.status AS order_status, o.email, o.lang, o.code, c.title,
                i.drive_folder_id, i.drive_link, i.email_message_id, i.email_sent_at IS NOT NULL AS sent
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id WHERE i.id = ?",
    )
    .bind(item_id)
    .fetch_optional(pool)
    .await?;
    let Some(f) = facts else { return Ok(Outcome::UnknownItem) };
    crate::telemetry::record_order_code(&f.code);
    let status = ItemStatus::parse(&f.status)?;
    if status != ItemStatus::Delivered {
        return Ok(Outcome::AlreadyDone(status));
    }
    let order_status = OrderStatus::parse(&f.order_status)?;
    if matches!(order_status, OrderStatus::Refunded | OrderStatus::Cancelled) {
        return Ok(Outcome::OrderClosed(order_status));
    }
    let (Some(folder), Some(link)) = (f.drive_folder_id.as_deref(), f.drive_link.as_deref()) else {
        return fail(pool, item_id, "the item has no Drive folder").await;
    };

    match share(drive, folder, &f.email).await {
        Ok(()) => {}
        Err(e @ (DriveError::Refused { .. } | DriveError::Auth(_))) => {
            return fail(pool, item_id, &format!("sharing: {e}")).await;
        }
        Err(e) => return Ok(Outcome::Retry(format!("sharing: {e}"))),
    }

    if !f.sent {
        let domain = mailer.from_address().email.domain().to_string();
        // Fixed before the first send; a retry reuses it.
        sqlx::query("UPDATE order_items SET email_message_id = COALESCE(email_message_id, ?) WHERE id = ?")
            .bind(f.email_message_id.clone().unwrap_or_else(|| new_message_id(item_id, &domain)))
            .bind(item_id)
            .execute(pool)
            .await?;
        let message_id: String = sqlx::query_scalar("SELECT email_message_id FROM order_items WHERE id = ?")
            .bind(item_id)
            .fetch_one(pool)
            .await?;
        let mail =
            DeliveryMail { to: &f.email, lang: &f.lang, title: &f.title, code: &f.code, link, message_id: &message_id };
        let message = match mailer.delivery(&mail) {
            Ok(m) => m,
            Err(e) => return fail(pool, item_id, &format!("email: {e}")).await,
        };
        match mailer.send(message).await {
            // The address is masked: logs are read by more people than orders are.
            Ok(()) => tracing::info!(to = %crate::domain::mask_email(&f.email), %message_id, "delivery email sent"),
            Err(MailError::Transient(e)) => return Ok(Outcome::Retry(format!("email: {e}"))),
            Err(e @ MailError::Permanent(_)) => return fail(pool, item_id, &format!("email: {e}")).await,
        }
        sqlx::query("UPDATE order_items SET email_sent_at = NOW(3) WHERE id = ? AND email_sent_at IS NULL")
            .bind(item_id)
            .execute(pool)
            .await?;
    }

    let mut tx = pool.begin().await?;
    // The order's row first: two items of one order finalized at once would each see the other
    // still open and neither complete the order (found by `make chaos`). Locked, they take
    // turns, and the second sees the first's item completed.
    sqlx::query("SELECT id FROM orders WHERE id = ? FOR UPDATE").bind(f.order_id).execute(&mut *tx).await?;
    let change =
        ItemChange::new(item_id, ItemStatus::Delivered, ItemStatus::Completed, ACTOR).because("shared and emailed");
    match items::transition_in(&mut tx, &change).await {
        Ok(_) => {}
        Err(StoreError::ItemConflict { actual, .. }) => return Ok(Outcome::AlreadyDone(actual)),
        Err(e) => return Err(e),
    }
    // A locking read: the latest committed rows, not the transaction's snapshot.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_items WHERE order_id = ? AND status <> 'completed' LOCK IN SHARE MODE",
    )
    .bind(f.order_id)
    .fetch_one(&mut *tx)
    .await?;
    let order_completed = open == 0 && order_status == OrderStatus::Paid;
    if order_completed {
        orders::transition_in(&mut tx, f.order_id, OrderStatus::Paid, OrderStatus::Completed, ACTOR, None).await?;
    }
    tx.commit().await?;
    Ok(Outcome::Completed { order_completed })
}
