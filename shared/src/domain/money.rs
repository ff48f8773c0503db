//! Money: whole Vietnamese đồng. VND has no minor unit in practice, so integers are exact.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An amount of VND, never negative. Stored as BIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Vnd(i64);

/// The largest amount we accept anywhere: 1,000 billion đồng. Far above any course order,
/// far below i64::MAX, so sums of many amounts cannot overflow.
pub const VND_MAX: i64 = 1_000_000_000_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VndError {
    #[error("amount must not be negative")]
    Negative,
    #[error("amount is larger than {VND_MAX} VND")]
    TooLarge,
}

impl Vnd {
    pub const ZERO: Vnd = Vnd(0);

    pub fn new(amount: i64) -> Result<Self, VndError> {
        if amount < 0 {
            Err(VndError::Negative)
        } else if amount > VND_MAX {
            Err(VndError::TooLarge)
        } else {
            Ok(Vnd(amount))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Vnd) -> Result<Vnd, VndError> {
        Vnd::new(self.0 + other.0)
    }

    pub fn sum<I: IntoIterator<Item = Vnd>>(amounts: I) -> Result<Vnd, VndError> {
        amounts.into_iter().try_fold(Vnd::ZERO, Vnd::checked_add)
    }
}

/// `1990000` → `1.990.000 ₫`, as Vietnamese write amounts (emails, the operator's tables).
pub fn format_vnd(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(d);
    }
    format!("{}{grouped} ₫", if amount < 0 { "-" } else { "" })
}

/// Vietnamese formatting: dots between thousands, `1.250.000 ₫`.
impl fmt::Display for Vnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('.');
            }
            out.push(c);
        }
        write!(f, "{out} ₫")
    }
}

/// Splits `total` over parts in proportion to `weights` (an order's price over its courses by
/// their list prices), in whole VND that add up to `total` exactly: each part gets its floor,
/// and the VND left over go one each to the parts with the largest remainders, earliest first.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum == 0 {
        let mut parts = vec![0; weights.len()];
        parts[0] = total;
        return parts;
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = i128::from(total) * i128::from((*w).max(0));
        parts.push((exact.div_euclid(sum)) as i64);
        remainders.push((exact.rem_euclid(sum), i));
    }
    let mut left = total - parts.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left <= 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_range_and_sums_without_overflow() {
        assert_eq!(Vnd::new(-1), Err(VndError::Negative));
        assert_eq!(Vnd::new(VND_MAX + 1), Err(VndError::TooLarge));
        let a = Vnd::new(VND_MAX).unwrap();
        assert_eq!(a.checked_add(Vnd::new(1).unwrap()), Err(VndError::TooLarge));
        let total = Vnd::sum([Vnd::new(499_000).unwrap(), Vnd::new(1_000).unwrap()]).unwrap();
        assert_eq!(total.get(), 500_000);
    }

    #[test]
    fn formats_like_a_vietnamese_price_tag() {
        assert_eq!(Vnd::new(0).unwrap().to_string(), "0 ₫");
        assert_eq!(Vnd::new(999).unwrap().to_string(), "999 ₫");
        assert_eq!(Vnd::new(1_250_000).unwrap().to_string(), "1.250.000 ₫");
    }

    #[test]
    fn allocation_is_proportional_and_exact() {
        assert_eq!(super::allocate(900_000, &[500_000, 500_000]), vec![450_000, 450_000]);
        assert_eq!(super::allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(super::allocate(0, &[5, 5]), vec![0, 0]);
        assert_eq!(super::allocate(10, &[0, 0]), vec![10, 0]);
        let parts = super::allocate(1_234_567, &[299_000, 1_490_000, 5]);
        assert_eq!(parts.iter().sum::<i64>(), 1_234_567);
    }
}
