//! Local emulators of the two bank feeds coursedrop takes payments from, as their documents
//! describe them (../shared/FACTS.md), awkward parts included:
//!
//! - **SePay's transaction API v1**: `GET /userapi/transactions/list` with
//!   `Authorization: Bearer <token>`; `account_number`, `transaction_date_min/max`
//!   ("YYYY-MM-DD HH:MM:SS"), `since_id` (ids ≥ it), `limit` (default and maximum 5,000;
//!   more is capped); ids as strings, amounts as decimal strings ("18067000.00"). The order
//!   of the list is not documented: this emulator answers newest first by default (the
//!   awkward case: a full answer leaves out the *oldest*), or oldest first when configured.
//!   About 2 requests a second per token, over it `429` with `x-sepay-userapi-retry-after`.
//!   Also `GET /userapi/transactions/details/{id}`.
//! - **Casso's API v2**: `GET /v2/transactions?fromDate&toDate&page&pageSize&sort` with
//!   `Authorization: Apikey <key>`; dates "YYYY-MM-DD" (Vietnam time), 1-based pages of
//!   `data.records` with `totalPages`/`totalRecords`; default the last 7 days, 10 a page,
//!   newest first (`sort=DESC`) unless `sort=ASC`; negative amounts for money out.
//! - **The webhooks**: a transfer made with `POST /emulator/transfers` enters the feed's
//!   ledger (what its API lists) and is posted to the configured webhook as the feed posts
//!   it: SePay's body with `Authorization: Apikey <key>`, Casso's v2 body with
//!   `X-Casso-Signature: t=<ms>,v1=<HMAC-SHA512 of t + "." + the key-sorted JSON>`.
//! - **Faults**, set at start or with `POST /emulator/faults`: the APIs down (503), the next
//!   N requests answered 429, webhooks dropped (the ledger still has the transfer, as the
//!   bank does when a webhook is lost).

pub mod payos;
pub mod sepay_va;

pub use payos::PayLink;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, http::header};
use chrono::{NaiveDate, NaiveDateTime};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// SePay's documented maximum `limit`.
pub const SEPAY_MAX_LIMIT: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListOrder {
    /// Newest first: SePay's unfiltered list is "the 5,000 most recent".
    #[default]
    Desc,
    Asc,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Every API call answers 503.
    pub down: bool,
    /// The next this many SePay API calls answer 429 (besides the real rate limit).
    pub sepay_429_next: u32,
    /// The next this many Casso API calls answer 429.
    pub casso_429_next: u32,
    /// Webhooks are not sent (the transfer is still in the ledger the APIs list).
    pub drop_webhooks: bool,
    /// The next this many payOS calls answer 429 (`retry-after: 1`).
    pub payos_429_next: u32,
    /// The next this many payOS calls answer 503.
    pub payos_fail_next: u32,
    /// The next this many virtual-account calls answer 503.
    pub va_fail_next: u32,
    /// The next this many virtual-account calls answer 429.
    pub va_429_next: u32,
}

/// Where the emulator posts a feed's webhooks, and with what key.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub sepay_token: String,
    pub casso_api_key: String,
    /// SePay's pace: requests a second per token before 429.
    pub sepay_requests_per_sec: usize,
    pub sepay_order: ListOrder,
    /// Ids start after this (two emulators in one database need ranges of their own).
    pub first_id: i64,
    pub sepay_webhook: Option<Webhook>,
    pub casso_webhook: Option<Webhook>,
    pub faults: Faults,
    /// The seller's account payOS pays into.
    pub payos_account: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sepay_token: "sepay-emulator-token".into(),
            casso_api_key: "casso-emulator-key".into(),
            sepay_requests_per_sec: 2,
            sepay_order: ListOrder::Desc,
            first_id: 80_000,
            sepay_webhook: None,
            casso_webhook: None,
            faults: Faults::default(),
            payos_account: default_account(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feed {
    Sepay,
    Casso,
}

/// A transfer into (or, with a negative amount, out of) the seller's account.
#[derive(Debug, Clone, Deserialize)]
pub struct NewTransfer {
    pub feed: Feed,
    pub amount_vnd: i64,
    pub content: String,
    #[serde(default = "default_account")]
    pub account_number: String,
    /// When the bank booked it, Vietnam time; now when absent.
    #[serde(default)]
    pub at: Option<NaiveDateTime>,
    /// The amount exactly as the API should write it (to send "499000.50", say).
    #[serde(default)]
    pub amount_text: Option<String>,
    /// Paid into this virtual account of the seller's (SePay's `subAccount`). One the bank
    /// has closed refuses the transfer (see [`Emulator::transfer`]).
    #[serde(default)]
    pub sub_account: Option<String>,
}

fn default_account() -> String {
    "0123456789".into()
}

#[derive(Debug, Clone)]
struct Txn {
    id: i64,
    feed: Feed,
    account_number: String,
    at: NaiveDateTime,
    amount_vnd: i64,
    amount_text: Option<String>,
    content: String,
    reference: String,
    balance: i64,
    sub_account: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub sepay_requests: u64,
    pub sepay_429s: u64,
    pub casso_requests: u64,
    pub casso_429s: u64,
    pub webhooks_delivered: u64,
    pub webhooks_dropped: u64,
    pub webhooks_failed: u64,
    pub transactions: usize,
    pub payos_requests: u64,
    pub payos_429s: u64,
    pub va_requests: u64,
}

struct Inner {
    config: Config,
    ledger: Vec<Txn>,
    next_id: i64,
    balance: i64,
    sepay_recent: VecDeque<Instant>,
    stats: Stats,
    payos: payos::PayosState,
    va: sepay_va::VaState,
}

#[derive(Clone)]
pub struct Emulator(Arc<Mutex<Inner>>, reqwest::Client);

/// What happened to a transfer's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Delivered { status: u16 },
    Dropped,
    NotConfigured,
    Failed { reason: String },
}

/// Vietnam time now (UTC+7, no daylight saving).
pub fn now_in_vietnam() -> NaiveDateTime {
    (chrono::Utc::now() + chrono::Duration::hours(7)).naive_utc()
}

fn date_text(at: &NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Casso's signature as its reference code makes it: HMAC-SHA512 over `t + "." +
/// JSON.stringify(body with keys sorted)`. serde_json's maps keep keys sorted, and the
/// bodies this emulator signs hold no arrays.
pub fn casso_signature(key: &str, t_ms: i64, body: &Value) -> String {
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{t_ms}.{}", serde_json::to_string(body).expect("JSON")).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Emulator {
    pub fn new(config: Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let next_id = config.first_id;
        Emulator(
            Arc::new(Mutex::new(Inner {
                config,
                ledger: Vec::new(),
                next_id,
                balance: 0,
                sepay_recent: VecDeque::new(),
                stats: Stats::default(),
                payos: Default::default(),
                va: Default::default(),
            })),
            http,
        )
    }

    pub fn set_faults(&self, faults: Faults) {
        self.0.lock().unwrap().config.faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.0.lock().unwrap().config.faults.clone()
    }

    pub fn set_sepay_order(&self, order: ListOrder) {
        self.0.lock().unwrap().config.sepay_order = order;
    }

    pub fn set_webhooks(&self, sepay: Option<Webhook>, casso: Option<Webhook>) {
        let mut inner = self.0.lock().unwrap();
        inner.config.sepay_webhook = sepay;
        inner.config.casso_webhook = casso;
    }

    pub fn stats(&self) -> Stats {
        let inner = self.0.lock().unwrap();
        Stats { transactions: inner.ledger.len(), ..inner.stats.clone() }
    }

    /// Books a transfer in the feed's ledger without sending its webhook (a webhook that was
    /// lost); returns its id.
    pub fn book(&self, t: &NewTransfer) -> i64 {
        self.book_as(t, t.feed, None, None)
    }

    /// Books one transfer as both feeds report it: a seller who connected SePay and Casso to
    /// the same account. Each feed lists it under its own id; the bank's reference, the
    /// account, the amount and the time are the same. Returns (SePay's id, Casso's id).
    pub fn book_on_both_feeds(&self, t: &NewTransfer) -> (i64, i64) {
        let sepay = self.book_as(t, Feed::Sepay, None, None);
        let reference = self.0.lock().unwrap().ledger.last().expect("just booked").reference.clone();
        let casso = self.book_as(t, Feed::Casso, Some(reference), None);
        (sepay, casso)
    }

    /// `same_as`: another feed's report of the booked transfer with this reference; `reference`:
    /// new money whose bank reference is already known (payOS reported it).
    fn book_as(&self, t: &NewTransfer, feed: Feed, same_as: Option<String>, reference: Option<String>) -> i64 {
        let mut inner = self.0.lock().unwrap();
        inner.next_id += 1 + (inner.next_id % 3); // ids grow, with gaps: other accounts' transfers
        let id = inner.next_id;
        let at = t.at.unwrap_or_else(now_in_vietnam);
        // The second feed's report of a transfer is the same money: the balance moves once.
        let (at, balance) = match (&same_as, inner.ledger.last()) {
            (Some(_), Some(first)) => (first.at, first.balance),
            _ => {
                inner.balance += t.amount_vnd;
                (at, inner.balance)
            }
        };
        let txn = Txn {
            id,
            feed,
            account_number: t.account_number.clone(),
            at,
            amount_vnd: t.amount_vnd,
            amount_text: t.amount_text.clone(),
            content: t.content.clone(),
            reference: same_as.or(reference).unwrap_or_else(|| format!("FT{id:010}")),
            balance,
            sub_account: t.sub_account.clone(),
        };
        inner.ledger.push(txn);
        id
    }

    /// [`Emulator::transfer`], unless the bank refuses it: money into a virtual account that
    /// is closed (its order paid or cancelled) or unknown.
    pub async fn transfer_as_the_bank_would(&self, t: &NewTransfer) -> Result<(i64, Delivery), String> {
        if let Some(number) = &t.sub_account {
            self.pay_virtual_account(number, t.amount_vnd)?;
        }
        Ok(self.transfer(t).await)
    }

    /// Books a transfer and posts its webhook as the feed would.
    pub async fn transfer(&self, t: &NewTransfer) -> (i64, Delivery) {
        let id = self.book(t);
        (id, self.deliver(id, t.feed).await)
    }

    /// Books a transfer on both feeds ([`Emulator::book_on_both_feeds`]) and posts both
    /// webhooks at once.
    pub async fn transfer_on_both_feeds(&self, t: &NewTransfer) -> ((i64, Delivery), (i64, Delivery)) {
        let (sepay, casso) = self.book_on_both_feeds(t);
        let (a, b) = tokio::join!(self.deliver(sepay, Feed::Sepay), self.deliver(casso, Feed::Casso));
        ((sepay, a), (casso, b))
    }

    /// Posts the webhook of booked transfer `id` as `feed` sends it (again, if it was sent).
    pub async fn deliver(&self, id: i64, feed: Feed) -> Delivery {
        let (txn, target, drop) = {
            let inner = self.0.lock().unwrap();
            let txn = inner.ledger.iter().find(|x| x.id == id).cloned().expect("a booked transfer");
            let target = match feed {
                Feed::Sepay => inner.config.sepay_webhook.clone(),
                Feed::Casso => inner.config.casso_webhook.clone(),
            };
            (txn, target, inner.config.faults.drop_webhooks)
        };
        let Some(target) = target else { return Delivery::NotConfigured };
        if drop {
            self.0.lock().unwrap().stats.webhooks_dropped += 1;
            return Delivery::Dropped;
        }
        let request = match feed {
            Feed::Sepay => self
                .1
                .post(&target.url)
                .header(header::AUTHORIZATION, format!("Apikey {}", target.key))
                .json(&sepay_webhook_body(&txn)),
            Feed::Casso => {
                let body = casso_webhook_body(&txn);
                let t_ms = chrono::Utc::now().timestamp_millis();
                let signature = format!("t={t_ms},v1={}", casso_signature(&target.key, t_ms, &body));
                self.1.post(&target.url).header("X-Casso-Signature", signature).json(&body)
            }
        };
        self.post_webhook(request).await
    }

    /// Sends a webhook and counts how it went.
    async fn post_webhook(&self, request: reqwest::RequestBuilder) -> Delivery {
        let delivery = match request.send().await {
            Ok(r) if r.status().is_success() => Delivery::Delivered { status: r.status().as_u16() },
            Ok(r) => Delivery::Failed { reason: format!("answered {}", r.status()) },
            Err(e) => Delivery::Failed { reason: e.without_url().to_string() },
        };
        let mut inner = self.0.lock().unwrap();
        match delivery {
            Delivery::Delivered { .. } => inner.stats.webhooks_delivered += 1,
            _ => inner.stats.webhooks_failed += 1,
        }
        delivery
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/userapi/transactions/list", get(sepay_list))
            .route("/userapi/transactions/details/{id}", get(sepay_details))
            .route("/v2/transactions", get(casso_list))
            .route("/emulator/transfers", post(make_transfer))
            .route("/emulator/faults", get(get_faults).post(set_faults))
            .route("/emulator/stats", get(get_stats))
            .route("/v2/payment-requests", post(payos::create))
            .route("/v2/payment-requests/{id}", get(payos::get))
            .route("/v2/payment-requests/{id}/cancel", post(payos::cancel))
            .route("/confirm-webhook", post(payos::confirm_webhook))
            .route("/emulator/payos/pay", post(payos::pay))
            .route("/v2/bank-accounts/{xid}/orders", post(sepay_va::create))
            .route("/v2/bank-accounts/{xid}/orders/{id}", get(sepay_va::get).delete(sepay_va::delete))
            .with_state(self.clone())
    }

    /// Binds 127.0.0.1:`port` (0 for any) and serves in the background; returns the base URL.
    pub async fn spawn(self, port: u16) -> std::io::Result<(String, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((format!("http://{addr}"), addr))
    }
}

fn sepay_amount(t: &Txn, incoming: bool) -> String {
    match (&t.amount_text, incoming == (t.amount_vnd >= 0)) {
        (Some(text), true) => text.clone(),
        (_, true) => format!("{}.00", t.amount_vnd.abs()),
        (_, false) => "0.00".into(),
    }
}

fn sepay_record(t: &Txn) -> Value {
    json!({
        "id": t.id.to_string(),
        "bank_brand_name": "MBBank",
        "account_number": t.account_number,
        "transaction_date": date_text(&t.at),
        "amount_out": sepay_amount(t, false),
        "amount_in": sepay_amount(t, true),
        "accumulated": format!("{}.00", t.balance),
        "transaction_content": t.content,
        "reference_number": t.reference,
        "code": null,
        "sub_account": t.sub_account,
        "bank_account_id": "19",
    })
}

fn sepay_webhook_body(t: &Txn) -> Value {
    json!({
        "id": t.id, "gateway": "MBBank", "transactionDate": date_text(&t.at), "accountNumber": t.account_number,
        "code": null, "content": t.content, "transferType": if t.amount_vnd < 0 { "out" } else { "in" },
        "transferAmount": t.amount_vnd.abs(), "accumulated": t.balance, "subAccount": t.sub_account,
        "referenceCode": t.reference, "description": t.content,
    })
}

fn casso_webhook_body(t: &Txn) -> Value {
    json!({"error": 0, "data": {
        "id": t.id, "reference": t.reference, "description": t.content, "amount": t.amount_vnd,
        "runningBalance": t.balance, "transactionDateTime": date_text(&t.at), "accountNumber": t.account_number,
        "bankName": "MBBank", "bankAbbreviation": "MBB",
        "virtualAccountNumber": t.sub_account.clone().unwrap_or_default(), "virtualAccountName": "",
        "counterAccountName": "", "counterAccountNumber": "", "counterAccountBankId": "", "counterAccountBankName": "",
    }})
}

fn casso_record(t: &Txn) -> Value {
    let amount: Value = match &t.amount_text {
        Some(text) => json!(text),
        None => json!(t.amount_vnd),
    };
    json!({
        "id": t.id, "tid": t.reference, "description": t.content, "amount": amount, "cusumBalance": t.balance,
        "when": date_text(&t.at), "bookingDate": t.at.format("%Y-%m-%d").to_string(), "bankSubAccId": t.account_number,
        "paymentChannel": "", "virtualAccount": "", "virtualAccountName": "", "corresponsiveName": "",
        "corresponsiveAccount": "", "corresponsiveBankId": "", "corresponsiveBankName": "", "accountId": 1,
        "bankCodeName": "mbbank",
    })
}

fn sepay_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"status": status.as_u16(), "error": error, "messages": {"success": false}}))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Auth, faults and SePay's rate limit, in the order SePay applies them; `Err` is the answer,
/// sent as it is (boxing it would only add an allocation).
#[allow(clippy::result_large_err)]
fn sepay_gate(emu: &Emulator, headers: &HeaderMap) -> Result<(), Response> {
    let mut inner = emu.0.lock().unwrap();
    inner.stats.sepay_requests += 1;
    if bearer(headers) != Some(inner.config.sepay_token.as_str()) {
        return Err(sepay_error(StatusCode::UNAUTHORIZED, "Unauthenticated"));
    }
    if inner.config.faults.down {
        return Err(sepay_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"));
    }
    let now = Instant::now();
    while inner.sepay_recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
        inner.sepay_recent.pop_front();
    }
    let over = inner.sepay_recent.len() >= inner.config.sepay_requests_per_sec;
    let injected = inner.config.faults.sepay_429_next > 0;
    if over || injected {
        if injected {
            inner.config.faults.sepay_429_next -= 1;
        }
        inner.stats.sepay_429s += 1;
        let mut r = sepay_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        r.headers_mut().insert("x-sepay-userapi-retry-after", "1".parse().unwrap());
        return Err(r);
    }
    inner.sepay_recent.push_back(now);
    Ok(())
}

#[derive(Debug, Deserialize)]
struct SepayQuery {
    account_number: Option<String>,
    transaction_date_min: Option<String>,
    transaction_date_max: Option<String>,
    since_id: Option<String>,
    limit: Option<String>,
    reference_number: Option<String>,
    amount_in: Option<String>,
    amount_out: Option<String>,
}

fn parse_date_param(v: &Option<String>) -> Result<Option<NaiveDateTime>, String> {
    let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDate::parse_from_str(v, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap()))
        .map(Some)
        .map_err(|_| format!("{v:?} is not a date (Y-m-d H:i:s)"))
}

async fn sepay_list(State(emu): State<Emulator>, headers: HeaderMap, Query(q): Query<SepayQuery>) -> Response {
    if let Err(r) = sepay_gate(&emu, &headers) {
        return r;
    }
    let bad = |m: String| sepay_error(StatusCode::BAD_REQUEST, &m);
    let since_id = match q.since_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return bad(format!("since_id {s:?} is not an integer")),
        },
        None => None,
    };
    let limit = match q.limit.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n.min(SEPAY_MAX_LIMIT),
            _ => return bad(format!("limit {s:?} is not a positive integer")),
        },
        None => SEPAY_MAX_LIMIT,
    };
    let (min, max) = match (parse_date_param(&q.transaction_date_min), parse_date_param(&q.transaction_date_max)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let inner = emu.0.lock().unwrap();
    let mut rows: Vec<&Txn> = inner
        .ledger
        .iter()
        .filter(|t| t.feed == Feed::Sepay)
        .filter(|t| q.account_number.as_deref().is_none_or(|a| a == t.account_number))
        .filter(|t| since_id.is_none_or(|s| t.id >= s))
        .filter(|t| min.is_none_or(|m| t.at >= m))
        .filter(|t| max.is_none_or(|m| t.at <= m))
        .filter(|t| q.reference_number.as_deref().is_none_or(|r| r == t.reference))
        .filter(|t| q.amount_in.as_deref().is_none_or(|a| a == sepay_amount(t, true) || a == t.amount_vnd.to_string()))
        .filter(|t| q.amount_out.as_deref().is_none_or(|a| a == sepay_amount(t, false)))
        .collect();
    match inner.config.sepay_order {
        ListOrder::Desc => rows.sort_by_key(|t| std::cmp::Reverse(t.id)),
        ListOrder::Asc => rows.sort_by_key(|t| t.id),
    }
    rows.truncate(limit);
    let transactions: Vec<Value> = rows.into_iter().map(sepay_record).collect();
    Json(json!({"status": 200, "error": null, "messages": {"success": true}, "transactions": transactions}))
        .into_response()
}

async fn sepay_details(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = sepay_gate(&emu, &headers) {
        return r;
    }
    let inner = emu.0.lock().unwrap();
    let found = id.parse::<i64>().ok().and_then(|id| inner.ledger.iter().find(|t| t.id == id && t.feed == Feed::Sepay));
    match found {
        Some(t) => {
            Json(json!({"status": 200, "error": null, "messages": {"success": true}, "transaction": sepay_record(t)}))
                .into_response()
        }
        None => sepay_error(StatusCode::NOT_FOUND, "Transaction not found"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CassoQuery {
    from_date: Option<String>,
    to_date: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
    sort: Option<String>,
}

fn casso_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": status.as_u16(), "message": message, "data": null}))).into_response()
}

async fn casso_list(State(emu): State<Emulator>, headers: HeaderMap, Query(q): Query<CassoQuery>) -> Response {
    let mut inner = emu.0.lock().unwrap();
    inner.stats.casso_requests += 1;
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().split_once(' '));
    let authorized = matches!(presented, Some((scheme, key))
        if scheme.eq_ignore_ascii_case("apikey") && key.trim() == inner.config.casso_api_key);
    if !authorized {
        return casso_error(StatusCode::UNAUTHORIZED, "Unauthorized: Authorization: Apikey <key> is required");
    }
    if inner.config.faults.down {
        return casso_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    if inner.config.faults.casso_429_next > 0 {
        inner.config.faults.casso_429_next -= 1;
        inner.stats.casso_429s += 1;
        let mut r = casso_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        r.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
        return r;
    }
    let day = |v: &Option<String>, default: NaiveDate| match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)")),
        None => Ok(default),
    };
    let today = now_in_vietnam().date();
    let (from, to) = match (day(&q.from_date, today - chrono::Duration::days(7)), day(&q.to_date, today)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return casso_error(StatusCode::BAD_REQUEST, &e),
    };
    let number = |v: &Option<String>, default: usize| {
        v.as_deref().and_then(|s| s.trim().parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(default)
    };
    let (page, page_size) = (number(&q.page, 1), number(&q.page_size, 10));
    let ascending = q.sort.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("asc"));
    let mut rows: Vec<&Txn> =
        inner.ledger.iter().filter(|t| t.feed == Feed::Casso && t.at.date() >= from && t.at.date() <= to).collect();
    rows.sort_by_key(|t| (t.at, t.id));
    if !ascending {
        rows.reverse();
    }
    let total = rows.len();
    let total_pages = total.div_ceil(page_size);
    let records: Vec<Value> = rows.into_iter().skip((page - 1) * page_size).take(page_size).map(casso_record).collect();
    Json(json!({"error": 0, "message": "success", "data": {
        "page": page, "pageSize": page_size,
        "nextPage": if page < total_pages { json!(page + 1) } else { json!(null) },
        "prevPage": if page > 1 { json!(page - 1) } else { json!(null) },
        "totalPages": total_pages, "totalRecords": total, "records": records,
    }}))
    .into_response()
}

async fn make_transfer(State(emu): State<Emulator>, Json(t): Json<NewTransfer>) -> Response {
    let (id, delivery) = match emu.transfer_as_the_bank_would(&t).await {
        Ok(done) => done,
        Err(refused) => return (StatusCode::CONFLICT, Json(json!({"error": refused}))).into_response(),
    };
    Json(json!({"id": id, "webhook": delivery})).into_response()
}

async fn get_faults(State(emu): State<Emulator>) -> Json<Faults> {
    Json(emu.faults())
}

async fn set_faults(State(emu): State<Emulator>, Json(f): Json<Faults>) -> Json<Faults> {
    emu.set_faults(f);
    Json(emu.faults())
}

async fn get_stats(State(emu): State<Emulator>) -> Json<Stats> {
    Json(emu.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_casso_reference_example() {
        // CassoHQ/casso-webhook-v2-verify-signature (python.py): its key, timestamp, body and signature.
        let body = json!({"error": 0, "data": {"id": 0, "reference": "MA_GIAO_DICH_THU_NGHIEM",
            "description": "giao dich thu nghiem", "amount": 599000, "runningBalance": 25000000,
            "transactionDateTime": "2024-10-03 15:06:37", "accountNumber": "88888888", "bankName": "VPBank",
            "bankAbbreviation": "VPB", "virtualAccountNumber": "", "virtualAccountName": "",
            "counterAccountName": "NGUYEN VAN A", "counterAccountNumber": "8888888888", "counterAccountBankId": "970415",
            "counterAccountBankName": "VietinBank"}});
        assert_eq!(
            casso_signature("mgExMrjj4i7a1p8Cs6LmFbpCd8lbw4sSX4LZXPag7TKazeIogtR90tvWYTkwQbvs", 1727948258788, &body),
            "ed0a4bd2e826d5cb69988cdb141e6c1a080e21f3b57eb72cd78192220042b9e7dde0868fc667faea8e224900fa7904e7c88dfa098032fb2d6b6996856e8b7ff3"
        );
    }
}
