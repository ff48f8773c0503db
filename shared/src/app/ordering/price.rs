//! Pricing an order from the catalog, with a coupon: what `POST /quote` shows and what
//! `POST /orders` charges, computed by the same code.

use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use super::validate::{validate_coupon, validate_courses};
use super::{CouponRefusal, PlaceOrderError, QuoteRequest, invalid};
use crate::domain::{CouponCode, CourseSlug, Vnd};
use crate::store::{StoreError, catalog, coupons};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotedItem {
    pub course: String,
    pub title: String,
    pub price_vnd: i64,
}

/// An order's price before it is placed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Quote {
    pub items: Vec<QuotedItem>,
    pub subtotal_vnd: i64,
    pub discount_vnd: i64,
    /// What the buyer transfers.
    pub total_vnd: i64,
    /// The coupon as applied (upper case), when one was given.
    pub coupon: Option<String>,
}

/// A quote with what placing it needs: the course ids with their prices, and the coupon's id.
#[derive(Debug, Clone)]
pub(super) struct Priced {
    pub(super) lines: Vec<(u64, Vnd)>,
    pub(super) coupon: Option<(u64, Vnd)>,
    pub(super) quote: Quote,
}

fn refused(why: CouponRefusal) -> PlaceOrderError {
    PlaceOrderError::Coupon(why)
}

/// Prices the courses from the catalog and applies the coupon. Every rule of the coupon is
/// checked here to say which one failed; the reservation checks them again under the row's
/// lock, and that check is what decides.
pub(super) async fn price_in(
    conn: &mut MySqlConnection,
    slugs: &[CourseSlug],
    coupon: Option<&CouponCode>,
) -> Result<Priced, PlaceOrderError> {
    let mut lines = Vec::with_capacity(slugs.len());
    let mut items = Vec::with_capacity(slugs.len());
    for slug in slugs {
        match catalog::by_slug(conn, slug).await? {
            Some(c) if c.active => {
                let price = Vnd::new(c.price_vnd).map_err(|e| StoreError::Corrupt(format!("price of {slug}: {e}")))?;
                lines.push((c.id, price));
                items.push(QuotedItem { course: c.slug, title: c.title, price_vnd: price.get() });
            }
            Some(_) => return Err(invalid("courses", format!("{slug} is no longer for sale"))),
            None => return Err(invalid("courses", format!("there is no course {slug}"))),
        }
    }
    let subtotal =
        Vnd::sum(lines.iter().map(|(_, p)| *p)).map_err(|e| StoreError::Corrupt(format!("order total: {e}")))?;
    let mut quote =
        Quote { items, subtotal_vnd: subtotal.get(), discount_vnd: 0, total_vnd: subtotal.get(), coupon: None };
    let Some(code) = coupon else {
        return Ok(Priced { lines, coupon: None, quote });
    };
    let Some(c) = coupons::by_code(conn, code).await? else {
        return Err(refused(CouponRefusal::Unknown));
    };
    if !c.active {
        return Err(refused(CouponRefusal::Disabled));
    }
    if c.valid_from.is_some_and(|from| c.now < from) {
        return Err(refused(CouponRefusal::NotYetValid));
    }
    if c.valid_until.is_some_and(|until| c.now >= until) {
        return Err(refused(CouponRefusal::Expired));
    }
    if c.max_uses.is_some_and(|max| c.uses >= max) {
        return Err(refused(CouponRefusal::UsedUp));
    }
    // The prices as `lines` holds them (checked VND), of the items the coupon applies to.
    let eligible: Vec<Vnd> = quote
        .items
        .iter()
        .zip(&lines)
        .filter(|(i, _)| c.courses.is_empty() || c.courses.contains(&i.course))
        .map(|(_, (_, price))| *price)
        .collect();
    if eligible.is_empty() {
        return Err(refused(CouponRefusal::NotForTheseCourses));
    }
    let eligible = Vnd::sum(eligible).map_err(|e| StoreError::Corrupt(format!("order total: {e}")))?;
    let off = c.discount.off(eligible);
    // A bank transfer of 0 VND does not exist: a free order would wait for a payment that
    // never comes.
    if off == subtotal {
        return Err(refused(CouponRefusal::WouldBeFree));
    }
    quote.discount_vnd = off.get();
    quote.total_vnd = subtotal.get() - off.get();
    quote.coupon = Some(c.code.clone());
    Ok(Priced { lines, coupon: Some((c.id, off)), quote })
}

/// The price of `request`'s courses with its coupon, as `POST /orders` would charge it now.
pub async fn quote(pool: &MySqlPool, request: &QuoteRequest) -> Result<Quote, PlaceOrderError> {
    let slugs = validate_courses(request.courses.as_deref())?;
    let coupon = validate_coupon(request.coupon.as_deref())?;
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    Ok(price_in(&mut conn, &slugs, coupon.as_ref()).await?.quote)
}
