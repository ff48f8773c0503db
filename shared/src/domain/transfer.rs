//! A bank transfer as any bank feed reports it: the one shape the payment path takes,
//! whether it came from SePay or Casso, by webhook or by reconciliation.

use serde::Deserialize;
use thiserror::Error;

/// A bank feed: the service that watches the seller's account and tells us of transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gateway {
    Sepay,
    Casso,
    Payos,
}

impl Gateway {
    pub const ALL: &'static [Gateway] = &[Gateway::Sepay, Gateway::Casso, Gateway::Payos];

    pub fn as_str(self) -> &'static str {
        match self {
            Gateway::Sepay => "sepay",
            Gateway::Casso => "casso",
            Gateway::Payos => "payos",
        }
    }

    pub fn parse(s: &str) -> Option<Gateway> {
        Gateway::ALL.iter().copied().find(|g| g.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferType {
    In,
    Out,
}

impl TransferType {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferType::In => "in",
            TransferType::Out => "out",
        }
    }
}

/// How a payment reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Webhook,
    /// Found by listing the feed's transactions: the webhook for it never got through.
    Reconcile,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Webhook => "webhook",
            Arrival::Reconcile => "reconcile",
        }
    }
}

/// One transfer, as reported. `amount_vnd` is the transfer's size (never negative);
/// `transfer_type` says which way it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankTransfer {
    pub gateway: Gateway,
    /// The feed's own transaction id: with `gateway`, the key that makes repeats harmless.
    pub id: String,
    pub transfer_type: TransferType,
    pub amount_vnd: i64,
    /// The bank's name, as the feed gives it.
    pub bank: Option<String>,
    pub account_number: Option<String>,
    pub sub_account: Option<String>,
    /// A payment code the feed itself recognised in the text.
    pub code: Option<String>,
    pub content: Option<String>,
    pub description: Option<String>,
    pub reference: Option<String>,
    /// As the feed wrote it (Vietnam time, no zone).
    pub transaction_date: Option<String>,
    /// What the feed sent, exactly: the webhook body, or the API's record.
    pub raw: String,
}

/// Whether a transfer's amount can be taken as integer VND.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount {0:?} is not a number")]
    NotANumber(String),
    #[error("amount {0:?} has a fraction of a đồng; it is refused, not rounded")]
    Fractional(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

/// The largest single transfer we take: 10^15 VND, far above any bank's limit and far below
/// where sums could overflow.
pub const MAX_TRANSFER_VND: i64 = 1_000_000_000_000_000;

/// Integer VND from a decimal as feeds send it: `18067000`, `"18067000.00"`, `"-500"`. A
/// non-zero fraction is an error: VND has no minor unit, and rounding money silently
/// would make a payment count for what was not paid.
pub fn vnd_exact(text: &str) -> Result<i64, AmountError> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !numeric(whole) || !numeric(fraction) {
        return Err(AmountError::NotANumber(text.to_string()));
    }
    if fraction.bytes().any(|b| b != b'0') {
        return Err(AmountError::Fractional(text.to_string()));
    }
    let value: i64 = whole.parse().map_err(|_| AmountError::TooLarge(text.to_string()))?;
    if value > MAX_TRANSFER_VND {
        return Err(AmountError::TooLarge(text.to_string()));
    }
    Ok(if negative { -value } else { value })
}

/// The same from a JSON value: an integer, a float with no fraction, or a decimal string.
pub fn vnd_from_json(value: &serde_json::Value) -> Result<i64, AmountError> {
    match value {
        serde_json::Value::String(s) => vnd_exact(s),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if i.abs() <= MAX_TRANSFER_VND => Ok(i),
            Some(_) => Err(AmountError::TooLarge(n.to_string())),
            // A float: exact only when it is a whole number small enough for f64 to hold.
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => vnd_exact(&format!("{f:.0}")),
                Some(f) if f.fract() != 0.0 => Err(AmountError::Fractional(n.to_string())),
                _ => Err(AmountError::TooLarge(n.to_string())),
            },
        },
        other => Err(AmountError::NotANumber(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_become_exact_integers_and_fractions_are_refused() {
        assert_eq!(vnd_exact("18067000.00"), Ok(18_067_000));
        assert_eq!(vnd_exact("18067000"), Ok(18_067_000));
        assert_eq!(vnd_exact(" 0.000 "), Ok(0));
        assert_eq!(vnd_exact("-500.0"), Ok(-500));
        assert_eq!(vnd_exact("499000.5"), Err(AmountError::Fractional("499000.5".into())));
        assert_eq!(vnd_exact("0.01"), Err(AmountError::Fractional("0.01".into())));
        for bad in ["", ".", "1,000", "1e6", "abc", "1.2.3", "--1", "١٢٣"] {
            assert!(matches!(vnd_exact(bad), Err(AmountError::NotANumber(_))), "{bad:?}");
        }
        assert!(matches!(vnd_exact("99999999999999999999"), Err(AmountError::TooLarge(_))));
        assert!(matches!(vnd_exact("1000000000000001"), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn json_amounts() {
        use serde_json::json;
        assert_eq!(vnd_from_json(&json!(16775000)), Ok(16_775_000));
        assert_eq!(vnd_from_json(&json!(-16775000)), Ok(-16_775_000));
        assert_eq!(vnd_from_json(&json!(16775000.0)), Ok(16_775_000));
        assert_eq!(vnd_from_json(&json!("2277000.00")), Ok(2_277_000));
        assert!(matches!(vnd_from_json(&json!(1.5)), Err(AmountError::Fractional(_))));
        assert!(matches!(vnd_from_json(&json!(null)), Err(AmountError::NotANumber(_))));
        assert!(matches!(vnd_from_json(&json!(1e300)), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn gateways_by_name() {
        assert_eq!(Gateway::parse("SePay"), Some(Gateway::Sepay));
        assert_eq!(Gateway::parse("casso"), Some(Gateway::Casso));
        assert_eq!(Gateway::parse("payOS"), Some(Gateway::Payos));
        assert_eq!(Gateway::parse("momo"), None);
    }
}

/// What we are paid into, to tell our transfers from others'.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub pattern: crate::domain::CodePattern,
    pub account_number: String,
}

/// The account buyers pay into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    /// SePay's short bank name, used in its QR link (`MBBank`, `Vietcombank`, …).
    pub bank_code: String,
    /// The bank's 6-digit NAPAS BIN, used in the VietQR payload (MB Bank: 970422).
    pub bank_bin: String,
    pub account_number: String,
    pub account_name: String,
}
