//! What a buyer fixes without writing to the seller: the delivery email sent again, and the
//! course's Drive access moved to another Google address.
//!
//! Both need the order's code and its email (in any case). A wrong guess gets the same
//! refusal as an unknown order, so nothing says whether an address belongs to an order, and
//! is counted per order and per client address: after `max_failures` in a window the scope is
//! locked for that window, for the right email too. An operator (`coursedrop-admin`) does
//! both without these checks or limits.

use serde::Serialize;
use sqlx::MySqlPool;
use thiserror::Error;

use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::mail::{AccessMovedMail, DeliveryMail, MailError, Mailer};
use crate::app::config::{ConfigError, Vars};
use crate::app::drive_access::{self, AccessError};
use crate::app::operations::{self, OpsError};
use crate::domain::{Email, EventKind, ItemStatus, OrderCode, mask_email};
use crate::store::access::{self, DeliveredItem};
use crate::store::events::{self, NewEvent};
use crate::store::{StoreError, items, orders};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfServiceSettings {
    /// `ACCESS_CHANGES_PER_ITEM` (default 2): how often a buyer may move an item's access.
    pub access_changes_per_item: u32,
    /// Wrong guesses per order or client address before a lock-out (5).
    pub max_failures: u32,
    /// `BUYER_LOCKOUT` (default 15m): the window the guesses are counted in, and the lock-out.
    pub lockout_secs: u32,
    /// `RESEND_COOLDOWN` (default 2m; `off`): between two resends a buyer asks for, so a script that
    /// knows a code and its email can't fill the buyer's mailbox.
    pub resend_cooldown_secs: u32,
}

impl Default for SelfServiceSettings {
    fn default() -> Self {
        SelfServiceSettings {
            access_changes_per_item: 2,
            max_failures: 5,
            lockout_secs: 15 * 60,
            resend_cooldown_secs: 120,
        }
    }
}

impl SelfServiceSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let d = SelfServiceSettings::default();
        let lockout = vars.duration_or("BUYER_LOCKOUT", "15m")?;
        let cooldown = vars.duration_or_off("RESEND_COOLDOWN", "2m")?.map_or(0, |d| d.num_seconds());
        Ok(SelfServiceSettings {
            access_changes_per_item: vars.parse_or("ACCESS_CHANGES_PER_ITEM", d.access_changes_per_item)?,
            max_failures: d.max_failures,
            lockout_secs: lockout.num_seconds().clamp(1, u32::MAX as i64) as u32,
            resend_cooldown_secs: cooldown.clamp(0, u32::MAX as i64) as u32,
        })
    }
}

#[derive(Debug, Error)]
pub enum SelfServiceError {
    /// The code and the email do not go together (or there is no such order).
    #[error("this order code and email do not go together")]
    Forbidden,
    #[error("too many wrong tries; try again in {retry_after_secs} s")]
    Locked { retry_after_secs: i64 },
    /// The emails were sent again a moment ago.
    #[error("the emails were sent again a moment ago; try again in {retry_after_secs} s")]
    TooSoon { retry_after_secs: i64 },
    #[error("nothing of this order has been delivered yet")]
    NotDeliveredYet,
    #[error("{0}")]
    Invalid(&'static str, String),
    /// The item's access was moved as often as a buyer may.
    #[error("{0}")]
    LimitReached(String),
    /// Another move of the same access is under way.
    #[error("the access is being moved by another request; try again in a moment")]
    Busy,
    #[error("Google Drive: {0}")]
    Drive(#[from] DriveError),
    #[error("email: {0}")]
    Mail(#[from] MailError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SelfServiceError {
    fn from(e: sqlx::Error) -> Self {
        SelfServiceError::Store(e.into())
    }
}

impl From<AccessError> for SelfServiceError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Drive(d) => SelfServiceError::Drive(d),
            AccessError::Store(s) => SelfServiceError::Store(s),
        }
    }
}

impl From<OpsError> for SelfServiceError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Mail(m) => SelfServiceError::Mail(m),
            OpsError::Drive(d) => SelfServiceError::Drive(d),
            OpsError::Store(s) => SelfServiceError::Store(s),
            OpsError::NotFound(_) | OpsError::Refused(_) => SelfServiceError::NotDeliveredYet,
            OpsError::Source(s) => SelfServiceError::Store(StoreError::Corrupt(s.to_string())),
        }
    }
}

/// Who asks, as the throttle counts them.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub code: &'a OrderCode,
    pub email: &'a str,
    pub client: Option<std::net::IpAddr>,
}

fn scopes(a: &Asker<'_>) -> Vec<String> {
    let mut s = vec![format!("order:{}", a.code)];
    if let Some(ip) = a.client {
        s.push(format!("client:{ip}"));
    }
    s
}

/// The order, if `email` is its email and neither the order nor the client is locked out.
async fn check(
    pool: &MySqlPool,
    settings: &SelfServiceSettings,
    a: &Asker<'_>,
) -> Result<access::OrderForBuyer, SelfServiceError> {
    let scopes = scopes(a);
    if let Some(secs) = access::locked_for(pool, &scopes).await? {
        return Err(SelfServiceError::Locked { retry_after_secs: secs.max(1) });
    }
    let email = Email::parse(a.email).map_err(|e| SelfServiceError::Invalid("email", e.to_string()))?;
    let order = access::order_by_code(pool, a.code.as_str()).await?;
    match order {
        Some(o) if o.email.eq_ignore_ascii_case(email.as_str()) => {
            access::clear(pool, &scopes[0]).await?;
            Ok(o)
        }
        _ => {
            for scope in &scopes {
                access::record_failure(pool, scope, settings.max_failures, settings.lockout_secs).await?;
            }
            tracing::warn!(order_code = %a.code, client = ?a.client, "self-service refused: the email does not match");
            Err(SelfServiceError::Forbidden)
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resent {
    /// One delivery email per completed item, to the address that has its access.
    pub emails_sent: usize,
}

/// Sends the delivery email of each completed item of the order again.
pub async fn resend(
    pool: &MySqlPool,
    mailer: &Mailer,
    settings: &SelfServiceSettings,
    a: &Asker<'_>,
) -> Result<Resent, SelfServiceError> {
    let order = check(pool, settings, a).await?;
    let delivered = access::delivered_items(pool, order.id).await?;
    if delivered.is_empty() {
        return Err(SelfServiceError::NotDeliveredYet);
    }
    let cooldown = settings.resend_cooldown_secs;
    if cooldown > 0
        && let Some(ago) = events::seconds_since_last(pool, order.id, EventKind::EmailResent, "buyer", cooldown).await?
    {
        return Err(SelfServiceError::TooSoon { retry_after_secs: (i64::from(cooldown) - ago).max(1) });
    }
    for item in &delivered {
        operations::resend_email(pool, mailer, item.id, "buyer").await?;
    }
    Ok(Resent { emails_sent: delivered.len() })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MovedItem {
    pub course: String,
    pub title: String,
    /// How often the item's access has been moved, this time included.
    pub access_changes: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Moved {
    pub items: Vec<MovedItem>,
    /// Whether the delivery email reached the new address's mailbox server (the access was
    /// moved either way; `resend` sends it again).
    pub emailed: bool,
}

/// What a move asks for: the new address, and optionally one course of the order.
#[derive(Debug, Clone, Copy)]
pub struct MoveRequest<'a> {
    pub new_email: &'a str,
    pub course: Option<&'a str>,
}

/// The buyer moves the access of the order's completed items (or of one) to `new_email`.
pub async fn move_access<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    settings: &SelfServiceSettings,
    a: &Asker<'_>,
    request: &MoveRequest<'_>,
) -> Result<Moved, SelfServiceError> {
    let new_email =
        Email::parse(request.new_email).map_err(|e| SelfServiceError::Invalid("new_email", e.to_string()))?;
    let order = check(pool, settings, a).await?;
    move_access_of(
        pool,
        drive,
        mailer,
        &order,
        &new_email,
        request.course,
        Some(settings.access_changes_per_item),
        "buyer",
    )
    .await
}

/// An operator moves access, without the buyer's email or a limit.
pub async fn move_access_as_operator<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    code: &OrderCode,
    new_email: &Email,
    course: Option<&str>,
    actor: &str,
) -> Result<Moved, SelfServiceError> {
    let order = access::order_by_code(pool, code.as_str())
        .await?
        .ok_or_else(|| StoreError::NotFound { kind: "order", id: code.to_string() })?;
    move_access_of(pool, drive, mailer, &order, new_email, course, None, actor).await
}

#[allow(clippy::too_many_arguments)]
async fn move_access_of<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    order: &access::OrderForBuyer,
    new_email: &Email,
    course: Option<&str>,
    limit: Option<u32>,
    actor: &str,
) -> Result<Moved, SelfServiceError> {
    let mut delivered = access::delivered_items(pool, order.id).await?;
    if let Some(course) = course {
        delivered.retain(|i| i.course.eq_ignore_ascii_case(course));
    }
    if delivered.is_empty() {
        return Err(SelfServiceError::NotDeliveredYet);
    }
    // Already there: nothing to move (a retry after a success answers the same).
    delivered.retain(|i| !i.access_email.eq_ignore_ascii_case(new_email.as_str()));
    if delivered.is_empty() {
        return Err(SelfServiceError::Invalid("new_email", "this address has the access already".into()));
    }
    // Each item's move is counted and marked under way by one compare-and-set before Drive is
    // asked, so parallel requests take turns and never pass the limit together; and every
    // item is reserved before any is changed: all move, or none.
    let mut reserved: Vec<&DeliveredItem> = Vec::with_capacity(delivered.len());
    for item in &delivered {
        if access::reserve_move(pool, item.id, new_email.as_str(), limit, MOVE_STALE_SECS).await? {
            reserved.push(item);
            continue;
        }
        for r in &reserved {
            access::undo_reservation(pool, r.id).await?;
        }
        let (changes, under_way) = access::move_state(pool, item.id).await?;
        return Err(match limit {
            Some(max) if changes >= max => SelfServiceError::LimitReached(format!(
                "the access to \"{}\" has been moved {changes} times, as often as it can be here; the seller can move it again",
                item.title
            )),
            _ if under_way => SelfServiceError::Busy,
            _ => SelfServiceError::NotDeliveredYet,
        });
    }
    let mut moved = Vec::with_capacity(reserved.len());
    for (n, item) in reserved.iter().enumerate() {
        match move_item(pool, drive, order, item, new_email, actor).await {
            Ok(Some(m)) => moved.push((*item, m)),
            Ok(None) => {}
            Err(e) => {
                for r in &reserved[n..] {
                    access::undo_reservation(pool, r.id).await?;
                }
                return Err(e);
            }
        }
    }
    if moved.is_empty() {
        return Err(SelfServiceError::NotDeliveredYet);
    }
    let emailed = tell_both_addresses(pool, mailer, order, &moved, new_email, actor).await?;
    Ok(Moved { items: moved.into_iter().map(|(_, m)| m).collect(), emailed })
}

/// A move that began this long ago and never finished died: it no longer blocks the next.
const MOVE_STALE_SECS: u32 = 15 * 60;

/// The new address gets each course's delivery email; the old one is told what changed,
/// when, and how to reach the seller (someone who knew the order's code and email moved it,
/// and the owner of the old address should know). Both are written to the order's events.
/// `false`: a mail was not accepted (the access moved either way; `resend` sends it again).
async fn tell_both_addresses(
    pool: &MySqlPool,
    mailer: &Mailer,
    order: &access::OrderForBuyer,
    moved: &[(&DeliveredItem, MovedItem)],
    new_email: &Email,
    actor: &str,
) -> Result<bool, SelfServiceError> {
    let mut emailed = true;
    let when = crate::domain::vietnam_time(chrono::Utc::now());
    for (item, _) in moved {
        let message_id = mailer.new_message_id(&format!("delivery.{}.moved", item.id));
        let to_new = DeliveryMail {
            to: new_email.as_str(),
            lang: &order.lang,
            title: &item.title,
            code: &order.code,
            link: &item.drive_link,
            message_id: &message_id,
        };
        let notice_id = mailer.new_message_id(&format!("access-moved.{}", item.id));
        let new_masked = mask_email(new_email.as_str());
        let to_old = AccessMovedMail {
            to: &item.access_email,
            lang: &order.lang,
            title: &item.title,
            code: &order.code,
            new_address: &new_masked,
            when: &when,
            message_id: &notice_id,
        };
        for (who, sent) in [
            ("new", send(mailer, mailer.delivery(&to_new)).await),
            ("old", send(mailer, mailer.access_moved(&to_old)).await),
        ] {
            if let Err(e) = &sent {
                tracing::warn!(item_id = item.id, error = %e, "the email to the {who} address was not sent");
                emailed = false;
            }
        }
        let detail =
            format!("the previous address {} was told of the move to {new_masked}", mask_email(&item.access_email));
        let event = NewEvent {
            order_id: order.id,
            item_id: Some(item.id),
            kind: EventKind::AccessMoveNotified,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        };
        events::record(&mut *pool.acquire().await?, &event).await?;
    }
    Ok(emailed)
}

async fn send(mailer: &Mailer, message: Result<lettre::Message, MailError>) -> Result<(), MailError> {
    mailer.send(message?).await
}

/// Gives `new_email` reader access (recorded as the item's grant), takes back every other
/// permission the item holds (the old address's, one an earlier stopped move gave), then
/// records the move under the order's lock. Each step is safe to repeat. `None`: the item
/// was revoked meanwhile (a refund), and the access just given is taken back too.
async fn move_item<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    order: &access::OrderForBuyer,
    item: &DeliveredItem,
    new_email: &Email,
    actor: &str,
) -> Result<Option<MovedItem>, SelfServiceError> {
    let folder = &item.drive_folder_id;
    let given = drive_access::grant(pool, drive, item.id, folder, new_email.as_str()).await?;
    drive_access::take_back(pool, drive, item.id, Some(&given)).await?;
    // The order first, as finalize and a refund lock it.
    let mut tx = pool.begin().await?;
    orders::lock_in(&mut tx, order.id).await?;
    if items::status_for_update_in(&mut tx, item.id).await? != Some(ItemStatus::Completed) {
        drop(tx);
        drive_access::take_back(pool, drive, item.id, None).await?;
        access::clear_pending(pool, item.id).await?;
        return Ok(None);
    }
    access::record_move_in(&mut tx, item.id, new_email.as_str(), &given).await?;
    let detail =
        format!("Drive access moved from {} to {}", mask_email(&item.access_email), mask_email(new_email.as_str()));
    events::record(
        &mut tx,
        &NewEvent {
            order_id: order.id,
            item_id: Some(item.id),
            kind: EventKind::AccessMoved,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(item_id = item.id, order_code = %order.code, %actor, "{detail}");
    Ok(Some(MovedItem {
        course: item.course.clone(),
        title: item.title.clone(),
        access_changes: item.access_changes + 1,
    }))
}
