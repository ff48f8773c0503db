//! Coupons: the code a buyer types, and what it takes off.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use super::Vnd;

/// A coupon's code: 3 to 32 of A-Z, 0-9, '-' and '_', folded to upper case (buyers type
/// `tet2027` as often as `TET2027`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CouponCode(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CouponError {
    #[error("a coupon code has 3 to 32 characters")]
    Length,
    #[error("a coupon code holds only letters A-Z, digits, '-' and '_'")]
    Char,
    #[error("a percentage off is 1 to 100")]
    Percent,
    #[error("an amount off is a positive number of VND")]
    Amount,
}

impl CouponCode {
    pub fn parse(input: &str) -> Result<Self, CouponError> {
        let s = input.trim().to_ascii_uppercase();
        if !(3..=32).contains(&s.len()) {
            return Err(CouponError::Length);
        }
        if !s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err(CouponError::Char);
        }
        Ok(CouponCode(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a coupon takes off the price of the courses it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// 1 to 100 percent.
    Percent(u8),
    /// A fixed amount, at most the price it applies to.
    Amount(Vnd),
}

impl Discount {
    pub fn percent(p: u8) -> Result<Self, CouponError> {
        if (1..=100).contains(&p) { Ok(Discount::Percent(p)) } else { Err(CouponError::Percent) }
    }

    pub fn amount(vnd: Vnd) -> Result<Self, CouponError> {
        if vnd.get() > 0 { Ok(Discount::Amount(vnd)) } else { Err(CouponError::Amount) }
    }

    /// What comes off `eligible` (the price of the courses the coupon applies to), in whole
    /// đồng: a percentage is rounded down (10 % of 99,999 is 9,999), so the buyer never pays
    /// less than the percentage says by a fraction; an amount takes off at most `eligible`,
    /// so no total goes below 0.
    pub fn off(self, eligible: Vnd) -> Vnd {
        let off = match self {
            // Both factors are far below i64::MAX / 100 (VND_MAX is 10^12).
            Discount::Percent(p) => eligible.get() * i64::from(p) / 100,
            Discount::Amount(a) => a.get().min(eligible.get()),
        };
        Vnd::new(off).unwrap_or(Vnd::ZERO)
    }
}

impl fmt::Display for Discount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discount::Percent(p) => write!(f, "{p}%"),
            Discount::Amount(a) => write!(f, "{} VND", a.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fold_case_and_refuse_what_a_buyer_cannot_type() {
        assert_eq!(CouponCode::parse(" tet-2027 ").unwrap().as_str(), "TET-2027");
        assert_eq!(CouponCode::parse("ab"), Err(CouponError::Length));
        assert_eq!(CouponCode::parse(&"A".repeat(33)), Err(CouponError::Length));
        assert_eq!(CouponCode::parse("TẾT2027"), Err(CouponError::Char));
        assert_eq!(CouponCode::parse("A B C"), Err(CouponError::Char));
    }

    #[test]
    fn a_percentage_rounds_the_discount_down_and_an_amount_never_passes_the_price() {
        let v = |n| Vnd::new(n).unwrap();
        assert_eq!(Discount::percent(10).unwrap().off(v(99_999)), v(9_999));
        assert_eq!(Discount::percent(100).unwrap().off(v(499_000)), v(499_000));
        assert_eq!(Discount::percent(33).unwrap().off(v(1)), v(0));
        assert_eq!(Discount::amount(v(50_000)).unwrap().off(v(499_000)), v(50_000));
        assert_eq!(Discount::amount(v(900_000)).unwrap().off(v(499_000)), v(499_000));
        assert_eq!(Discount::percent(0), Err(CouponError::Percent));
        assert_eq!(Discount::percent(101), Err(CouponError::Percent));
        assert_eq!(Discount::amount(v(0)), Err(CouponError::Amount));
    }
}
