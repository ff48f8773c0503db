//! payOS's two signatures, exactly as payOS's own SDKs make them (payos-lib-node v2,
//! payos-lib-python), checked byte for byte against the SDKs' test vectors: payOS has no
//! sandbox, so those vectors are the ground truth.
//!
//! - **Creating a payment link** is signed over exactly five fields, in this order, with raw
//!   (not URL-encoded) values: `amount=…&cancelUrl=…&description=…&orderCode=…&returnUrl=…`.
//! - **A webhook** is signed over every key of its `data`, sorted ascending, as `key=value`
//!   joined by `&`: a null is an empty string, numbers and booleans as JSON writes them,
//!   strings raw, and an array or object as its JSON with the keys of each object sorted.
//!
//! Both are lower-case hex HMAC-SHA256 with the merchant's checksum key. A signature is
//! compared in constant time.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What a payment link's creation signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkToSign<'a> {
    pub amount: i64,
    pub cancel_url: &'a str,
    pub description: &'a str,
    pub order_code: i64,
    pub return_url: &'a str,
}

/// The `signature` of `POST /v2/payment-requests`.
pub fn sign_link(checksum_key: &str, link: &LinkToSign<'_>) -> String {
    let message = format!(
        "amount={}&cancelUrl={}&description={}&orderCode={}&returnUrl={}",
        link.amount, link.cancel_url, link.description, link.order_code, link.return_url
    );
    hmac_hex(checksum_key, &message)
}

/// A JSON value with the keys of every object sorted, as the SDKs write nested values.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// One value as the signed text writes it.
fn written(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        nested => sorted(nested).to_string(),
    }
}

/// The text a webhook's `data` is signed over; `None` when `data` is not an object.
pub fn webhook_message(data: &Value) -> Option<String> {
    let map = data.as_object()?;
    let keys: BTreeMap<&String, &Value> = map.iter().collect();
    Some(keys.into_iter().map(|(k, v)| format!("{k}={}", written(v))).collect::<Vec<_>>().join("&"))
}

/// The signature of a webhook's (or a payment link answer's) `data`.
pub fn sign_data(checksum_key: &str, data: &Value) -> Option<String> {
    webhook_message(data).map(|message| hmac_hex(checksum_key, &message))
}

/// Whether `signature` is `data`'s under `checksum_key`, compared in constant time. An empty
/// key verifies nothing: a payOS that is not configured accepts no webhook.
pub fn verify_data(checksum_key: &str, data: &Value, signature: &str) -> bool {
    if checksum_key.is_empty() {
        return false;
    }
    let Some(expected) = sign_data(checksum_key, data) else { return false };
    let given = signature.trim().to_ascii_lowercase();
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// payOSHQ/payos-lib-python tests/_crypto/testCases.json (key `test_checksum_key`).
    #[test]
    fn the_sdks_create_vector() {
        let link = LinkToSign {
            amount: 2000,
            cancel_url: "http://localhost",
            description: "Thanh toán đơn hàng",
            order_code: 0,
            return_url: "http://localhost",
        };
        assert_eq!(
            sign_link("test_checksum_key", &link),
            "d8b7b0e5d19edfe7b1f53dedeb8d1c7c2b62fabd7eb320dbc514c58f13e9e2c5"
        );
    }

    fn sdk_webhook_data() -> Value {
        json!({
            "accountNumber": "0123456789", "amount": 20000, "description": "thanh toan",
            "reference": "FT-REFERENCE", "transactionDateTime": "2025-12-12 09:00:00",
            "virtualAccountNumber": "", "counterAccountBankId": "01202001", "counterAccountBankName": "",
            "counterAccountName": "NGUYEN VAN A", "counterAccountNumber": "9876543210", "virtualAccountName": "",
            "currency": "VND", "orderCode": 0, "paymentLinkId": "payment-link-id", "code": "00", "desc": "success"
        })
    }

    #[test]
    fn the_sdks_webhook_vector() {
        let expected = "302b3becca1672dff99daafae2965f40e48ea3ca39453e4bf37fbcc26807a0e8";
        assert_eq!(sign_data("test_checksum_key", &sdk_webhook_data()).unwrap(), expected);
        assert!(verify_data("test_checksum_key", &sdk_webhook_data(), expected));
        assert!(verify_data("test_checksum_key", &sdk_webhook_data(), &expected.to_uppercase()));
    }

    #[test]
    fn anything_changed_or_keyed_otherwise_does_not_verify() {
        let good = sign_data("test_checksum_key", &sdk_webhook_data()).unwrap();
        let mut more = sdk_webhook_data();
        more["amount"] = json!(20001);
        assert!(!verify_data("test_checksum_key", &more, &good), "a changed amount");
        let mut nulled = sdk_webhook_data();
        nulled["counterAccountBankName"] = Value::Null;
        assert!(verify_data("test_checksum_key", &nulled, &good), "null is written as the empty string");
        assert!(!verify_data("another_key", &sdk_webhook_data(), &good), "another key");
        assert!(!verify_data("", &sdk_webhook_data(), &good), "no key verifies nothing");
        assert!(!verify_data("test_checksum_key", &sdk_webhook_data(), ""), "no signature");
        assert!(!verify_data("test_checksum_key", &json!("not an object"), &good));
    }

    #[test]
    fn keys_are_sorted_and_nested_values_written_as_sorted_json() {
        let data = json!({"b": 1, "a": null, "c": [{"y": 2, "x": "é"}], "d": true});
        assert_eq!(webhook_message(&data).unwrap(), r#"a=&b=1&c=[{"x":"é","y":2}]&d=true"#);
    }
}
