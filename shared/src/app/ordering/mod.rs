//! Placing an order and reading it back: validation, catalog prices, idempotent retries,
//! the payment instructions (VietQR and SePay's QR link), and the buyer's status view.

use serde::Deserialize;
use thiserror::Error;

use crate::app::config::BankAccount;
use crate::domain::CodePattern;
use crate::store::StoreError;

mod place;
mod price;
mod validate;
mod view;

pub use place::{
    PaymentInstructions, PayosCheckout, PlacedItem, PlacedOrder, Placement, instructions, place_order, vietqr_payload,
};
pub use price::{Quote, QuotedItem, quote};
pub use view::{ItemView, OrderView, Progress, order_vietqr, order_view};

pub const MAX_COURSES_PER_ORDER: usize = 20;

#[derive(Debug, Clone)]
pub struct OrderSettings {
    pub pattern: CodePattern,
    pub bank: BankAccount,
    pub ttl: chrono::Duration,
    /// Unpaid orders one email may have at once (`PENDING_ORDERS_PER_EMAIL`, default 5).
    pub max_pending_per_email: u32,
    /// Unpaid orders one client address may have at once (`PENDING_ORDERS_PER_CLIENT`,
    /// default 30: a school or an office shares one address).
    pub max_pending_per_client: u32,
    /// How long an order placed with a coupon holds its use unpaid (`COUPON_ORDER_TTL`,
    /// default 15m; never longer than `ttl`): a limited coupon's uses come back sooner.
    pub coupon_ttl: chrono::Duration,
    /// Unpaid orders one email may hold a use of one coupon with (`COUPON_HOLDS_PER_EMAIL`,
    /// default 1), and one client address (`COUPON_HOLDS_PER_CLIENT`, default 3): one client
    /// cannot take every use of a limited coupon by placing orders it never pays.
    pub max_coupon_holds_per_email: u32,
    pub max_coupon_holds_per_client: u32,
    /// Routes of each order's own (payOS links, virtual accounts), opened as it is placed.
    pub routes: crate::app::routes::RouteSettings,
}

/// The body of `POST /orders`. Anything else in it (a price, say) is ignored: prices come
/// from the catalog.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderRequest {
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    pub courses: Option<Vec<String>>,
    /// A coupon code, in any case; empty is none.
    #[serde(default)]
    pub coupon: Option<String>,
}

/// The body of `POST /quote`: what the page shows before the buyer orders.
#[derive(Debug, Clone, Deserialize)]
pub struct QuoteRequest {
    pub courses: Option<Vec<String>>,
    #[serde(default)]
    pub coupon: Option<String>,
}

#[derive(Debug, Error)]
pub enum PlaceOrderError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyConflict,
    /// Too many unpaid orders for this email or client address.
    #[error("{0}")]
    TooManyPending(String),
    /// The coupon can't be used for this order.
    #[error("coupon: {}", .0.message())]
    Coupon(CouponRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a coupon can't be used, each with a stable word (`as_str`) a client can show in its own
/// language, and a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponRefusal {
    Unknown,
    Disabled,
    NotYetValid,
    Expired,
    UsedUp,
    NotForTheseCourses,
    WouldBeFree,
    /// This email or network already holds a use on an unpaid order.
    HeldAlready,
}

impl CouponRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponRefusal::Unknown => "unknown",
            CouponRefusal::Disabled => "disabled",
            CouponRefusal::NotYetValid => "not_yet_valid",
            CouponRefusal::Expired => "expired",
            CouponRefusal::UsedUp => "used_up",
            CouponRefusal::NotForTheseCourses => "not_for_these_courses",
            CouponRefusal::WouldBeFree => "would_be_free",
            CouponRefusal::HeldAlready => "held_already",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CouponRefusal::Unknown => "there is no such coupon; check how it is spelled",
            CouponRefusal::Disabled => "this coupon is no longer available",
            CouponRefusal::NotYetValid => "this coupon is not valid yet",
            CouponRefusal::Expired => "this coupon has expired",
            CouponRefusal::UsedUp => "this coupon has been used up",
            CouponRefusal::NotForTheseCourses => "this coupon does not apply to the courses chosen",
            CouponRefusal::WouldBeFree => {
                "this coupon would make the order free, and an order is paid by bank transfer"
            }
            CouponRefusal::HeldAlready => {
                "this coupon is already held by an unpaid order of yours; pay that order, or place this one after it expires"
            }
        }
    }
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> PlaceOrderError {
    PlaceOrderError::Invalid { field, message: message.into() }
}
