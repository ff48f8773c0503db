//! payOS, a payment gateway: its webhook (`POST /webhooks/payos`), signed in its body.
//!
//! payOS signs `data` with the merchant's checksum key (see [`super::payos_signature`]).
//! A delivery is a transfer into the seller's account for one payment link: `orderCode` is
//! the integer payOS knows the order by (our code's number, `CodePattern::payos_number`),
//! and `reference` is the bank's reference, the identity the same transfer has when SePay or
//! Casso reports it too.

use serde_json::Value;
use thiserror::Error;

use super::bank_api::text;
use super::payos_signature;
use crate::domain::CodePattern;
use crate::domain::transfer::{BankTransfer, Gateway, TransferType, vnd_from_json};

/// The checksum key, or none: with none every payOS webhook is refused.
#[derive(Clone)]
pub enum PayosAuth {
    ChecksumKey(String),
    Unconfigured,
}

impl std::fmt::Debug for PayosAuth {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayosAuth::ChecksumKey(_) => f.write_str("ChecksumKey(***)"),
            PayosAuth::Unconfigured => f.write_str("Unconfigured"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayosWebhookError {
    #[error("payOS webhooks are not configured on this server (no PAYOS_CHECKSUM_KEY)")]
    NotConfigured,
    #[error("a payOS delivery carries `data` and its `signature`")]
    Unsigned,
    #[error("the signature does not match the data")]
    Invalid,
    #[error("{field} {reason}")]
    Payload { field: &'static str, reason: String },
}

impl PayosAuth {
    /// Checks the body's signature over its `data`, in constant time.
    pub fn verify(&self, body: &Value) -> Result<(), PayosWebhookError> {
        let PayosAuth::ChecksumKey(key) = self else { return Err(PayosWebhookError::NotConfigured) };
        let (Some(data), Some(signature)) = (body.get("data"), body.get("signature").and_then(Value::as_str)) else {
            return Err(PayosWebhookError::Unsigned);
        };
        if payos_signature::verify_data(key, data, signature) { Ok(()) } else { Err(PayosWebhookError::Invalid) }
    }
}

/// payOS's documented sample delivery, which integrators report it posts (signed) to check a
/// URL given to `confirm-webhook`: answered 2xx and recorded nowhere, so registering the
/// webhook leaves no 3,000 VND "payment" for the seller to explain.
pub fn is_validation_call(body: &Value) -> bool {
    let data = body.get("data");
    let field = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str);
    field("paymentLinkId") == Some("124c33293c43417ab7879e14c8d9eb18") && field("reference") == Some("TF230204212323")
}

/// The transfer a verified payOS webhook reports. `raw` is the body as received.
pub fn webhook_transfer(body: &Value, raw: &str, pattern: &CodePattern) -> Result<BankTransfer, PayosWebhookError> {
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or(PayosWebhookError::Payload { field: "data", reason: "must be an object".into() })?;
    let amount = data
        .get("amount")
        .ok_or(PayosWebhookError::Payload { field: "amount", reason: "is missing".into() })
        .and_then(|a| {
            vnd_from_json(a).map_err(|e| PayosWebhookError::Payload { field: "amount", reason: e.to_string() })
        })?;
    let reference = text(data, "reference")
        .ok_or(PayosWebhookError::Payload { field: "reference", reason: "is missing".into() })?;
    let link = text(data, "paymentLinkId").unwrap_or_default();
    let order_number = data.get("orderCode").and_then(Value::as_i64);
    Ok(BankTransfer {
        gateway: Gateway::Payos,
        // payOS gives no transaction id of its own: the link and the bank's reference name
        // the transfer, so a redelivery is the same row.
        id: format!("{link}:{reference}"),
        transfer_type: if amount < 0 { TransferType::Out } else { TransferType::In },
        amount_vnd: amount.abs(),
        bank: text(data, "counterAccountBankName"),
        account_number: text(data, "accountNumber"),
        sub_account: text(data, "virtualAccountNumber"),
        // The order payOS's link was made for, whatever the transfer's text says.
        code: order_number.and_then(|n| pattern.from_payos_number(n)).map(|c| c.to_string()),
        content: text(data, "description"),
        description: None,
        reference: Some(reference),
        transaction_date: text(data, "transactionDateTime"),
        raw: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::CodeCharset;

    fn signed(data: Value, key: &str) -> Value {
        let signature = payos_signature::sign_data(key, &data).unwrap();
        json!({"code": "00", "desc": "success", "success": true, "data": data, "signature": signature})
    }

    fn data() -> Value {
        json!({
            "orderCode": 481239, "amount": 499000, "description": "CD00481239", "accountNumber": "0123456789",
            "reference": "FT25339123456", "transactionDateTime": "2026-12-05 10:00:00", "currency": "VND",
            "paymentLinkId": "pl-1", "code": "00", "desc": "success", "counterAccountBankId": "",
            "counterAccountBankName": "Vietcombank", "counterAccountName": "NGUYEN VAN A",
            "counterAccountNumber": "9876543210", "virtualAccountName": "", "virtualAccountNumber": ""
        })
    }

    #[test]
    fn a_signed_delivery_is_the_transfer_for_its_order() {
        let auth = PayosAuth::ChecksumKey("k".into());
        let body = signed(data(), "k");
        assert_eq!(auth.verify(&body), Ok(()));
        let pattern = CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap();
        let t = webhook_transfer(&body, "{}", &pattern).unwrap();
        assert_eq!(t.gateway, Gateway::Payos);
        assert_eq!((t.id.as_str(), t.amount_vnd, t.transfer_type), ("pl-1:FT25339123456", 499_000, TransferType::In));
        assert_eq!(t.code.as_deref(), Some("CD00481239"));
        assert_eq!(t.reference.as_deref(), Some("FT25339123456"));
        assert!(t.sub_account.is_none(), "an empty virtual account is none");
    }

    #[test]
    fn an_unsigned_tampered_or_wrongly_keyed_delivery_is_refused() {
        let auth = PayosAuth::ChecksumKey("k".into());
        let mut tampered = signed(data(), "k");
        tampered["data"]["amount"] = json!(4_990_000);
        assert_eq!(auth.verify(&tampered), Err(PayosWebhookError::Invalid));
        assert_eq!(auth.verify(&signed(data(), "other")), Err(PayosWebhookError::Invalid));
        assert_eq!(auth.verify(&json!({"data": data()})), Err(PayosWebhookError::Unsigned));
        assert_eq!(PayosAuth::Unconfigured.verify(&signed(data(), "k")), Err(PayosWebhookError::NotConfigured));
    }
}
