//! Orders as staff look for them: a list searched, filtered and paged by key (fast at
//! 100,000 orders), its CSV rows, one order with everything that happened to it, and the
//! problems list.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::MySqlPool;

use super::ConsoleError;
use crate::app::payments::{self, hold};
use crate::app::sweeper::{self, Deadlines};
use crate::domain::{CodePattern, CouponCode, CourseSlug, ItemStatus, OrderCode, OrderStatus, vietnam_midnight};
use crate::store::console as stored;
pub use crate::store::console::{OrderFilter, OrderPayment, OrderRow};
use crate::store::events::Event;
use crate::store::payments::{PaymentOnHold, UnmatchedPayment};
use crate::store::reports::{self, ItemSummary, StuckItem};

/// The list's filter as typed into the form; every field may be empty.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct FilterInput {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub course: String,
    #[serde(default)]
    pub coupon: String,
    /// `YYYY-MM-DD`, Vietnam time, inclusive.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

fn blank(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

fn day(field: &'static str, s: &str) -> Result<Option<NaiveDate>, ConsoleError> {
    blank(s)
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| ConsoleError::invalid(field, format!("{s:?} is not a date (YYYY-MM-DD)")))
        })
        .transpose()
}

impl FilterInput {
    /// The filter the store runs, or which field is wrong.
    pub fn parse(&self) -> Result<OrderFilter, ConsoleError> {
        let status = blank(&self.status)
            .map(|s| s.parse::<OrderStatus>().map_err(|e| ConsoleError::invalid("status", e.to_string())))
            .transpose()?;
        let course = blank(&self.course)
            .map(|s| CourseSlug::parse(s).map_err(|e| ConsoleError::invalid("course", e.to_string())))
            .transpose()?;
        let coupon = blank(&self.coupon)
            .map(|s| CouponCode::parse(s).map_err(|e| ConsoleError::invalid("coupon", e.to_string())))
            .transpose()?;
        let from = day("from", &self.from)?;
        let to = day("to", &self.to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ConsoleError::invalid("to", "the end date is before the start date"));
        }
        Ok(OrderFilter {
            text: blank(&self.q).map(str::to_string),
            status,
            course: course.map(|c| c.to_string()),
            coupon: coupon.map(|c| c.to_string()),
            placed_from: from.map(vietnam_midnight),
            placed_before: to.map(|t| vietnam_midnight(t + chrono::Duration::days(1))),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrdersPage {
    pub rows: Vec<OrderRow>,
    /// The key of the next page (`before=`), when there is one.
    pub next_before: Option<u64>,
    pub total: i64,
}

pub async fn list(
    pool: &MySqlPool,
    filter: &OrderFilter,
    before: Option<u64>,
    page_size: u32,
) -> Result<OrdersPage, ConsoleError> {
    let mut rows = stored::search_orders(pool, filter, before, page_size + 1).await?;
    let next_before = if rows.len() > page_size as usize {
        rows.truncate(page_size as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    let total = stored::count_orders(pool, filter).await?;
    Ok(OrdersPage { rows, next_before, total })
}

/// Every order the filter matches, for the CSV export, fetched a page at a time; at most
/// `cap` (the export says so when it stops there).
pub async fn export(pool: &MySqlPool, filter: &OrderFilter, cap: usize) -> Result<Vec<OrderRow>, ConsoleError> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = stored::search_orders(pool, filter, before, 2_000).await?;
        let last = page.last().map(|r| r.id);
        let done = page.len() < 2_000;
        out.extend(page);
        if done || out.len() >= cap {
            out.truncate(cap);
            return Ok(out);
        }
        before = last;
    }
}

/// One order with its items, payments and every recorded change (oldest first).
#[derive(Debug, Clone, Serialize)]
pub struct OrderDetail {
    pub order: OrderRow,
    pub items: Vec<ItemSummary>,
    pub payments: Vec<OrderPayment>,
    /// Its own payOS link and virtual account, when opened (or why not).
    pub routes: Vec<crate::store::routes::StoredRoute>,
    pub events: Vec<Event>,
}

pub fn order_code(input: &str, pattern: &CodePattern) -> Result<OrderCode, ConsoleError> {
    OrderCode::parse(input, pattern).map_err(|e| ConsoleError::invalid("code", format!("{input:?}: {e}")))
}

pub async fn detail(pool: &MySqlPool, code: &OrderCode) -> Result<OrderDetail, ConsoleError> {
    let order = stored::order_row(pool, code.as_str())
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {code}")))?;
    let items = reports::items_of(pool, order.id).await?;
    let payments = stored::payments_of(pool, order.id).await?;
    let mut conn = pool.acquire().await?;
    let routes = crate::app::routes::of_order(&mut conn, order.id).await?;
    let events = crate::store::events::for_order(&mut conn, order.id).await?;
    Ok(OrderDetail { order, items, payments, routes, events })
}

/// Why a transfer matched no order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    /// Its text carries nothing that looks like an order code.
    NoCode,
    /// It names a code no order has.
    UnknownCode,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub payment: UnmatchedPayment,
    pub reason: UnmatchedReason,
    pub code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problems {
    pub failed: Vec<ItemSummary>,
    pub stuck: Vec<StuckItem>,
    pub unmatched: Vec<Unmatched>,
    /// Orders paid too little, too much or too late.
    pub attention: Vec<OrderRow>,
    pub held: Vec<PaymentOnHold>,
}

pub async fn problems(
    pool: &MySqlPool,
    deadlines: &Deadlines,
    pattern: &CodePattern,
) -> Result<Problems, ConsoleError> {
    let unmatched = payments::unmatched(pool, 200)
        .await?
        .into_iter()
        .map(|p| {
            let code = p.content.as_deref().and_then(|text| OrderCode::find_in(text, pattern)).map(|c| c.to_string());
            let reason = if code.is_some() { UnmatchedReason::UnknownCode } else { UnmatchedReason::NoCode };
            Unmatched { payment: p, reason, code }
        })
        .collect();
    Ok(Problems {
        failed: reports::items(pool, Some(ItemStatus::Failed), 200).await?,
        stuck: sweeper::stuck_items(pool, deadlines).await?,
        unmatched,
        attention: stored::needing_attention(pool, 200).await?,
        held: hold::held(pool, 200).await?,
    })
}
