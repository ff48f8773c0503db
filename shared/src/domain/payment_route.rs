//! A payment route of its own for one order, besides the seller's account and the code in the
//! transfer text: a payOS payment link (payOS knows the order by an integer `orderCode` and
//! signs what it reports) or a virtual account for exactly the order's amount (SePay's order
//! VA API: the account number names the order). Either way the order is matched by something
//! the buyer cannot mistype.
//!
//! Opening a route may fail (the provider is down, refuses, is slow): the order is still
//! payable into the main account with its code, so a route is an extra, never a condition.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::domain::transfer::BankTransfer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// A payOS payment link: its `number` is payOS's `orderCode`.
    PayosLink,
    /// A virtual account for one order: its `number` is the account number buyers pay into.
    VirtualAccount,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::PayosLink => "payos_link",
            RouteKind::VirtualAccount => "virtual_account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "payos_link" => Some(RouteKind::PayosLink),
            "virtual_account" => Some(RouteKind::VirtualAccount),
            _ => None,
        }
    }

    /// The provider, as people name it.
    pub fn provider(self) -> &'static str {
        match self {
            RouteKind::PayosLink => "payOS",
            RouteKind::VirtualAccount => "SePay virtual accounts",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Open at the provider: it takes the order's payment.
    Open,
    /// Closed (the order is paid, expired or cancelled) or cancelled at the provider.
    Closed,
    /// Never opened: the order is paid into the main account. `reason` says why.
    Failed,
}

impl RouteState {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Open => "open",
            RouteState::Closed => "closed",
            RouteState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(RouteState::Open),
            "closed" => Some(RouteState::Closed),
            "failed" => Some(RouteState::Failed),
            _ => None,
        }
    }
}

/// What a provider is asked to open for an order.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    pub code: String,
    pub amount_vnd: i64,
    pub expires_at: DateTime<Utc>,
    /// payOS's `orderCode`, when the order's code stands for one (digits only).
    pub payos_number: Option<i64>,
    /// The order's status page for the buyer to come back to (payOS's return URL).
    pub return_url: Option<String>,
}

/// What a provider opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRoute {
    pub kind: RouteKind,
    /// payOS's `orderCode`, or the virtual account's number.
    pub number: String,
    /// The provider's id of it: payOS's `paymentLinkId`, SePay's order id.
    pub external_id: String,
    /// Where the buyer pays in a browser (payOS's checkout page).
    pub checkout_url: Option<String>,
    /// The provider's VietQR payload for it.
    pub qr_code: Option<String>,
    /// The account's holder as the bank shows it (a virtual account's name).
    pub account_name: Option<String>,
    /// The provider's answer, kept as evidence.
    pub raw: String,
}

/// A route as stored, for the provider to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRef {
    pub kind: RouteKind,
    pub number: String,
    pub external_id: String,
}

/// What the provider says of a route now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The provider's word (payOS: PENDING, PAID, CANCELLED, EXPIRED, …).
    pub status: String,
    /// The transfers the provider has seen into it, as transfers to record.
    pub transfers: Vec<BankTransfer>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RouteError {
    #[error("{provider} could not be reached: {reason}")]
    Unreachable { provider: &'static str, reason: String },
    #[error("{provider} refused: {reason}")]
    Refused { provider: &'static str, reason: String },
    /// The provider already has a route with this number (payOS's code 231): the caller
    /// reads it rather than making another.
    #[error("{provider} already has {number}")]
    Exists { provider: &'static str, number: String },
    #[error("{provider} is rate limiting us")]
    RateLimited { provider: &'static str },
    #[error("{provider} cannot serve this order: {reason}")]
    NotApplicable { provider: &'static str, reason: String },
    #[error("{provider} answered something that is not its documented shape: {reason}")]
    Invalid { provider: &'static str, reason: String },
}

pub type RouteFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RouteError>> + Send + 'a>>;

/// A provider of per-order payment routes. Object-safe: the seller may configure several.
pub trait PaymentRoutes: Send + Sync {
    fn kind(&self) -> RouteKind;
    /// Opens a route for the order (or finds the one already opened for it).
    fn open<'a>(&'a self, request: &'a RouteRequest) -> RouteFuture<'a, OpenedRoute>;
    /// What the provider says of the route now, with its transfers.
    fn status<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, RouteStatus>;
    /// Closes the route: it takes no more money. Closing a closed route succeeds.
    fn close<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, ()>;
}

/// What a transfer into an order's virtual account does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtualAccountMatch {
    /// The exact amount: it pays the order, whatever its text says.
    Pays,
    /// Another amount: kept as evidence, unmatched, for the seller to look at. A virtual
    /// account takes exactly its order's amount (Sacombank, Vietcombank refuse others; money
    /// that still arrives is a bank's exception, not a payment to count blindly).
    WrongAmount { expected_vnd: i64 },
}

pub fn virtual_account_match(order_amount_vnd: i64, transfer_amount_vnd: i64) -> VirtualAccountMatch {
    if order_amount_vnd == transfer_amount_vnd {
        VirtualAccountMatch::Pays
    } else {
        VirtualAccountMatch::WrongAmount { expected_vnd: order_amount_vnd }
    }
}

/// payOS's `description` for an order: payOS allows 9 characters when the seller's account is
/// not linked through it. The code itself when it fits; otherwise its last 9 characters after
/// the prefix. payOS names the order by `orderCode`, and the same transfer seen by SePay or
/// Casso is recognised by its bank reference, so the text is for the buyer's statement only.
pub fn payos_description(code: &str, prefix: &str) -> String {
    if code.chars().count() <= 9 {
        return code.to_string();
    }
    let rest = code.strip_prefix(prefix).unwrap_or(code);
    let chars: Vec<char> = rest.chars().collect();
    chars[chars.len().saturating_sub(9)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payos_descriptions_fit_nine_characters() {
        assert_eq!(payos_description("CD1234567", "CD"), "CD1234567");
        assert_eq!(payos_description("CD00481239", "CD"), "00481239");
        assert_eq!(payos_description("SHOP1234567890", "SHOP"), "234567890");
        for code in ["CD1", "CD00481239", "LONGPREFIX123456789012"] {
            assert!(payos_description(code, "CD").chars().count() <= 9, "{code}");
        }
    }

    #[test]
    fn a_virtual_account_takes_exactly_its_amount() {
        assert_eq!(virtual_account_match(499_000, 499_000), VirtualAccountMatch::Pays);
        assert_eq!(virtual_account_match(499_000, 49_900), VirtualAccountMatch::WrongAmount { expected_vnd: 499_000 });
        assert_eq!(virtual_account_match(499_000, 998_000), VirtualAccountMatch::WrongAmount { expected_vnd: 499_000 });
    }

    #[test]
    fn kinds_and_states_read_back() {
        for k in [RouteKind::PayosLink, RouteKind::VirtualAccount] {
            assert_eq!(RouteKind::parse(k.as_str()), Some(k));
        }
        for s in [RouteState::Open, RouteState::Closed, RouteState::Failed] {
            assert_eq!(RouteState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RouteKind::parse("cash"), None);
    }
}
