//! Coupons: the catalog of discount codes, and the reservation of a use.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;
use crate::domain::{CouponCode, Discount, Vnd};

#[derive(Debug, Clone)]
pub struct NewCoupon<'a> {
    pub code: &'a CouponCode,
    pub discount: Discount,
    pub max_uses: Option<u32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Course ids it is limited to; empty: every course.
    pub course_ids: &'a [u64],
}

#[derive(Debug, Clone, FromRow)]
struct CouponRow {
    id: u64,
    code: String,
    percent_off: Option<u8>,
    amount_off_vnd: Option<i64>,
    max_uses: Option<u32>,
    uses: u32,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    active: bool,
    /// The slugs it is limited to, comma-separated; NULL: every course.
    courses: Option<String>,
    /// The database's clock, so validity is judged as the reservation judges it.
    now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Coupon {
    pub id: u64,
    pub code: String,
    pub discount: Discount,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub active: bool,
    /// The course slugs it is limited to; empty: every course.
    pub courses: Vec<String>,
    #[serde(skip)]
    pub now: DateTime<Utc>,
}

impl TryFrom<CouponRow> for Coupon {
    type Error = StoreError;
    fn try_from(r: CouponRow) -> Result<Self, StoreError> {
        let corrupt = |e: crate::domain::CouponError| StoreError::Corrupt(format!("coupon {}: {e}", r.code));
        let discount = match (r.percent_off, r.amount_off_vnd) {
            (Some(p), None) => Discount::percent(p).map_err(corrupt)?,
            (None, Some(a)) => {
                let a = Vnd::new(a).map_err(|e| StoreError::Corrupt(format!("coupon {}: {e}", r.code)))?;
                Discount::amount(a).map_err(corrupt)?
            }
            _ => return Err(StoreError::Corrupt(format!("coupon {} has no single discount", r.code))),
        };
        let courses = r.courses.map(|c| c.split(',').map(str::to_string).collect()).unwrap_or_default();
        Ok(Coupon {
            id: r.id,
            code: r.code,
            discount,
            max_uses: r.max_uses,
            uses: r.uses,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            active: r.active,
            courses,
            now: r.now,
        })
    }
}

const SELECT: &str = "SELECT c.id, c.code, c.percent_off, c.amount_off_vnd, c.max_uses, c.uses, c.valid_from,
           c.valid_until, c.active, NOW(3) AS now,
           (SELECT GROUP_CONCAT(k.slug ORDER BY k.slug SEPARATOR ',') FROM coupon_courses cc
              JOIN courses k ON k.id = cc.course_id WHERE cc.coupon_id = c.id) AS courses
         FROM coupons c";

/// Adds a coupon and the courses it is limited to, in one transaction; its id.
pub async fn insert(pool: &MySqlPool, c: &NewCoupon<'_>) -> Result<u64, StoreError> {
    let (percent, amount) = match c.discount {
        Discount::Percent(p) => (Some(p), None),
        Discount::Amount(a) => (None, Some(a.get())),
    };
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "INSERT INTO coupons (code, percent_off, amount_off_vnd, max_uses, valid_from, valid_until)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(c.code.as_str())
    .bind(percent)
    .bind(amount)
    .bind(c.max_uses)
    .bind(c.valid_from)
    .bind(c.valid_until)
    .execute(&mut *tx)
    .await?;
    let id = done.last_insert_id();
    for course_id in c.course_ids {
        sqlx::query("INSERT INTO coupon_courses (coupon_id, course_id) VALUES (?, ?)")
            .bind(id)
            .bind(course_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

pub async fn by_code(conn: &mut MySqlConnection, code: &CouponCode) -> Result<Option<Coupon>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.code = ?"));
    let row: Option<CouponRow> = sqlx::query_as(sql).bind(code.as_str()).fetch_optional(conn).await?;
    row.map(Coupon::try_from).transpose()
}

/// Every coupon, newest first.
pub async fn all(pool: &MySqlPool) -> Result<Vec<Coupon>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY c.id DESC"));
    let rows: Vec<CouponRow> = sqlx::query_as(sql).fetch_all(pool).await?;
    rows.into_iter().map(Coupon::try_from).collect()
}

/// Takes a coupon off sale; `false` when there is no such coupon or it already was.
pub async fn disable(pool: &MySqlPool, code: &CouponCode) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE coupons SET active = FALSE WHERE code = ? AND active")
        .bind(code.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Reserves one use in the caller's transaction: one statement that checks every rule under
/// the row's lock, so of two orders racing for the last use exactly one gets it. `false`
/// when the coupon is off, outside its dates or used up.
pub async fn reserve_in(conn: &mut MySqlConnection, coupon_id: u64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE coupons SET uses = uses + 1
         WHERE id = ? AND active AND (max_uses IS NULL OR uses < max_uses)
           AND (valid_from IS NULL OR valid_from <= NOW(3)) AND (valid_until IS NULL OR valid_until > NOW(3))",
    )
    .bind(coupon_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Unpaid orders holding a use of the coupon, placed by `email` and from `client_ip`. Read in
/// the placing transaction after [`reserve_in`] took the coupon's row lock: orders for one
/// coupon take turns there, so the counts are exact.
pub async fn holds_in(
    conn: &mut MySqlConnection,
    coupon_id: u64,
    email: &str,
    client_ip: Option<&str>,
) -> Result<(u32, u32), StoreError> {
    let (by_email, by_client): (i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT COUNT(*) FROM orders WHERE coupon_id = ? AND status = 'pending' AND email = ?),
           (SELECT COUNT(*) FROM orders WHERE coupon_id = ? AND status = 'pending' AND client_ip = ?)",
    )
    .bind(coupon_id)
    .bind(email)
    .bind(coupon_id)
    .bind(client_ip)
    .fetch_one(conn)
    .await?;
    Ok((by_email as u32, by_client as u32))
}

/// Frees the use an order holds, in the transaction that cancels it (a compare-and-set on the
/// order's status, so a use is freed once).
pub async fn release_for_order_in(conn: &mut MySqlConnection, order_id: u64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE coupons c JOIN orders o ON o.coupon_id = c.id SET c.uses = c.uses - 1 WHERE o.id = ? AND c.uses > 0",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the use again for an order an operator revives (a late payment accepted): the order
/// keeps its price, so it holds its use again, past `max_uses` if need be (the CHECK allows
/// no more than `max_uses`, so the count stops there).
pub async fn retake_for_order_in(conn: &mut MySqlConnection, order_id: u64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE coupons c JOIN orders o ON o.coupon_id = c.id SET c.uses = c.uses + 1
         WHERE o.id = ? AND (c.max_uses IS NULL OR c.uses < c.max_uses)",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}
