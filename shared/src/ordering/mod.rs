//! Placing an order and reading it back: validation, catalog prices, idempotent retries,
//! the payment instructions (VietQR and SePay's QR link), and the buyer's status view.

use serde::Deserialize;
use thiserror::Error;

use crate::config::BankAccount;
use crate::domain::CodePattern;
use crate::store::StoreError;

mod place;
mod validate;
mod view;

pub use place::{PaymentInstructions, PlacedItem, PlacedOrder, Placement, place_order, vietqr_payload};
pub use view::{ItemView, OrderView, Progress, order_vietqr, order_view};

pub const MAX_COURSES_PER_ORDER: usize = 20;

#[derive(Debug, Clone)]
pub struct OrderSettings {
    pub pattern: CodePattern,
    pub bank: BankAccount,
    pub ttl: chrono::Duration,
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
}

#[derive(Debug, Error)]
pub enum PlaceOrderError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyConflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> PlaceOrderError {
    PlaceOrderError::Invalid { field, message: message.into() }
}
