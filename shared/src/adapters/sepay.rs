//! SePay: the bank-transfer webhook's payload, its authentication, and the QR image link.

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// One transaction as SePay posts it. Unknown fields are ignored; the fields we act on are
/// required and typed; the rest are optional because SePay sends `null` for them at times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SepayTransaction {
    /// SePay's transaction id: the key that makes redeliveries harmless.
    pub id: i64,
    #[serde(default)]
    pub gateway: Option<String>,
    /// "YYYY-MM-DD HH:MM:SS", Vietnam time; kept as text.
    #[serde(default)]
    pub transaction_date: Option<String>,
    #[serde(default)]
    pub account_number: Option<String>,
    /// `null` or `""` when the transfer did not go to a virtual sub-account.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub sub_account: Option<String>,
    /// The payment code SePay recognised in the text, if any.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    pub transfer_type: TransferType,
    /// Integer VND. Some integrations send it as a numeric string; both are accepted.
    #[serde(deserialize_with = "integer_or_numeric_string")]
    pub transfer_amount: i64,
    #[serde(default)]
    pub reference_code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

pub use crate::domain::transfer::TransferType;
use crate::domain::transfer::{BankTransfer, Gateway};

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

fn integer_or_numeric_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Text(String),
    }
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(s) => crate::domain::transfer::vnd_exact(&s).map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("body is not a valid SePay transaction: {0}")]
    Invalid(String),
    #[error("transferAmount must not be negative")]
    NegativeAmount,
}

impl SepayTransaction {
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let tx: SepayTransaction = serde_json::from_slice(body).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        if tx.transfer_amount < 0 {
            return Err(PayloadError::NegativeAmount);
        }
        if tx.transfer_amount > crate::domain::transfer::MAX_TRANSFER_VND {
            return Err(PayloadError::Invalid("transferAmount is too large".into()));
        }
        Ok(tx)
    }

    /// The transfer as the payment path takes it; `raw` is the body exactly as received.
    pub fn into_transfer(self, raw: String) -> BankTransfer {
        BankTransfer {
            gateway: Gateway::Sepay,
            id: self.id.to_string(),
            transfer_type: self.transfer_type,
            amount_vnd: self.transfer_amount,
            bank: self.gateway,
            account_number: self.account_number,
            sub_account: self.sub_account,
            code: self.code,
            content: self.content,
            description: self.description,
            reference: self.reference_code,
            transaction_date: self.transaction_date,
            raw,
        }
    }
}

/// How the webhook proves it comes from SePay, chosen by configuration.
#[derive(Clone)]
pub enum WebhookAuth {
    /// `Authorization: Apikey <key>`.
    ApiKey(String),
    /// `X-SePay-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` with
    /// `X-SePay-Timestamp` (Unix seconds) within `tolerance_secs` of now.
    Hmac { secret: String, tolerance_secs: i64 },
    /// No key configured: every request is refused.
    Unconfigured { reason: String },
}

impl std::fmt::Debug for WebhookAuth {
    // Never print a secret, even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookAuth::ApiKey(_) => f.write_str("ApiKey(***)"),
            WebhookAuth::Hmac { tolerance_secs, .. } => write!(f, "Hmac(***, ±{tolerance_secs}s)"),
            WebhookAuth::Unconfigured { reason } => write!(f, "Unconfigured({reason})"),
        }
    }
}

/// What the request carried, as text.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuthHeaders<'a> {
    pub authorization: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the webhook has no key configured, so every request is refused")]
    NotConfigured,
    #[error("missing credentials")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("signature timestamp is outside the allowed window")]
    Expired,
}

/// Equality in time that depends on neither the content nor the length of the secret.
fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// SePay's HMAC signature: hex HMAC-SHA256 over `"{timestamp}.{body}"`.
pub use super::signing::sign;

impl WebhookAuth {
    pub fn verify(&self, h: AuthHeaders<'_>, body: &[u8], now_unix: i64) -> Result<(), AuthError> {
        match self {
            WebhookAuth::Unconfigured { .. } => Err(AuthError::NotConfigured),
            WebhookAuth::ApiKey(key) => {
                let header = h.authorization.ok_or(AuthError::Missing)?.trim();
                let (scheme, given) = header.split_once(' ').ok_or(AuthError::Invalid)?;
                if !scheme.eq_ignore_ascii_case("apikey") {
                    return Err(AuthError::Invalid);
                }
                if secret_eq(given.trim().as_bytes(), key.as_bytes()) { Ok(()) } else { Err(AuthError::Invalid) }
            }
            WebhookAuth::Hmac { secret, tolerance_secs } => {
                let (Some(signature), Some(timestamp)) = (h.signature, h.timestamp) else {
                    return Err(AuthError::Missing);
                };
                let timestamp = timestamp.trim();
                let ts: i64 = timestamp.parse().map_err(|_| AuthError::Invalid)?;
                if (now_unix - ts).abs() > *tolerance_secs {
                    return Err(AuthError::Expired);
                }
                let given = signature.trim();
                let given = given.strip_prefix("sha256=").unwrap_or(given).to_ascii_lowercase();
                let expected = sign(secret, timestamp, body);
                if secret_eq(given.as_bytes(), expected.as_bytes()) { Ok(()) } else { Err(AuthError::Invalid) }
            }
        }
    }
}

/// SePay's QR image for a transfer: `https://qr.sepay.vn/img?acc=…&bank=…&amount=…&des=…`.
pub fn qr_image_url(account: &str, bank: &str, amount: i64, description: &str) -> String {
    format!(
        "https://qr.sepay.vn/img?acc={}&bank={}&amount={amount}&des={}",
        url_encode(account),
        url_encode(bank),
        url_encode(description)
    )
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"id":92704,"gateway":"Vietcombank","transactionDate":"2023-03-25 14:02:37",
        "accountNumber":"0123499999","code":null,"content":"chuyen tien mua iphone","transferType":"in",
        "transferAmount":2277000,"accumulated":19077000,"subAccount":null,"referenceCode":"MBVCB.3278907687",
        "description":"","somethingNew":{"x":1}}"#;

    #[test]
    fn parses_the_documented_payload_and_ignores_unknown_fields() {
        let tx = SepayTransaction::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(tx.id, 92704);
        assert_eq!(tx.transfer_type, TransferType::In);
        assert_eq!(tx.transfer_amount, 2_277_000);
        assert_eq!(tx.code, None);
        assert_eq!(tx.sub_account, None);
        let with_empty = SAMPLE
            .replace(r#""subAccount":null"#, r#""subAccount":"""#)
            .replace(r#""transferAmount":2277000"#, r#""transferAmount":"2277000""#);
        let tx2 = SepayTransaction::parse(with_empty.as_bytes()).unwrap();
        assert_eq!((tx2.sub_account, tx2.transfer_amount), (None, 2_277_000));
        let decimal = SAMPLE.replace(r#""transferAmount":2277000"#, r#""transferAmount":"2277000.00""#);
        assert_eq!(SepayTransaction::parse(decimal.as_bytes()).unwrap().transfer_amount, 2_277_000);
    }

    #[test]
    fn refuses_malformed_payloads() {
        for body in [
            "",
            "not json",
            "[]",
            r#"{"id":1,"transferType":"in"}"#,
            r#"{"id":1,"transferType":"sideways","transferAmount":1}"#,
            r#"{"id":"abc","transferType":"in","transferAmount":1}"#,
            r#"{"id":1,"transferType":"in","transferAmount":1.5}"#,
            r#"{"id":1,"transferType":"in","transferAmount":"499000.50"}"#,
            r#"{"id":1,"transferType":"in","transferAmount":1000000000000000001}"#,
        ] {
            assert!(matches!(SepayTransaction::parse(body.as_bytes()), Err(PayloadError::Invalid(_))), "{body}");
        }
        assert_eq!(
            SepayTransaction::parse(br#"{"id":1,"transferType":"in","transferAmount":-5}"#),
            Err(PayloadError::NegativeAmount)
        );
    }

    #[test]
    fn api_key_auth() {
        let auth = WebhookAuth::ApiKey("s3cret".into());
        let with = |a: Option<&'static str>| AuthHeaders { authorization: a, ..Default::default() };
        assert_eq!(auth.verify(with(Some("Apikey s3cret")), b"{}", 0), Ok(()));
        assert_eq!(auth.verify(with(Some("APIKEY  s3cret ")), b"{}", 0), Ok(()));
        assert_eq!(auth.verify(with(Some("Apikey s3cret2")), b"{}", 0), Err(AuthError::Invalid));
        assert_eq!(auth.verify(with(Some("Bearer s3cret")), b"{}", 0), Err(AuthError::Invalid));
        assert_eq!(auth.verify(with(Some("s3cret")), b"{}", 0), Err(AuthError::Invalid));
        assert_eq!(auth.verify(with(None), b"{}", 0), Err(AuthError::Missing));
        let none = WebhookAuth::Unconfigured { reason: "SEPAY_API_KEY is not set".into() };
        assert_eq!(none.verify(with(Some("Apikey ")), b"{}", 0), Err(AuthError::NotConfigured));
        assert_eq!(format!("{auth:?}"), "ApiKey(***)");
    }

    #[test]
    fn hmac_auth() {
        let auth = WebhookAuth::Hmac { secret: "k".into(), tolerance_secs: 300 };
        let body = br#"{"id":1}"#;
        let sig = format!("sha256={}", sign("k", "1700000000", body));
        let h = AuthHeaders { authorization: None, signature: Some(&sig), timestamp: Some("1700000000") };
        assert_eq!(auth.verify(h, body, 1_700_000_100), Ok(()));
        assert_eq!(auth.verify(h, body, 1_700_000_301), Err(AuthError::Expired));
        assert_eq!(auth.verify(h, body, 1_699_999_699), Err(AuthError::Expired));
        assert_eq!(auth.verify(h, br#"{"id":2}"#, 1_700_000_000), Err(AuthError::Invalid));
        let bare = sign("k", "1700000000", body).to_uppercase();
        let h2 = AuthHeaders { signature: Some(&bare), ..h };
        assert_eq!(auth.verify(h2, body, 1_700_000_000), Ok(()));
        let h3 = AuthHeaders { timestamp: None, ..h };
        assert_eq!(auth.verify(h3, body, 1_700_000_000), Err(AuthError::Missing));
    }

    #[test]
    fn qr_link_is_encoded() {
        assert_eq!(
            qr_image_url("0123456789", "MBBank", 499000, "CD 123/&"),
            "https://qr.sepay.vn/img?acc=0123456789&bank=MBBank&amount=499000&des=CD%20123%2F%26"
        );
    }
}
