//! payOS's merchant API as its SDKs and docs describe it (../shared/FACTS.md, payOS), with
//! its own signing written again here, so our adapter is checked against a second reading:
//!
//! - `POST /v2/payment-requests` (headers `x-client-id`, `x-api-key`): the five-field
//!   signature checked, `description` at most 9 characters, a second link for one
//!   `orderCode` refused with `code "231"`, `expiredAt` Unix seconds; the answer's `data`
//!   signed. Answers are `{code, desc, data, signature}`, errors with HTTP 200 as payOS does.
//! - `GET /v2/payment-requests/{orderCode|paymentLinkId}`, `POST …/{id}/cancel`.
//! - `POST /confirm-webhook {webhookUrl}`: the URL is called first with a signed sample
//!   delivery (payOS's documented example) and must answer 2xx.
//! - `POST /emulator/payos/pay {orderCode, amount?, also_sepay?}`: a buyer pays the link; its
//!   signed webhook goes to the confirmed URL, and with `also_sepay` the same bank transfer
//!   (same reference) enters the SePay ledger and webhook too.
//! - Faults: `payos_429_next` (429 with `retry-after: 1`), `payos_fail_next` (503), `down`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Delivery, Emulator, Feed, NewTransfer, date_text, now_in_vietnam};

pub const CLIENT_ID: &str = "payos-emulator-client";
pub const API_KEY: &str = "payos-emulator-key";
pub const CHECKSUM_KEY: &str = "payos-emulator-checksum";

/// payOS's documented sample delivery, which it also posts to check a webhook URL.
pub fn validation_sample() -> Value {
    json!({
        "orderCode": 123, "amount": 3000, "description": "VQRIO123", "accountNumber": "12345678",
        "reference": "TF230204212323", "transactionDateTime": "2023-02-04 18:25:00", "currency": "VND",
        "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18", "code": "00", "desc": "success",
        "counterAccountBankId": "", "counterAccountBankName": "", "counterAccountName": "",
        "counterAccountNumber": "", "virtualAccountName": "", "virtualAccountNumber": ""
    })
}

#[derive(Debug, Clone)]
pub(crate) struct Link {
    id: String,
    order_code: i64,
    amount: i64,
    description: String,
    status: &'static str,
    expired_at: Option<i64>,
    created_at: String,
    transactions: Vec<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct PayosState {
    links: BTreeMap<i64, Link>,
    webhook_url: Option<String>,
    next: u64,
}

fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `key=value` of `data`'s keys, sorted, joined by `&`; null as empty, strings raw.
pub fn sign_data(key: &str, data: &Value) -> String {
    let map = data.as_object().expect("an object");
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let text: Vec<String> = keys
        .into_iter()
        .map(|k| {
            let v = match &map[k] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect();
    hmac_hex(key, &text.join("&"))
}

fn answer(code: &str, desc: &str, data: Option<Value>) -> Response {
    let signature = data.as_ref().filter(|d| d.is_object()).map(|d| sign_data(CHECKSUM_KEY, d));
    Json(json!({"code": code, "desc": desc, "data": data, "signature": signature})).into_response()
}

/// Credentials, faults and the emulated rate limit, in payOS's manner; `Some` ends the call.
fn gate(emu: &Emulator, headers: &HeaderMap) -> Option<Response> {
    let mut inner = emu.0.lock().unwrap();
    if inner.config.faults.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "down").into_response());
    }
    if inner.config.faults.payos_429_next > 0 {
        inner.config.faults.payos_429_next -= 1;
        inner.stats.payos_429s += 1;
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                Json(json!({"code": "429", "desc": "Gọi API quá nhiều"})),
            )
                .into_response(),
        );
    }
    if inner.config.faults.payos_fail_next > 0 {
        inner.config.faults.payos_fail_next -= 1;
        return Some((StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response());
    }
    inner.stats.payos_requests += 1;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if header("x-client-id") != CLIENT_ID || header("x-api-key") != API_KEY {
        return Some(
            (StatusCode::UNAUTHORIZED, Json(json!({"code": "401", "desc": "Thông tin xác thực không hợp lệ"})))
                .into_response(),
        );
    }
    None
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateLink {
    order_code: Option<i64>,
    amount: Option<i64>,
    description: Option<String>,
    cancel_url: Option<String>,
    return_url: Option<String>,
    signature: Option<String>,
    expired_at: Option<i64>,
}

pub(crate) async fn create(State(emu): State<Emulator>, headers: HeaderMap, Json(c): Json<CreateLink>) -> Response {
    if let Some(r) = gate(&emu, &headers) {
        return r;
    }
    let (Some(order_code), Some(amount), Some(description), Some(cancel), Some(ret), Some(signature)) =
        (c.order_code, c.amount, c.description, c.cancel_url, c.return_url, c.signature)
    else {
        return answer("20", "Thiếu orderCode, amount, description, cancelUrl, returnUrl hoặc signature", None);
    };
    let expected = hmac_hex(
        CHECKSUM_KEY,
        &format!("amount={amount}&cancelUrl={cancel}&description={description}&orderCode={order_code}&returnUrl={ret}"),
    );
    if signature != expected {
        return answer("201", "Chữ ký không hợp lệ", None);
    }
    if description.chars().count() > 9 {
        return answer("20", "Mô tả tối đa 9 kí tự", None);
    }
    if amount <= 0 || order_code < 0 {
        return answer("20", "amount và orderCode phải là số dương", None);
    }
    if c.expired_at.is_some_and(|t| t > i32::MAX as i64) {
        return answer("20", "expiredAt phải là Int32", None);
    }
    let mut inner = emu.0.lock().unwrap();
    let account = inner.config.payos_account.clone();
    let state = &mut inner.payos;
    if state.links.contains_key(&order_code) {
        return answer("231", "Đơn thanh toán đã tồn tại", None);
    }
    state.next += 1;
    let id = format!("{:032x}", 0x5eed_0000_0000u64 + state.next);
    let link = Link {
        id: id.clone(),
        order_code,
        amount,
        description: description.clone(),
        status: "PENDING",
        expired_at: c.expired_at,
        created_at: date_text(&now_in_vietnam()),
        transactions: Vec::new(),
    };
    state.links.insert(order_code, link);
    let data = json!({
        "bin": "970422", "accountNumber": account, "accountName": "CONG TY DEMO", "amount": amount,
        "description": description, "orderCode": order_code, "currency": "VND", "paymentLinkId": id,
        "status": "PENDING", "expiredAt": c.expired_at,
        "checkoutUrl": format!("https://pay.payos.vn/web/{id}"),
        "qrCode": format!("00020101021238570010A000000727012700069704220113{account}0208QRIBFTTA53037045405{amount}5802VN62{:02}08{:02}{description}6304ABCD", description.len() + 4, description.len()),
    });
    drop(inner);
    answer("00", "success", Some(data))
}

fn status_of(link: &Link) -> &'static str {
    let expired = link.expired_at.is_some_and(|t| t < chrono::Utc::now().timestamp());
    if link.status == "PENDING" && expired { "EXPIRED" } else { link.status }
}

fn link_data(link: &Link) -> Value {
    let paid: i64 = link.transactions.iter().filter_map(|t| t["amount"].as_i64()).sum();
    json!({
        "id": link.id, "orderCode": link.order_code, "amount": link.amount, "amountPaid": paid,
        "amountRemaining": (link.amount - paid).max(0), "status": status_of(link), "createdAt": link.created_at,
        "transactions": link.transactions, "cancellationReason": null, "canceledAt": null,
    })
}

fn find<'a>(state: &'a mut PayosState, id: &str) -> Option<&'a mut Link> {
    match id.parse::<i64>() {
        Ok(code) if state.links.contains_key(&code) => state.links.get_mut(&code),
        _ => state.links.values_mut().find(|l| l.id == id),
    }
}

pub(crate) async fn get(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = gate(&emu, &headers) {
        return r;
    }
    let mut inner = emu.0.lock().unwrap();
    match find(&mut inner.payos, &id) {
        Some(link) => {
            let data = link_data(link);
            drop(inner);
            answer("00", "success", Some(data))
        }
        None => answer("101", "Đơn thanh toán không tồn tại", None),
    }
}

pub(crate) async fn cancel(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = gate(&emu, &headers) {
        return r;
    }
    let mut inner = emu.0.lock().unwrap();
    let Some(link) = find(&mut inner.payos, &id) else {
        return answer("101", "Đơn thanh toán không tồn tại", None);
    };
    if status_of(link) != "PENDING" {
        return answer("20", "Đơn thanh toán không thể huỷ", None);
    }
    link.status = "CANCELLED";
    let data = link_data(link);
    drop(inner);
    answer("00", "success", Some(data))
}

pub(crate) async fn confirm_webhook(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&emu, &headers) {
        return r;
    }
    let Some(url) = body.get("webhookUrl").and_then(Value::as_str).map(str::to_string) else {
        return answer("20", "Thiếu webhookUrl", None);
    };
    let data = validation_sample();
    let delivery = json!({"code": "00", "desc": "success", "success": true, "signature": sign_data(CHECKSUM_KEY, &data), "data": data});
    match emu.1.post(&url).json(&delivery).send().await {
        Ok(r) if r.status().is_success() => {
            emu.0.lock().unwrap().payos.webhook_url = Some(url);
            answer("00", "success", None)
        }
        Ok(r) => answer("20", &format!("Webhook URL không hợp lệ: trả lời {}", r.status().as_u16()), None),
        Err(e) => answer("20", &format!("Webhook URL không gọi được: {}", e.without_url()), None),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayLink {
    pub order_code: i64,
    /// What the buyer pays; the link's amount when absent.
    #[serde(default)]
    pub amount: Option<i64>,
    /// The seller's account is connected to SePay too: the same transfer is reported there.
    #[serde(default)]
    pub also_sepay: bool,
}

impl Emulator {
    /// The webhook URL payOS confirmed, if any.
    pub fn payos_webhook(&self) -> Option<String> {
        self.0.lock().unwrap().payos.webhook_url.clone()
    }

    /// Sets payOS's webhook URL without the validation call (a test's shortcut).
    pub fn set_payos_webhook(&self, url: Option<String>) {
        self.0.lock().unwrap().payos.webhook_url = url;
    }

    /// A buyer pays link `order_code`: its transaction is booked (and, with `also_sepay`, the
    /// same bank transfer in SePay's ledger), then payOS's signed webhook is posted. `None`
    /// when no such link is payable.
    pub async fn pay_payos(&self, pay: &PayLink) -> Option<(Value, Delivery, Option<Delivery>)> {
        let (data, url, drop_it, sepay_id) = {
            let mut inner = self.0.lock().unwrap();
            let account = inner.config.payos_account.clone();
            inner.next_id += 1;
            let reference = format!("FT{:010}", inner.next_id);
            let at = now_in_vietnam();
            let link = inner.payos.links.get_mut(&pay.order_code).filter(|l| status_of(l) == "PENDING")?;
            let amount = pay.amount.unwrap_or(link.amount);
            let transaction = json!({
                "reference": reference, "amount": amount, "accountNumber": account,
                "description": link.description, "transactionDateTime": date_text(&at),
                "virtualAccountName": null, "virtualAccountNumber": null, "counterAccountBankId": null,
                "counterAccountBankName": "Vietcombank", "counterAccountName": "NGUYEN VAN A",
                "counterAccountNumber": "9876543210",
            });
            link.transactions.push(transaction);
            let paid: i64 = link.transactions.iter().filter_map(|t| t["amount"].as_i64()).sum();
            if paid >= link.amount {
                link.status = "PAID";
            }
            let data = json!({
                "orderCode": link.order_code, "amount": amount, "description": link.description,
                "accountNumber": account, "reference": reference, "transactionDateTime": date_text(&at),
                "currency": "VND", "paymentLinkId": link.id, "code": "00", "desc": "success",
                "counterAccountBankId": "", "counterAccountBankName": "Vietcombank",
                "counterAccountName": "NGUYEN VAN A", "counterAccountNumber": "9876543210",
                "virtualAccountName": "", "virtualAccountNumber": ""
            });
            let description = link.description.clone();
            let url = inner.payos.webhook_url.clone();
            let drop_it = inner.config.faults.drop_webhooks;
            drop(inner);
            let sepay_id = pay.also_sepay.then(|| {
                let t = NewTransfer {
                    feed: Feed::Sepay,
                    amount_vnd: amount,
                    content: description,
                    account_number: account,
                    at: Some(at),
                    amount_text: None,
                    sub_account: None,
                };
                self.book_as(&t, Feed::Sepay, None, Some(reference.clone()))
            });
            (data, url, drop_it, sepay_id)
        };
        let payos = match (url, drop_it) {
            (None, _) => Delivery::NotConfigured,
            (Some(_), true) => {
                self.0.lock().unwrap().stats.webhooks_dropped += 1;
                Delivery::Dropped
            }
            (Some(url), false) => {
                let body = json!({"code": "00", "desc": "success", "success": true, "signature": sign_data(CHECKSUM_KEY, &data), "data": data});
                self.post_webhook(self.1.post(&url).json(&body)).await
            }
        };
        let sepay = match sepay_id {
            Some(id) => Some(self.deliver(id, Feed::Sepay).await),
            None => None,
        };
        Some((data, payos, sepay))
    }
}

pub(crate) async fn pay(State(emu): State<Emulator>, Json(p): Json<PayLink>) -> Response {
    match emu.pay_payos(&p).await {
        Some((data, payos, sepay)) => {
            Json(json!({"data": data, "webhook": payos, "sepay_webhook": sepay})).into_response()
        }
        None => (StatusCode::CONFLICT, Json(json!({"error": "no payable link with this orderCode"}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_sdk_vector() {
        // payOSHQ/payos-lib-python tests/_crypto/testCases.json, key test_checksum_key.
        let data = json!({"accountNumber": "0123456789", "amount": 20000, "description": "thanh toan",
            "reference": "FT-REFERENCE", "transactionDateTime": "2025-12-12 09:00:00", "virtualAccountNumber": "",
            "counterAccountBankId": "01202001", "counterAccountBankName": "", "counterAccountName": "NGUYEN VAN A",
            "counterAccountNumber": "9876543210", "virtualAccountName": "", "currency": "VND", "orderCode": 0,
            "paymentLinkId": "payment-link-id", "code": "00", "desc": "success"});
        assert_eq!(
            sign_data("test_checksum_key", &data),
            "302b3becca1672dff99daafae2965f40e48ea3ca39453e4bf37fbcc26807a0e8"
        );
        let create = "amount=2000&cancelUrl=http://localhost&description=Thanh toán đơn hàng&orderCode=0&returnUrl=http://localhost";
        assert_eq!(
            hmac_hex("test_checksum_key", create),
            "d8b7b0e5d19edfe7b1f53dedeb8d1c7c2b62fabd7eb320dbc514c58f13e9e2c5"
        );
    }
}
