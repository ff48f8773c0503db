//! Domain types: validated on construction, free of I/O.

pub mod bank_feed;
pub mod brand;
pub mod coupon;
pub mod course;
pub mod email;
pub mod lms;
pub mod money;
pub mod order_code;
pub mod slug;
pub mod state;
pub mod transfer;
pub mod transfer_identity;
pub mod view_token;

pub use coupon::{CouponCode, CouponError, Discount};
pub use email::{Email, EmailError, mask_email};
pub use money::{Vnd, VndError, format_vnd};
pub use order_code::{CodeCharset, CodePattern, CodePatternError, OrderCode, OrderCodeError};
pub use slug::{CourseSlug, SlugError};
pub use state::{EventKind, ItemStatus, OrderStatus, PaymentHold, Queue, Stage, Status, UnknownStatus};
pub use view_token::ViewToken;

/// A moment as buyers and sellers in Vietnam read it: `HH:MM dd/mm/YYYY`, UTC+7 (no daylight
/// saving); the text around it says it is Vietnam time.
pub fn vietnam_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let vietnam = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset");
    t.with_timezone(&vietnam).format("%H:%M %d/%m/%Y").to_string()
}

/// Today in Vietnam (UTC+7, no daylight saving): the dates Casso filters by and reconciliation
/// starts from.
pub fn today_in_vietnam() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive()
}
