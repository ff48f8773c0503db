//! SePay's order virtual-account API v2 (developer.sepay.vn, sepay-api/v2/don-hang), as
//! documented, for one BIDV-style account: `POST /v2/bank-accounts/{ba_xid}/orders` (201,
//! `{status, data: {id, order_code, va_number, …}}`), `GET …/orders/{id}`, `DELETE
//! …/orders/{id}` (204; 422 `invalid_state` unless Pending). `Authorization: Bearer <token>`
//! (the transaction API's token); errors `{status: "error", error_code, message}` with real
//! HTTP statuses. Faults: `va_fail_next` (503), `va_429_next` (429 with `Retry-After: 1`).
//!
//! A transfer into a virtual account (`POST /emulator/transfers` with `sub_account`) marks its
//! order Paid when it is the exact amount; one into a cancelled or paid account is refused
//! (409), as the bank refuses it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{Emulator, bearer, date_text, now_in_vietnam};

pub const ACCOUNT_XID: &str = "ba-emulator-bidv";

#[derive(Debug, Clone)]
pub(crate) struct VaOrder {
    id: String,
    order_code: String,
    amount: i64,
    va_number: String,
    status: &'static str,
    paid: i64,
    expired_at: chrono::NaiveDateTime,
}

#[derive(Debug, Default)]
pub(crate) struct VaState {
    orders: BTreeMap<String, VaOrder>,
    next: u64,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"status": "error", "error_code": code, "message": message}))).into_response()
}

fn gate(emu: &Emulator, headers: &HeaderMap, xid: &str) -> Option<Response> {
    let mut inner = emu.0.lock().unwrap();
    if inner.config.faults.down || inner.config.faults.va_fail_next > 0 {
        inner.config.faults.va_fail_next = inner.config.faults.va_fail_next.saturating_sub(1);
        return Some(error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "SePay is unavailable"));
    }
    if inner.config.faults.va_429_next > 0 {
        inner.config.faults.va_429_next -= 1;
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                Json(json!({"status": "error", "error_code": "too_many_requests", "message": "3 requests a second"})),
            )
                .into_response(),
        );
    }
    inner.stats.va_requests += 1;
    if bearer(headers) != Some(inner.config.sepay_token.as_str()) {
        return Some(error(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid API token"));
    }
    if xid != ACCOUNT_XID {
        return Some(error(StatusCode::NOT_FOUND, "not_found", "no such bank account"));
    }
    None
}

fn status_of(o: &VaOrder) -> &'static str {
    if o.status == "Pending" && o.expired_at < now_in_vietnam() { "Cancelled" } else { o.status }
}

fn order_data(o: &VaOrder) -> Value {
    let status = status_of(o);
    json!({
        "id": o.id, "order_code": o.order_code, "amount": o.amount, "paid_amount": o.paid, "status": status,
        "bank_name": "BIDV", "account_number": "96247000001", "account_holder_name": "CONG TY DEMO",
        "va": [{"va_number": o.va_number, "va_holder_name": "CONG TY DEMO", "amount": o.amount,
                "status": if status == "Paid" { "Paid" } else if status == "Pending" { "Unpaid" } else { "Cancelled" },
                "expired_at": date_text(&o.expired_at), "paid_at": null}],
    })
}

pub(crate) async fn create(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(xid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&emu, &headers, &xid) {
        return r;
    }
    let code = body.get("order_code").and_then(Value::as_str).unwrap_or_default().to_string();
    if !(6..=50).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", "order_code: 6 to 50 letters and digits");
    }
    let Some(amount) = body.get("amount").and_then(Value::as_i64).filter(|a| *a > 0) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", "amount: a positive integer is required");
    };
    let duration = body.get("duration").and_then(Value::as_i64).unwrap_or(86_400).max(60);
    let mut inner = emu.0.lock().unwrap();
    let state = &mut inner.va;
    if state.orders.values().any(|o| o.order_code == code) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "duplicate_order_code", "order_code already exists");
    }
    state.next += 1;
    let order = VaOrder {
        id: format!("9f1c0a00-0000-4000-8000-{:012}", state.next),
        order_code: code,
        amount,
        va_number: format!("963{:09}", state.next),
        status: "Pending",
        paid: 0,
        expired_at: now_in_vietnam() + chrono::Duration::seconds(duration),
    };
    let data = json!({
        "id": order.id, "order_code": order.order_code, "va_number": order.va_number,
        "va_holder_name": "CONG TY DEMO", "amount": amount, "status": "Pending", "bank_name": "BIDV",
        "account_holder_name": "CONG TY DEMO", "account_number": "96247000001",
        "expired_at": date_text(&order.expired_at), "qr_code": null, "qr_code_url": null,
    });
    state.orders.insert(order.id.clone(), order);
    (StatusCode::CREATED, Json(json!({"status": "success", "data": data}))).into_response()
}

pub(crate) async fn get(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path((xid, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = gate(&emu, &headers, &xid) {
        return r;
    }
    let inner = emu.0.lock().unwrap();
    match inner.va.orders.get(&id) {
        Some(o) => Json(json!({"status": "success", "data": order_data(o)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such order"),
    }
}

pub(crate) async fn delete(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path((xid, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = gate(&emu, &headers, &xid) {
        return r;
    }
    let mut inner = emu.0.lock().unwrap();
    let Some(order) = inner.va.orders.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such order");
    };
    if status_of(order) != "Pending" {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_state", "only a Pending order can be cancelled");
    }
    order.status = "Cancelled";
    StatusCode::NO_CONTENT.into_response()
}

impl Emulator {
    /// Money into virtual account `number`: `Err` when the bank refuses it (the account is
    /// closed or unknown); the order becomes Paid with its exact amount.
    pub(crate) fn pay_virtual_account(&self, number: &str, amount: i64) -> Result<(), String> {
        let mut inner = self.0.lock().unwrap();
        let Some(order) = inner.va.orders.values_mut().find(|o| o.va_number == number) else {
            return Err(format!("no virtual account {number}"));
        };
        if status_of(order) != "Pending" {
            return Err(format!("virtual account {number} is closed ({})", status_of(order)));
        }
        order.paid += amount;
        if order.paid >= order.amount {
            order.status = "Paid";
        }
        Ok(())
    }

    /// The state of the order behind virtual account `number` (Pending, Paid, Cancelled).
    pub fn virtual_account_state(&self, number: &str) -> Option<String> {
        let inner = self.0.lock().unwrap();
        inner.va.orders.values().find(|o| o.va_number == number).map(|o| status_of(o).to_string())
    }
}
