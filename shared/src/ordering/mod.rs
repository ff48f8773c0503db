//! Placing an order and reading it back: validation, catalog prices, idempotent retries,
//! the payment instructions (VietQR and SePay's QR link), and the buyer's status view.

use serde::Deserialize;
use thiserror::Error;

use crate::config::BankAccount;
use crate::domain::CodePattern;
use crate::store::StoreError;

mod place;
mod price;
mod validate;
mod view;

pub use place::{PaymentInstructions, PlacedItem, PlacedOrder, Placement, place_order, vietqr_payload};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> PlaceOrderError {
    PlaceOrderError::Invalid { field, message: message.into() }
}
