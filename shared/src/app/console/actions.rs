//! What staff do from the console. Each action checks the role first (nothing is read or
//! changed for a refused one), calls the same use case the CLI calls, and is recorded: in the
//! order's events with `staff:<email>` as the actor when it touches an order, in the staff
//! audit otherwise. What a change queues is published at once; if SQS does not answer, the
//! outbox keeps it and the sweeper publishes it within a minute.

use serde::Serialize;
use sqlx::MySqlPool;

use super::{ConsoleError, Staff};
use crate::adapters::drive::AccessToken;
use crate::adapters::drive::upload::DriveClient;
use crate::adapters::mail::Mailer;
use crate::adapters::queue::Publisher;
use crate::adapters::source::S3Source;
use crate::app::operations::{self, CouponToAdd, CourseToAdd};
use crate::app::payments::{self, PaymentOutcome, hold};
use crate::app::{refund, relay, self_service};
use crate::domain::course::DeliveryMode;
use crate::domain::staff::StaffAction;
use crate::domain::{CouponCode, CourseSlug, Email, OrderCode, Vnd};
use crate::store::outbox::OutboxMessage;
use crate::store::{self, staff as audit};

/// Whether what a change queued is on its queue now, or waits in the outbox for the sweeper
/// (within a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Queued {
    Nothing,
    Now,
    Later,
}

/// What a payment counted as when it was attached or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CountedAs {
    /// The order is paid now.
    Paid,
    /// The order has part of its price.
    Partly,
    /// Kept on the order and flagged for a look (it was cancelled, refunded or paid already).
    Flagged,
}

/// What an action did: facts, for the page that follows it to put in words in its language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Done {
    Retried {
        item: u64,
        queued: Queued,
    },
    StageSentAgain {
        item: u64,
        queued: Queued,
    },
    EmailResent {
        item: u64,
    },
    AccessMoved {
        courses: usize,
    },
    Refunded {
        code: String,
        courses: usize,
        permissions: usize,
        drive_later: usize,
        queued: Queued,
    },
    PaymentCounted {
        payment: u64,
        order: String,
        counted_as: CountedAs,
        queued: Queued,
    },
    /// Released, but the payment it resembled paid no order: it waits to be attached.
    ReleasedWithoutOrder {
        payment: u64,
    },
    Dropped {
        payment: u64,
    },
    Handled {
        payment: u64,
    },
    CourseAdded {
        slug: String,
        files: usize,
    },
    CourseSaved {
        slug: String,
    },
    CourseMoved {
        slug: String,
        source: String,
        files: usize,
    },
    OnSale {
        slug: String,
        active: bool,
    },
    CouponAdded {
        code: String,
    },
    CouponDisabled {
        code: String,
    },
}

async fn publish<P: Publisher>(pool: &MySqlPool, publisher: &P, rows: &[OutboxMessage]) -> Queued {
    if rows.is_empty() {
        return Queued::Nothing;
    }
    let report = relay::publish_all(pool, publisher, rows).await;
    if report.failed == 0 { Queued::Now } else { Queued::Later }
}

async fn record(
    pool: &MySqlPool,
    staff: &Staff,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) -> Result<(), ConsoleError> {
    audit::audit(&mut *pool.acquire().await?, &staff.actor(), action, Some(subject), detail).await?;
    Ok(())
}

/// Sends a failed item back to the stage it failed in.
pub async fn retry<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    staff: &Staff,
    item_id: u64,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Retry)?;
    let changed = operations::retry_failed(pool, item_id, &staff.actor()).await?;
    let queued = publish(pool, publisher, changed.outbox.as_slice()).await;
    Ok(Done::Retried { item: item_id, queued })
}

/// Sends a stuck item's stage message again now (the sweeper does it once per deadline).
pub async fn send_again<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    staff: &Staff,
    item_id: u64,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Retry)?;
    match store::console::resend_stage(pool, item_id, &staff.actor()).await? {
        None => Err(ConsoleError::NotFound(format!("no item {item_id}"))),
        Some(None) => Err(ConsoleError::Refused(format!("item {item_id} is in no stage that a message starts"))),
        Some(Some(message)) => {
            let queued = publish(pool, publisher, std::slice::from_ref(&message)).await;
            Ok(Done::StageSentAgain { item: item_id, queued })
        }
    }
}

pub async fn resend(pool: &MySqlPool, mailer: &Mailer, staff: &Staff, item_id: u64) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Resend)?;
    operations::resend_email(pool, mailer, item_id, &staff.actor()).await?;
    Ok(Done::EmailResent { item: item_id })
}

pub async fn move_access<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    mailer: &Mailer,
    staff: &Staff,
    code: &OrderCode,
    to: &str,
    course: Option<&str>,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::MoveAccess)?;
    let to = Email::parse(to).map_err(|e| ConsoleError::invalid("to", e.to_string()))?;
    let moved = self_service::move_access_as_operator(pool, drive, mailer, code, &to, course, &staff.actor()).await?;
    Ok(Done::AccessMoved { courses: moved.items.len() })
}

/// Refunds an order. `confirm_vnd` is the amount the person confirmed on the page: it must be
/// what the order was paid, so a refund is never made of an order that changed under them.
pub async fn refund<T: AccessToken, P: Publisher>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    publisher: &P,
    staff: &Staff,
    code: &OrderCode,
    reason: &str,
    confirm_vnd: Option<i64>,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Refund)?;
    if reason.trim().is_empty() {
        return Err(ConsoleError::invalid(
            "reason",
            "say why the order is refunded (it is kept in the order's events)",
        ));
    }
    let order = store::console::order_row(pool, code.as_str())
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {code}")))?;
    if confirm_vnd != Some(order.paid_vnd) {
        return Err(ConsoleError::invalid(
            "confirm_vnd",
            format!("confirm the amount: order {code} was paid {} VND", order.paid_vnd),
        ));
    }
    let report = refund::refund(pool, drive, code, &staff.actor(), reason.trim()).await?;
    let queued = publish(pool, publisher, report.outbox.as_slice()).await;
    Ok(Done::Refunded {
        code: code.to_string(),
        courses: report.items_revoked,
        permissions: report.permissions_removed,
        drive_later: report.folders_left.len(),
        queued,
    })
}

/// The words of a payment's outcome, for an attach or a release.
fn counted(payment: u64, outcome: &PaymentOutcome, queued: Queued) -> Result<Done, ConsoleError> {
    let (order, counted_as) = match outcome {
        PaymentOutcome::Applied { order_code, became_paid: true, .. } => (order_code, CountedAs::Paid),
        PaymentOutcome::Applied { order_code, .. } => (order_code, CountedAs::Partly),
        PaymentOutcome::Flagged { order_code, .. } => (order_code, CountedAs::Flagged),
        other => return Err(ConsoleError::Refused(format!("payment {payment} was not counted: {other:?}"))),
    };
    Ok(Done::PaymentCounted { payment, order: order.clone(), counted_as, queued })
}

/// Attaches a transfer that matched no order to the order it was for.
pub async fn attach<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    staff: &Staff,
    payment_id: u64,
    code: &OrderCode,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Payments)?;
    let recorded = payments::attach(pool, payment_id, code, &staff.actor()).await?;
    let queued = publish(pool, publisher, recorded.outbox.as_slice()).await;
    counted(payment_id, &recorded.outcome, queued)
}

pub async fn release<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    staff: &Staff,
    payment_id: u64,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Payments)?;
    let released = hold::release(pool, payment_id, &staff.actor()).await?;
    match released.recorded {
        Some((_, recorded)) => {
            let queued = publish(pool, publisher, recorded.outbox.as_slice()).await;
            counted(payment_id, &recorded.outcome, queued)
        }
        None => Ok(Done::ReleasedWithoutOrder { payment: payment_id }),
    }
}

pub async fn drop_held(pool: &MySqlPool, staff: &Staff, payment_id: u64) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Payments)?;
    hold::drop_held(pool, payment_id, &staff.actor()).await?;
    Ok(Done::Dropped { payment: payment_id })
}

pub async fn mark_handled(pool: &MySqlPool, staff: &Staff, payment_id: u64, note: &str) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Payments)?;
    let note = note.trim();
    if note.is_empty() {
        return Err(ConsoleError::invalid("note", "say how it was handled (refunded at the bank, not a purchase…)"));
    }
    if !store::console::mark_handled(pool, payment_id, &staff.actor(), note).await? {
        return Err(ConsoleError::Refused(format!(
            "payment {payment_id} is not an unhandled transfer without an order"
        )));
    }
    Ok(Done::Handled { payment: payment_id })
}

// ------------------------------------------------------------------ catalog and coupons

pub async fn add_course<T: AccessToken>(
    pool: &MySqlPool,
    s3: &S3Source,
    drive: Option<&DriveClient<T>>,
    staff: &Staff,
    course: &CourseToAdd<'_>,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Catalog)?;
    let added = operations::add_course(pool, s3, drive, course).await?;
    let detail = format!("{} VND, {}, {} files", course.price.get(), added.source, added.files);
    record(pool, staff, "course.add", &added.slug, Some(&detail)).await?;
    Ok(Done::CourseAdded { slug: added.slug, files: added.files })
}

/// Changes what a course is called and costs; orders already placed keep their price.
pub async fn edit_course(
    pool: &MySqlPool,
    staff: &Staff,
    slug: &CourseSlug,
    title: &str,
    price: Vnd,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Catalog)?;
    let title = title.trim();
    if title.is_empty() {
        return Err(ConsoleError::invalid("title", "the title is empty"));
    }
    if !store::catalog::edit(pool, slug, title, price).await? {
        return Err(ConsoleError::NotFound(format!("no course {slug}")));
    }
    record(pool, staff, "course.edit", slug.as_str(), Some(&format!("{title}; {} VND", price.get()))).await?;
    Ok(Done::CourseSaved { slug: slug.to_string() })
}

/// Moves a course to another source or delivery mode, after the same check as adding one.
pub async fn change_source<T: AccessToken>(
    pool: &MySqlPool,
    s3: &S3Source,
    drive: Option<&DriveClient<T>>,
    staff: &Staff,
    slug: &CourseSlug,
    source: &str,
    mode: DeliveryMode,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Catalog)?;
    let checked = operations::change_source(pool, s3, drive, slug, source.trim(), mode).await?;
    let detail = format!("{} ({}), {} files", checked.stored, mode.as_str(), checked.files);
    record(pool, staff, "course.source", slug.as_str(), Some(&detail)).await?;
    Ok(Done::CourseMoved { slug: slug.to_string(), source: checked.stored, files: checked.files })
}

pub async fn set_course_active(
    pool: &MySqlPool,
    staff: &Staff,
    slug: &CourseSlug,
    active: bool,
) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Catalog)?;
    operations::set_course_active(pool, slug, active).await?;
    let action = if active { "course.activate" } else { "course.deactivate" };
    record(pool, staff, action, slug.as_str(), None).await?;
    Ok(Done::OnSale { slug: slug.to_string(), active })
}

pub async fn add_coupon(pool: &MySqlPool, staff: &Staff, coupon: &CouponToAdd<'_>) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Coupons)?;
    let added = operations::add_coupon(pool, coupon).await?;
    record(pool, staff, "coupon.add", &added.code, Some(&coupon.discount.to_string())).await?;
    Ok(Done::CouponAdded { code: added.code })
}

pub async fn disable_coupon(pool: &MySqlPool, staff: &Staff, code: &CouponCode) -> Result<Done, ConsoleError> {
    staff.require(StaffAction::Coupons)?;
    operations::disable_coupon(pool, code).await?;
    record(pool, staff, "coupon.disable", code.as_str(), None).await?;
    Ok(Done::CouponDisabled { code: code.to_string() })
}
