//! Casso, a second bank feed: its webhook v2 (signed with `X-Casso-Signature`) and its
//! transaction API (`GET /v2/transactions`, for reconciliation).
//!
//! The signature is checked exactly as Casso's reference code makes it: HMAC-SHA512 with the
//! checksum key over `t + "." + JSON.stringify(sortObjDataByKey(body))` — the JSON of the
//! *parsed* body with object keys sorted at every depth, written as JavaScript writes it
//! (no spaces, non-ASCII text as it is, `"`, `\` and control characters escaped). The raw
//! bytes are not what is signed, so a body re-spaced or with its keys in another order in
//! transit still verifies, and a changed value never does.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha512;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::bank_api::{ApiClient, FeedError, Pacing, text};
use crate::domain::bank_feed::{BankFeed, Listed, Listing, Start};
use crate::domain::transfer::{BankTransfer, Gateway, TransferType, vnd_from_json};

pub const DEFAULT_API_BASE_URL: &str = "https://oauth.casso.vn";
pub const SIGNATURE_HEADER: &str = "x-casso-signature";

/// The webhook's key, or none: with none every request is refused.
#[derive(Clone)]
pub enum CassoAuth {
    ChecksumKey { key: String, tolerance_secs: i64 },
    Unconfigured { reason: String },
}

impl std::fmt::Debug for CassoAuth {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CassoAuth::ChecksumKey { tolerance_secs, .. } => write!(f, "ChecksumKey(***, ±{tolerance_secs}s)"),
            CassoAuth::Unconfigured { reason } => write!(f, "Unconfigured({reason})"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the Casso webhook has no checksum key configured, so every request is refused")]
    NotConfigured,
    #[error("no X-Casso-Signature header")]
    Missing,
    #[error("X-Casso-Signature is not of the form t=<unix ms>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is outside the allowed window")]
    Expired,
    #[error("the signature does not match the body")]
    Invalid,
}

/// `sortObjDataByKey` then `JSON.stringify`, as Casso's reference does them, written out by
/// hand because two rules of JavaScript decide the text:
/// - arrays are objects to that function (`typeof [] === "object"`), so they become objects
///   keyed "0", "1", …;
/// - a JavaScript object lists integer-like keys ("0" … "4294967294") first, in numeric
///   order, whatever order they were added in, then the other keys in the order added (here
///   sorted, by UTF-16 code units as `Array.prototype.sort` compares).
///
/// Strings are escaped as `JSON.stringify` escapes them (serde_json's escaping is the same:
/// `"`, `\`, `\b\f\n\r\t`, other control characters as lower-case `\u00xx`, the rest as is).
pub fn canonical_json(value: &Value) -> String {
    fn index_key(k: &str) -> Option<u32> {
        let n: u32 = k.parse().ok()?;
        (n != u32::MAX && n.to_string() == k).then_some(n)
    }
    fn object<'a>(entries: impl Iterator<Item = (String, &'a Value)>, out: &mut String) {
        let mut entries: Vec<(String, &Value)> = entries.collect();
        entries.sort_by(|(a, _), (b, _)| match (index_key(a), index_key(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.encode_utf16().cmp(b.encode_utf16()),
        });
        out.push('{');
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(&k).expect("a string always serialises"));
            out.push(':');
            write(v, out);
        }
        out.push('}');
    }
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => object(map.iter().map(|(k, v)| (k.clone(), v)), out),
            Value::Array(items) => object(items.iter().enumerate().map(|(i, v)| (i.to_string(), v)), out),
            other => out.push_str(&serde_json::to_string(other).expect("a JSON value always serialises")),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The signature Casso sends for `body` at `t` (Unix milliseconds): hex HMAC-SHA512.
pub fn sign(key: &str, t: &str, body: &Value) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(canonical_json(body).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn parse_header(header: &str) -> Option<(&str, &str)> {
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value.trim()),
            Some(("v1", value)) => v1 = Some(value.trim()),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && !v1.is_empty()).then_some((t, v1))
}

impl CassoAuth {
    pub fn verify(&self, header: Option<&str>, body: &Value, now_ms: i64) -> Result<(), SignatureError> {
        let CassoAuth::ChecksumKey { key, tolerance_secs } = self else { return Err(SignatureError::NotConfigured) };
        let (t, given) = parse_header(header.ok_or(SignatureError::Missing)?).ok_or(SignatureError::Malformed)?;
        let at: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
        if (now_ms - at).abs() > tolerance_secs * 1000 {
            return Err(SignatureError::Expired);
        }
        let expected = sign(key, t, body);
        let given = given.to_ascii_lowercase();
        if given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CassoPayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("data.{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// The transaction in a webhook v2 body, or `None` when it carries none: Casso's dashboard
/// test call sends its sample transaction (id 0), and integrators report test calls with no
/// or empty `data`.
pub fn webhook_transfer(body: &Value, raw: &str) -> Result<Option<BankTransfer>, CassoPayloadError> {
    let data = match body.get("data") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) if m.is_empty() => return Ok(None),
        Some(Value::Array(a)) if a.is_empty() => return Ok(None),
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(CassoPayloadError::Field { field: "data", reason: "must be an object".into() }),
    };
    let id = match data.get("id") {
        // Casso's dashboard test sends its sample transaction, id 0 ("MA_GIAO_DICH_THU_NGHIEM").
        Some(Value::Number(n)) if n.as_u64() == Some(0) => return Ok(None),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) => return Ok(None),
        Some(_) => return Err(CassoPayloadError::Field { field: "id", reason: "must be a transaction id".into() }),
    };
    let amount =
        data.get("amount").ok_or(CassoPayloadError::Field { field: "amount", reason: "is missing".into() }).and_then(
            |a| vnd_from_json(a).map_err(|e| CassoPayloadError::Field { field: "amount", reason: e.to_string() }),
        )?;
    Ok(Some(BankTransfer {
        gateway: Gateway::Casso,
        id,
        // Casso reports money out as a negative amount.
        transfer_type: if amount < 0 { TransferType::Out } else { TransferType::In },
        amount_vnd: amount.abs(),
        bank: text(data, "bankName").or_else(|| text(data, "bankAbbreviation")),
        account_number: text(data, "accountNumber"),
        sub_account: text(data, "virtualAccountNumber"),
        code: None,
        content: text(data, "description"),
        description: None,
        reference: text(data, "reference"),
        transaction_date: text(data, "transactionDateTime"),
        raw: raw.to_string(),
    }))
}

/// Casso's transaction API: `GET /v2/transactions?fromDate&toDate&page&pageSize&sort`
/// with `Authorization: Apikey <key>`; pages of `data.records`.
pub struct CassoApi {
    client: ApiClient,
    base_url: String,
    page_size: u32,
}

impl CassoApi {
    pub fn new(base_url: &str, api_key: &str, page_size: u32, pacing: Pacing) -> Self {
        CassoApi {
            client: ApiClient::new("Casso", format!("Apikey {api_key}"), "retry-after", pacing),
            base_url: base_url.trim_end_matches('/').to_string(),
            page_size: page_size.max(1),
        }
    }
}

pub use crate::domain::today_in_vietnam;

struct ApiRecord {
    id: i64,
    when: String,
    transfer: Result<BankTransfer, String>,
}

fn api_record(v: &Value) -> Result<ApiRecord, FeedError> {
    let id = v
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| FeedError::Invalid { feed: "Casso", reason: format!("a record without a numeric id: {v}") })?;
    let when = text(v, "when").unwrap_or_default();
    let transfer = match v.get("amount").map(vnd_from_json) {
        Some(Ok(amount)) => Ok(BankTransfer {
            gateway: Gateway::Casso,
            id: id.to_string(),
            transfer_type: if amount < 0 { TransferType::Out } else { TransferType::In },
            amount_vnd: amount.abs(),
            bank: text(v, "bankCodeName"),
            account_number: text(v, "bankSubAccId"),
            sub_account: text(v, "virtualAccount"),
            code: None,
            content: text(v, "description"),
            description: None,
            reference: text(v, "tid"),
            transaction_date: Some(when.clone()).filter(|w| !w.is_empty()),
            raw: v.to_string(),
        }),
        Some(Err(e)) => Err(format!("Casso transaction {id}: {e}")),
        None => Err(format!("Casso transaction {id}: no amount")),
    };
    Ok(ApiRecord { id, when, transfer })
}

impl BankFeed for CassoApi {
    fn gateway(&self) -> Gateway {
        Gateway::Casso
    }

    /// Every record from the start's day to today, oldest first (`sort=ASC`, so records that
    /// arrive while we page are appended after what we read, never shifted under us). A
    /// stored cursor is re-listed from the day before it: a bank may post a transfer with
    /// yesterday's date after today's have arrived.
    async fn list(&self, start: &Start) -> Result<Listing, FeedError> {
        let from = match start {
            Start::Cursor(c) => {
                NaiveDate::parse_from_str(c, "%Y-%m-%d").map_err(|_| FeedError::Invalid {
                    feed: "Casso",
                    reason: format!("stored cursor {c:?} is not a date"),
                })? - chrono::Duration::days(1)
            }
            Start::Since(day) => *day,
        };
        let to = today_in_vietnam();
        let url = format!("{}/v2/transactions", self.base_url);
        let mut seen: BTreeMap<(String, i64), ApiRecord> = BTreeMap::new();
        let mut page = 1u32;
        loop {
            let query = [
                ("fromDate", from.to_string()),
                ("toDate", to.to_string()),
                ("page", page.to_string()),
                ("pageSize", self.page_size.to_string()),
                ("sort", "ASC".to_string()),
            ];
            let body = self.client.get_json(&url, &query).await?;
            let invalid = |reason: String| FeedError::Invalid { feed: "Casso", reason };
            if body.get("error").and_then(Value::as_i64).unwrap_or(0) != 0 {
                return Err(invalid(format!("error {} in the answer", body["error"])));
            }
            let data = body.get("data").ok_or_else(|| invalid("no data in the answer".into()))?;
            let records =
                data.get("records").and_then(Value::as_array).ok_or_else(|| invalid("no data.records".into()))?;
            for r in records {
                let r = api_record(r)?;
                seen.entry((r.when.clone(), r.id)).or_insert(r);
            }
            let total_pages = data.get("totalPages").and_then(Value::as_u64).unwrap_or(0);
            if records.is_empty() || u64::from(page) >= total_pages {
                break;
            }
            page += 1;
            if page > 100_000 {
                return Err(FeedError::Unbounded { feed: "Casso", pages: page });
            }
        }
        let items = seen
            .into_values()
            .map(|r| Listed {
                id: r.id.to_string(),
                // The day of the transfer: listing again from there repeats only what the
                // database already has.
                cursor_after: r.when.get(..10).map(str::to_string).unwrap_or_else(|| from.to_string()),
                transfer: r.transfer,
            })
            .collect();
        Ok(Listing { items, requests: page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Casso's own example (CassoHQ/casso-webhook-v2-verify-signature, python.py): its key,
    /// header and body, verified as published. (The JavaScript sample's signature in the
    /// same repository does not verify with that sample's own code: checked with Node 20.)
    /// The body is Casso's test transaction, id 0.
    const REFERENCE_KEY: &str = "mgExMrjj4i7a1p8Cs6LmFbpCd8lbw4sSX4LZXPag7TKazeIogtR90tvWYTkwQbvs";
    const REFERENCE_HEADER: &str = "t=1727948258788,v1=ed0a4bd2e826d5cb69988cdb141e6c1a080e21f3b57eb72cd78192220042b9e7dde0868fc667faea8e224900fa7904e7c88dfa098032fb2d6b6996856e8b7ff3";
    const REFERENCE_AT: i64 = 1_727_948_258_788;

    fn reference_body() -> Value {
        json!({"error": 0, "data": {"id": 0, "reference": "MA_GIAO_DICH_THU_NGHIEM", "description": "giao dich thu nghiem",
            "amount": 599000, "runningBalance": 25000000, "transactionDateTime": "2024-10-03 15:06:37",
            "accountNumber": "88888888", "bankName": "VPBank", "bankAbbreviation": "VPB", "virtualAccountNumber": "",
            "virtualAccountName": "", "counterAccountName": "NGUYEN VAN A", "counterAccountNumber": "8888888888",
            "counterAccountBankId": "970415", "counterAccountBankName": "VietinBank"}})
    }

    fn auth() -> CassoAuth {
        CassoAuth::ChecksumKey { key: REFERENCE_KEY.into(), tolerance_secs: 300 }
    }

    #[test]
    fn casso_reference_example_verifies() {
        let at = REFERENCE_AT;
        assert_eq!(auth().verify(Some(REFERENCE_HEADER), &reference_body(), at + 1000), Ok(()));
    }

    #[test]
    fn tampering_staleness_and_missing_keys_are_refused() {
        let at = REFERENCE_AT;
        let mut tampered = reference_body();
        tampered["data"]["amount"] = json!(599001);
        assert_eq!(auth().verify(Some(REFERENCE_HEADER), &tampered, at), Err(SignatureError::Invalid));
        let other_t = REFERENCE_HEADER.replace("t=1727948258788", "t=1727948258789");
        assert_eq!(auth().verify(Some(&other_t), &reference_body(), at), Err(SignatureError::Invalid));
        assert_eq!(
            auth().verify(Some(REFERENCE_HEADER), &reference_body(), at + 301_000),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            auth().verify(Some(REFERENCE_HEADER), &reference_body(), at - 301_000),
            Err(SignatureError::Expired)
        );
        assert_eq!(auth().verify(None, &reference_body(), at), Err(SignatureError::Missing));
        for bad in ["", "v1=abc", "t=,v1=abc", "t=12a,v1=abc", "sha512=abc"] {
            assert_eq!(auth().verify(Some(bad), &reference_body(), at), Err(SignatureError::Malformed), "{bad}");
        }
        let none = CassoAuth::Unconfigured { reason: "CASSO_CHECKSUM_KEY is not set".into() };
        assert_eq!(none.verify(Some(REFERENCE_HEADER), &reference_body(), at), Err(SignatureError::NotConfigured));
        assert_eq!(format!("{:?}", auth()), "ChecksumKey(***, ±300s)");
    }

    #[test]
    fn keys_in_another_order_and_spacing_verify_the_same() {
        let at = REFERENCE_AT;
        let reordered = r#"{ "data" : { "counterAccountBankName":"VietinBank", "amount": 599000, "id":0,
            "bankAbbreviation":"VPB","virtualAccountName":"","reference":"MA_GIAO_DICH_THU_NGHIEM","runningBalance":25000000,
            "description":"giao dich thu nghiem","accountNumber":"88888888","bankName":"VPBank",
            "transactionDateTime":"2024-10-03 15:06:37","virtualAccountNumber":"","counterAccountName":"NGUYEN VAN A",
            "counterAccountNumber":"8888888888","counterAccountBankId":"970415"}, "error":0 }"#;
        let body: Value = serde_json::from_str(reordered).unwrap();
        assert_eq!(auth().verify(Some(REFERENCE_HEADER), &body, at), Ok(()));
    }

    #[test]
    fn canonical_json_writes_what_javascript_writes() {
        // Expected strings are JSON.stringify(sortObjDataByKey(x)) from Node 20.
        let v = json!({"b": "Chuyển khoản \"CD12345678\"\n\t\u{1}/\\", "a": {"z": 1, "y": [3, {"k": null}]}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":{"0":3,"1":{"k":null}},"z":1},"b":"Chuyển khoản \"CD12345678\"\n\t\u0001/\\"}"#
        );
        // JavaScript lists integer-like keys first and in numeric order: "2" before "10".
        let arr: Vec<Value> = (0..11).map(|i| json!(i)).collect();
        assert_eq!(
            canonical_json(&json!({ "x": arr })),
            r#"{"x":{"0":0,"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9,"10":10}}"#
        );
        assert_eq!(
            canonical_json(&json!({"b": 1, "10": 2, "a": 3, "2": 4, "01": 5})),
            r#"{"2":4,"10":2,"01":5,"a":3,"b":1}"#
        );
    }

    #[test]
    fn webhook_bodies_become_transfers_and_test_calls_none() {
        // Casso's own test transaction (id 0) is a test call: nothing to record.
        assert_eq!(webhook_transfer(&reference_body(), ""), Ok(None));
        let mut real = reference_body();
        real["data"]["id"] = json!(218897);
        let raw = real.to_string();
        let t = webhook_transfer(&real, &raw).unwrap().unwrap();
        assert_eq!(
            (t.gateway, t.id.as_str(), t.amount_vnd, t.transfer_type),
            (Gateway::Casso, "218897", 599_000, TransferType::In)
        );
        assert_eq!(
            (t.sub_account, t.content.as_deref(), t.raw.as_str()),
            (None, Some("giao dich thu nghiem"), raw.as_str())
        );
        let mut out = real.clone();
        out["data"]["amount"] = json!(-20000);
        assert_eq!(webhook_transfer(&out, "").unwrap().unwrap().transfer_type, TransferType::Out);
        for test_call in [json!({}), json!({"error": 0, "data": null}), json!({"data": {}}), json!({"data": []})] {
            assert_eq!(webhook_transfer(&test_call, ""), Ok(None), "{test_call}");
        }
        let mut fractional = real;
        fractional["data"]["amount"] = json!("599000.5");
        assert!(matches!(webhook_transfer(&fractional, ""), Err(CassoPayloadError::Field { field: "amount", .. })));
    }
}
