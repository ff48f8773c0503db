//! What an operator does by hand, as library calls (the `coursedrop-admin` CLI maps its
//! commands onto these): manage the catalog, look at orders, items and their timelines,
//! resend a delivery email (stuck items are the sweeper's: `sweeper::stuck_items`). Each change is recorded in `order_events` with the
//! operator as the actor, like every other change. Retry, refund, cancel and attaching a
//! payment live with their flows (`store::items::retry_failed`, `refund`,
//! `store::orders::cancel_unpaid`, `payments::attach`).

use serde::Serialize;
use sqlx::MySqlPool;
use thiserror::Error;

use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::mail::{DeliveryMail, MailError, Mailer};
use crate::adapters::source::drive::{self as source_drive, Shortcuts, TreeError};
use crate::adapters::source::{CourseSource, DeliveryMode, S3Source, SourceError};
use crate::domain::{CouponCode, CourseSlug, Discount, EventKind, ItemStatus, OrderCode, OrderStatus, Vnd};
use crate::store::catalog::{self, Course, NewCourse};
use crate::store::coupons;
use crate::store::events::{self, Event, NewEvent};
use crate::store::reports;
pub use crate::store::reports::{ItemSummary, OrderSummary};
use crate::store::{StoreError, is_duplicate_key};

#[derive(Debug, Error)]
pub enum OpsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("the course source: {0}")]
    Source(#[from] SourceError),
    #[error("Google Drive: {0}")]
    Drive(#[from] DriveError),
    #[error("email: {0}")]
    Mail(#[from] MailError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OpsError {
    fn from(e: sqlx::Error) -> Self {
        OpsError::Store(e.into())
    }
}

// ------------------------------------------------------------------ catalog

#[derive(Debug, Clone, Serialize)]
pub struct AddedCourse {
    pub id: u64,
    pub slug: String,
    /// The source as stored (`drive://<id>` for a Drive link given as the browser shows it).
    pub source: String,
    pub delivery_mode: DeliveryMode,
    pub files: usize,
    pub bytes: u64,
}

/// A course as the operator describes it.
#[derive(Debug, Clone)]
pub struct CourseToAdd<'a> {
    pub slug: &'a CourseSlug,
    pub title: &'a str,
    pub price: Vnd,
    /// `s3://bucket/prefix/`, `drive://<folderId>` or a Drive folder's address.
    pub source: &'a str,
    pub mode: DeliveryMode,
    pub lms_course_id: Option<&'a str>,
}

/// A course source that passed the pre-sale check: as stored, with what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedSource {
    /// `s3://…` or `drive://<id>` (a Drive link given as the browser shows it becomes this).
    pub stored: String,
    pub files: usize,
    pub bytes: u64,
}

/// Checks that a source exists, holds files, and can be delivered as asked: a typo in the
/// prefix, a folder our Drive identity can't read, a copy-protected file or a folder it
/// can't share is caught now, not when the first buyer has paid. `drive` is needed for a
/// Drive source only.
pub async fn check_source<T: AccessToken>(
    s3: &S3Source,
    drive: Option<&DriveClient<T>>,
    source: &str,
    mode: DeliveryMode,
) -> Result<CheckedSource, OpsError> {
    let source = CourseSource::parse(source)?;
    let (files, bytes) = match &source {
        CourseSource::S3(location) => {
            if mode == DeliveryMode::Share {
                return Err(OpsError::Refused(
                    "only a Drive folder can be shared; an S3 course is delivered by copy".into(),
                ));
            }
            let objects = s3.list(location).await?;
            if objects.is_empty() {
                return Err(OpsError::Refused(format!("{location} holds no files; upload the course there first")));
            }
            (objects.len(), objects.iter().map(|o| o.size).sum())
        }
        CourseSource::Drive(folder) => {
            let drive = drive.ok_or_else(|| {
                OpsError::Refused("a Drive source needs the Drive credentials (DRIVE_* settings) here".into())
            })?;
            let not_readable = || {
                OpsError::Refused(format!(
                    "{folder} is not a folder our Drive identity can read; share it with that identity (Viewer for copy, Editor for share)"
                ))
            };
            let facts = drive.file(&folder.id).await?.ok_or_else(not_readable)?;
            if !facts.is_folder() {
                return Err(OpsError::Refused(format!("{folder} is a file; give the course's folder")));
            }
            // What the deliver job will list: shortcuts followed, as it does by default.
            let objects = match source_drive::list_tree(drive, folder, Shortcuts::Follow).await {
                Ok(o) => o,
                Err(TreeError::Source(e)) => return Err(e.into()),
                Err(TreeError::Drive(e)) => return Err(e.into()),
            };
            if objects.is_empty() {
                return Err(OpsError::Refused(format!("{folder} holds no files; put the course there first")));
            }
            match mode {
                DeliveryMode::Copy => source_drive::refuse_copy_protected(&objects)?,
                DeliveryMode::Share if facts.can_share == Some(false) => {
                    return Err(SourceError::CannotShare(folder.to_string()).into());
                }
                DeliveryMode::Share => {}
            }
            (objects.len(), objects.iter().map(|o| o.size).sum())
        }
    };
    Ok(CheckedSource { stored: source.to_string(), files, bytes })
}

/// Adds a course after [`check_source`].
pub async fn add_course<T: AccessToken>(
    pool: &MySqlPool,
    s3: &S3Source,
    drive: Option<&DriveClient<T>>,
    c: &CourseToAdd<'_>,
) -> Result<AddedCourse, OpsError> {
    if c.title.trim().is_empty() {
        return Err(OpsError::Refused("the title is empty".into()));
    }
    let checked = check_source(s3, drive, c.source, c.mode).await?;
    let new = NewCourse {
        slug: c.slug,
        title: c.title.trim(),
        price: c.price,
        source: &checked.stored,
        delivery_mode: c.mode,
        lms_course_id: c.lms_course_id,
    };
    let id = match catalog::insert(&mut *pool.acquire().await?, &new).await {
        Ok(id) => id,
        Err(StoreError::Database(e)) if is_duplicate_key(&e, "uq_courses_slug") => {
            return Err(OpsError::Refused(format!("a course with slug {} exists already", c.slug)));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(AddedCourse {
        id,
        slug: c.slug.to_string(),
        source: checked.stored,
        delivery_mode: c.mode,
        files: checked.files,
        bytes: checked.bytes,
    })
}

/// Moves a course to another source or delivery mode, after [`check_source`]. What is
/// delivered from now on comes from there; courses already delivered are not touched.
pub async fn change_source<T: AccessToken>(
    pool: &MySqlPool,
    s3: &S3Source,
    drive: Option<&DriveClient<T>>,
    slug: &CourseSlug,
    source: &str,
    mode: DeliveryMode,
) -> Result<CheckedSource, OpsError> {
    if catalog::by_slug(&mut *pool.acquire().await?, slug).await?.is_none() {
        return Err(OpsError::NotFound(format!("no course {slug}")));
    }
    let checked = check_source(s3, drive, source, mode).await?;
    catalog::set_source(pool, slug, &checked.stored, mode).await?;
    Ok(checked)
}

/// Every course, active or not, by slug.
pub async fn courses(pool: &MySqlPool) -> Result<Vec<Course>, OpsError> {
    Ok(catalog::all(pool).await?)
}

/// Takes a course off sale (or back on). Orders already made keep it.
pub async fn set_course_active(pool: &MySqlPool, slug: &CourseSlug, active: bool) -> Result<(), OpsError> {
    if !catalog::set_active(pool, slug, active).await?
        && catalog::by_slug(&mut *pool.acquire().await?, slug).await?.is_none()
    {
        return Err(OpsError::NotFound(format!("no course {slug}")));
    }
    Ok(())
}

// ------------------------------------------------------------------ coupons

/// A coupon as the operator describes it.
#[derive(Debug, Clone)]
pub struct CouponToAdd<'a> {
    pub code: &'a CouponCode,
    pub discount: Discount,
    pub max_uses: Option<u32>,
    pub valid_from: Option<chrono::DateTime<chrono::Utc>>,
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Courses it is limited to; none: every course.
    pub courses: &'a [CourseSlug],
}

/// Adds a coupon; refused when the code exists, a course does not, or the dates are reversed.
pub async fn add_coupon(pool: &MySqlPool, c: &CouponToAdd<'_>) -> Result<coupons::Coupon, OpsError> {
    if let (Some(from), Some(until)) = (c.valid_from, c.valid_until)
        && from >= until
    {
        return Err(OpsError::Refused("the coupon ends before it starts (--from is not before --until)".into()));
    }
    if c.max_uses == Some(0) {
        return Err(OpsError::Refused("--max-uses 0 would make a coupon nobody can use".into()));
    }
    let mut course_ids = Vec::with_capacity(c.courses.len());
    for slug in c.courses {
        let course = catalog::by_slug(&mut *pool.acquire().await?, slug).await?;
        course_ids.push(course.ok_or_else(|| OpsError::NotFound(format!("no course {slug}")))?.id);
    }
    let new = coupons::NewCoupon {
        code: c.code,
        discount: c.discount,
        max_uses: c.max_uses,
        valid_from: c.valid_from,
        valid_until: c.valid_until,
        course_ids: &course_ids,
    };
    match coupons::insert(pool, &new).await {
        Ok(_) => {}
        Err(StoreError::Database(e)) if is_duplicate_key(&e, "uq_coupons_code") => {
            return Err(OpsError::Refused(format!("there is a coupon {} already", c.code)));
        }
        Err(e) => return Err(e.into()),
    }
    coupons::by_code(&mut *pool.acquire().await?, c.code)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("coupon {} vanished as it was added", c.code)))
}

pub async fn coupons(pool: &MySqlPool) -> Result<Vec<coupons::Coupon>, OpsError> {
    Ok(coupons::all(pool).await?)
}

/// Takes a coupon off: orders placed with it keep their price; no new order can use it.
pub async fn disable_coupon(pool: &MySqlPool, code: &CouponCode) -> Result<(), OpsError> {
    if !coupons::disable(pool, code).await? && coupons::by_code(&mut *pool.acquire().await?, code).await?.is_none() {
        return Err(OpsError::NotFound(format!("no coupon {code}")));
    }
    Ok(())
}

// ------------------------------------------------------------------ orders and items

/// Orders, newest first, optionally in one status.
pub async fn orders(pool: &MySqlPool, status: Option<OrderStatus>, limit: u32) -> Result<Vec<OrderSummary>, OpsError> {
    Ok(reports::orders(pool, status, limit).await?)
}

pub async fn order(pool: &MySqlPool, code: &OrderCode) -> Result<OrderSummary, OpsError> {
    reports::order(pool, code).await?.ok_or_else(|| OpsError::NotFound(format!("no order {code}")))
}

/// Items, most recently changed first, optionally in one status.
pub async fn items(pool: &MySqlPool, status: Option<ItemStatus>, limit: u32) -> Result<Vec<ItemSummary>, OpsError> {
    Ok(reports::items(pool, status, limit).await?)
}

pub async fn items_of(pool: &MySqlPool, order_id: u64) -> Result<Vec<ItemSummary>, OpsError> {
    Ok(reports::items_of(pool, order_id).await?)
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub order: OrderSummary,
    pub items: Vec<ItemSummary>,
    pub events: Vec<Event>,
}

/// An order with its items and every recorded change, oldest first.
pub async fn timeline(pool: &MySqlPool, code: &OrderCode) -> Result<Timeline, OpsError> {
    let order = order(pool, code).await?;
    let items = items_of(pool, order.id).await?;
    let events = events::for_order(&mut *pool.acquire().await?, order.id).await?;
    Ok(Timeline { order, items, events })
}

// ------------------------------------------------------------------ email

#[derive(Debug, Clone, Serialize)]
pub struct Resent {
    pub item_id: u64,
    pub to: String,
    pub message_id: String,
}

/// Sends a failed item back to the status its failed stage starts from, with that stage's
/// outbox row (the caller publishes it; if it cannot, the sweeper does).
pub async fn retry_failed(
    pool: &MySqlPool,
    item_id: u64,
    actor: &str,
) -> Result<crate::store::items::Transitioned, OpsError> {
    crate::store::items::retry_failed(pool, item_id, actor).await.map_err(|e| match e {
        StoreError::ItemConflict { actual, .. } => {
            OpsError::Refused(format!("item {item_id} is {actual}, not failed: nothing to retry"))
        }
        StoreError::NotFound { .. } => OpsError::NotFound(format!("no item {item_id}")),
        e => e.into(),
    })
}

/// Sends a completed item's delivery email again (the buyer lost it, or it went to spam),
/// as a new message, and records that it was sent.
pub async fn resend_email(pool: &MySqlPool, mailer: &Mailer, item_id: u64, actor: &str) -> Result<Resent, OpsError> {
    let facts = reports::resend_facts(pool, item_id).await?;
    let f = facts.ok_or_else(|| OpsError::NotFound(format!("no item {item_id}")))?;
    let status = f.status;
    let link = match (status, f.drive_link) {
        (ItemStatus::Completed, Some(link)) => link,
        _ => {
            return Err(OpsError::Refused(format!(
                "item {item_id} is {status}: only a completed item's email can be resent"
            )));
        }
    };
    let message_id = mailer.new_message_id(&format!("delivery.{item_id}.resent"));
    let mail = DeliveryMail {
        to: &f.email,
        lang: &f.lang,
        title: &f.title,
        code: &f.code,
        link: &link,
        message_id: &message_id,
    };
    mailer.send(mailer.delivery(&mail)?).await?;
    let detail = format!("delivery email resent as {message_id}");
    events::record(
        &mut *pool.acquire().await?,
        &NewEvent {
            order_id: f.order_id,
            item_id: Some(item_id),
            kind: EventKind::EmailResent,
            from_status: None,
            to_status: None,
            actor,
            detail: Some(&detail),
        },
    )
    .await?;
    Ok(Resent { item_id, to: f.email, message_id })
}
