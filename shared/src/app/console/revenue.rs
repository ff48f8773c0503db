//! Revenue for the tax return: what was sold each month of a year, per course, with refunds
//! netted in the month they were made. From 2026 a household business declares its actual
//! revenue; this is what the seller hands the accountant.
//!
//! An order's revenue is its price (after its coupon), counted in the Vietnam month it was
//! paid. A course's share of it is its price at order time less its part of the coupon's
//! discount: the discount is split over the courses the coupon applied to, by their prices
//! (`domain::allocate`: whole VND that add up to the discount), as the order was priced. A
//! refund takes the same amounts back in the month of the refund.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use sqlx::MySqlPool;

use super::ConsoleError;
use crate::domain::{allocate, vietnam_date, vietnam_midnight};
use crate::store::console::{self as stored, SoldItem};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    pub orders: i64,
    pub gross_vnd: i64,
    pub refunds_vnd: i64,
    pub net_vnd: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthRevenue {
    pub month: u32,
    #[serde(flatten)]
    pub sums: Sums,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CourseRevenue {
    pub course: String,
    pub title: String,
    pub sold: i64,
    pub refunded: i64,
    pub gross_vnd: i64,
    pub refunds_vnd: i64,
    pub net_vnd: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevenueReport {
    pub year: i32,
    /// Twelve months, January first.
    pub months: Vec<MonthRevenue>,
    pub courses: Vec<CourseRevenue>,
    pub total: Sums,
}

pub fn year_range(year: i32) -> Result<(NaiveDate, NaiveDate), ConsoleError> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1).filter(|_| (2000..=2100).contains(&year));
    let next = NaiveDate::from_ymd_opt(year + 1, 1, 1);
    match (first, next) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(ConsoleError::invalid("year", format!("{year} is not a year the shop could have sold in"))),
    }
}

pub async fn year(pool: &MySqlPool, year: i32) -> Result<RevenueReport, ConsoleError> {
    let (first, next) = year_range(year)?;
    let rows = stored::sold_items(pool, vietnam_midnight(first), vietnam_midnight(next)).await?;
    Ok(summarise(year, &rows))
}

/// What each course of one order earned: its price less its part of the discount, split over
/// the discounted courses by price. The shares add up to the order's price; should the rows
/// disagree with it (an order priced by rules since changed), the price is split over every
/// course by price instead, so the months and the courses still agree.
fn course_shares(order: &[SoldItem]) -> Vec<i64> {
    let head = &order[0];
    let prices: Vec<i64> = order.iter().map(|i| i.price_vnd).collect();
    let discounted: Vec<i64> = order.iter().map(|i| if i.discounted { i.price_vnd } else { 0 }).collect();
    let discount = allocate(head.order_discount_vnd, &discounted);
    let shares: Vec<i64> = prices.iter().zip(&discount).map(|(p, d)| p - d).collect();
    if shares.iter().sum::<i64>() == head.order_total_vnd && shares.iter().all(|s| *s >= 0) {
        shares
    } else {
        allocate(head.order_total_vnd, &prices)
    }
}

/// The report of `year` from the items of the orders paid or refunded in it (pure).
pub fn summarise(year: i32, rows: &[SoldItem]) -> RevenueReport {
    let mut months: Vec<MonthRevenue> = (1..=12).map(|month| MonthRevenue { month, sums: Sums::default() }).collect();
    let mut courses: BTreeMap<String, CourseRevenue> = BTreeMap::new();
    let in_year = |t: chrono::DateTime<chrono::Utc>| {
        let d = vietnam_date(t);
        (d.year() == year).then(|| d.month0() as usize)
    };
    for order in rows.chunk_by(|a, b| a.order_id == b.order_id) {
        let head = &order[0];
        let shares = course_shares(order);
        let paid_month = in_year(head.paid_at);
        let refund_month = head.refunded_at.and_then(in_year);
        if let Some(m) = paid_month {
            months[m].sums.orders += 1;
            months[m].sums.gross_vnd += head.order_total_vnd;
        }
        if let Some(m) = refund_month {
            months[m].sums.refunds_vnd += head.order_total_vnd;
        }
        for (item, share) in order.iter().zip(shares) {
            let c = courses.entry(item.course.clone()).or_insert_with(|| CourseRevenue {
                course: item.course.clone(),
                title: item.course_title.clone(),
                sold: 0,
                refunded: 0,
                gross_vnd: 0,
                refunds_vnd: 0,
                net_vnd: 0,
            });
            if paid_month.is_some() {
                c.sold += 1;
                c.gross_vnd += share;
            }
            if refund_month.is_some() {
                c.refunded += 1;
                c.refunds_vnd += share;
            }
        }
    }
    let mut total = Sums::default();
    for m in &mut months {
        m.sums.net_vnd = m.sums.gross_vnd - m.sums.refunds_vnd;
        total.orders += m.sums.orders;
        total.gross_vnd += m.sums.gross_vnd;
        total.refunds_vnd += m.sums.refunds_vnd;
    }
    total.net_vnd = total.gross_vnd - total.refunds_vnd;
    let courses = courses
        .into_values()
        .map(|mut c| {
            c.net_vnd = c.gross_vnd - c.refunds_vnd;
            c
        })
        .collect();
    RevenueReport { year, months, courses, total }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn item(
        order_id: u64,
        paid: (u32, u32, u32),
        refunded: Option<(i32, u32, u32)>,
        course: &str,
        price: i64,
        total: i64,
    ) -> SoldItem {
        SoldItem {
            order_id,
            order_code: format!("CD{order_id}"),
            paid_at: chrono::Utc.with_ymd_and_hms(2026, paid.0, paid.1, paid.2, 0, 0).unwrap(),
            refunded_at: refunded.map(|(y, m, d)| chrono::Utc.with_ymd_and_hms(y, m, d, 3, 0, 0).unwrap()),
            course: course.into(),
            course_title: course.to_uppercase(),
            price_vnd: price,
            order_total_vnd: total,
            order_discount_vnd: 0,
            discounted: false,
        }
    }

    #[test]
    fn months_follow_vietnam_time_and_refunds_net_in_their_month() {
        let coupon = |mut i: SoldItem| {
            i.order_discount_vnd = 100_000;
            i.discounted = true;
            i
        };
        let rows = vec![
            // Paid 31 Jan 18:00 UTC: 1 Feb in Vietnam.
            item(1, (1, 31, 18), None, "a", 500_000, 500_000),
            // Two courses with a coupon on both: the 100,000 off split by price.
            coupon(item(2, (3, 10, 2), Some((2026, 4, 2)), "a", 500_000, 900_000)),
            coupon(item(2, (3, 10, 2), Some((2026, 4, 2)), "b", 500_000, 900_000)),
        ];
        let r = summarise(2026, &rows);
        assert_eq!(r.months[0].sums.gross_vnd, 0);
        assert_eq!(r.months[1].sums, Sums { orders: 1, gross_vnd: 500_000, refunds_vnd: 0, net_vnd: 500_000 });
        assert_eq!(r.months[2].sums.gross_vnd, 900_000);
        assert_eq!(r.months[3].sums, Sums { orders: 0, gross_vnd: 0, refunds_vnd: 900_000, net_vnd: -900_000 });
        assert_eq!(r.total, Sums { orders: 2, gross_vnd: 1_400_000, refunds_vnd: 900_000, net_vnd: 500_000 });
        let a = &r.courses[0];
        assert_eq!((a.sold, a.gross_vnd, a.refunds_vnd, a.net_vnd), (2, 950_000, 450_000, 500_000));
        let b = &r.courses[1];
        assert_eq!((b.sold, b.gross_vnd, b.net_vnd), (1, 450_000, 0));
    }

    #[test]
    fn a_coupon_for_one_course_lowers_only_that_course() {
        // 50 % off A only: A earns 250,000, B its full 500,000.
        let mut a = item(4, (5, 1, 3), None, "a", 500_000, 750_000);
        a.order_discount_vnd = 250_000;
        a.discounted = true;
        let mut b = item(4, (5, 1, 3), None, "b", 500_000, 750_000);
        b.order_discount_vnd = 250_000;
        let r = summarise(2026, &[a, b]);
        assert_eq!((r.courses[0].course.as_str(), r.courses[0].gross_vnd), ("a", 250_000));
        assert_eq!((r.courses[1].course.as_str(), r.courses[1].gross_vnd), ("b", 500_000));
        assert_eq!(r.total.gross_vnd, 750_000);
    }

    #[test]
    fn a_refund_of_last_years_sale_counts_only_this_year() {
        let mut last_year = item(3, (1, 1, 0), Some((2026, 2, 1)), "a", 100, 100);
        last_year.paid_at = chrono::Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap();
        let r = summarise(2026, &[last_year]);
        assert_eq!(r.total, Sums { orders: 0, gross_vnd: 0, refunds_vnd: 100, net_vnd: -100 });
        assert_eq!(r.courses[0].sold, 0);
        assert_eq!(r.courses[0].refunded, 1);
    }
}
