//! A bank feed as reconciliation sees it: the port the SePay and Casso transaction APIs
//! implement (in `adapters`) and `app::reconcile` drives.

use std::future::Future;

use chrono::NaiveDate;
use thiserror::Error;

use crate::domain::transfer::{BankTransfer, Gateway};

#[derive(Debug, Error)]
pub enum FeedError {
    #[error("{feed} API could not be reached: {reason}")]
    Unreachable { feed: &'static str, reason: String },
    #[error("{feed} API refused our credentials ({status})")]
    Unauthorized { feed: &'static str, status: u16 },
    #[error("{feed} API answered {status}: {body}")]
    Status { feed: &'static str, status: u16, body: String },
    #[error("{feed} API kept answering 429 after {attempts} attempts")]
    RateLimited { feed: &'static str, attempts: u32 },
    #[error("{feed} API answered something that is not its documented shape: {reason}")]
    Invalid { feed: &'static str, reason: String },
    #[error("{feed} listing did not end after {pages} requests")]
    Unbounded { feed: &'static str, pages: u32 },
}

/// Where a listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A cursor a previous pass stored.
    Cursor(String),
    /// A day (Vietnam time): the first pass, or an operator's `--since`.
    Since(NaiveDate),
}

/// One transfer of a listing, or why it cannot be taken (a fractional amount: refused
/// loudly, never rounded).
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub transfer: Result<BankTransfer, String>,
    /// The cursor to store once this transfer and every one before it are committed.
    pub cursor_after: String,
}

/// A feed's transfers from a start, oldest first, complete: a feed returns a listing only
/// when every page of it was read.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub items: Vec<Listed>,
    /// API requests it took.
    pub requests: u32,
}

/// A bank feed as reconciliation sees it.
pub trait BankFeed: Send + Sync {
    fn gateway(&self) -> Gateway;
    fn list(&self, start: &Start) -> impl Future<Output = Result<Listing, FeedError>> + Send;
}
