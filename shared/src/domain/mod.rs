//! Domain types: validated on construction, free of I/O.

pub mod bank_feed;
pub mod brand;
pub mod coupon;
pub mod course;
pub mod email;
pub mod lms;
pub mod money;
pub mod order_code;
pub mod payment_route;
pub mod slug;
pub mod staff;
pub mod state;
pub mod transfer;
pub mod transfer_identity;
pub mod view_token;

pub use coupon::{CouponCode, CouponError, Discount};
pub use email::{Email, EmailError, mask_email};
pub use money::{Vnd, VndError, allocate, format_vnd};
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

/// The day in Vietnam that `t` falls on.
pub fn vietnam_date(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    (t + chrono::Duration::hours(7)).date_naive()
}

/// The moment a day begins in Vietnam (00:00 UTC+7), in UTC.
pub fn vietnam_midnight(day: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::Duration::hours(7)
}

/// The value at fraction `q` (0.5: the median) of `sorted`, nearest-rank; `None` when empty.
pub fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn vietnam_days_begin_at_17_utc() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 17, 30, 0).unwrap();
        assert_eq!(vietnam_date(t), chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap());
        assert_eq!(vietnam_midnight(vietnam_date(t)), chrono::Utc.with_ymd_and_hms(2026, 12, 4, 17, 0, 0).unwrap());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&[7], 0.95), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
