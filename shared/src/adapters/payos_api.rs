//! payOS's merchant API (`https://api-merchant.payos.vn`, headers `x-client-id` and
//! `x-api-key`): a payment link per order, what it has received, cancelling it, and
//! registering our webhook. Answers are `{code, desc, data}`, `code "00"` for success,
//! sometimes with HTTP 200 for an error; a duplicate `orderCode` is `code "231"` (observed by
//! integrators, not documented). 429s are waited out as payOS asks (`retry-after`).

use std::time::Duration;

use serde_json::{Value, json};

use super::bank_api::{ApiClient, FeedError, Pacing, route_error, text};
use super::payos_signature::{self, LinkToSign};
use crate::domain::payment_route::{
    OpenedRoute, PaymentRoutes, RouteError, RouteFuture, RouteKind, RouteRef, RouteRequest, RouteStatus,
    payos_description,
};
use crate::domain::transfer::{BankTransfer, Gateway, TransferType, vnd_from_json};

pub const DEFAULT_BASE_URL: &str = "https://api-merchant.payos.vn";
const PROVIDER: &str = "payOS";
/// payOS's answer to a second link for one `orderCode`.
const DUPLICATE_ORDER_CODE: &str = "231";

pub struct PayosApi {
    client: ApiClient,
    base_url: String,
    checksum_key: String,
    /// Our code pattern's prefix: what [`payos_description`] leaves out when the code is long.
    code_prefix: String,
}

impl std::fmt::Debug for PayosApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayosApi").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

fn pacing() -> Pacing {
    // No documented pace: one request at a time, 429s waited out as asked.
    Pacing {
        min_interval: Duration::from_millis(100),
        max_429s: 5,
        max_wait: Duration::from_secs(30),
        transient_retries: 2,
    }
}

fn feed_error(e: FeedError) -> RouteError {
    route_error(PROVIDER, e, |status, body| match serde_json::from_str::<Value>(body) {
        Ok(answer) => words(&answer),
        Err(_) => format!("{status}: {body}"),
    })
}

/// payOS's `code` and `desc`.
fn words(answer: &Value) -> String {
    format!("code {}: {}", text(answer, "code").unwrap_or_default(), text(answer, "desc").unwrap_or_default())
}

/// payOS's error answer, as a refusal that says its code and words.
fn refusal(answer: &Value) -> RouteError {
    RouteError::Refused { provider: PROVIDER, reason: words(answer) }
}

/// `data` of a successful answer, or the error it carries.
fn data_of(answer: Value) -> Result<Value, (String, RouteError)> {
    let code = text(&answer, "code").unwrap_or_default();
    if code != "00" {
        return Err((code, refusal(&answer)));
    }
    match answer.get("data") {
        Some(d) if d.is_object() => Ok(d.clone()),
        _ => Err((code, RouteError::Invalid { provider: PROVIDER, reason: "an answer without data".into() })),
    }
}

impl PayosApi {
    pub fn new(base_url: &str, client_id: &str, api_key: &str, checksum_key: &str, code_prefix: &str) -> Self {
        let headers = vec![("x-client-id", client_id.to_string()), ("x-api-key", api_key.to_string())];
        PayosApi {
            client: ApiClient::with_headers(PROVIDER, headers, "retry-after", pacing()),
            base_url: base_url.trim_end_matches('/').to_string(),
            checksum_key: checksum_key.to_string(),
            code_prefix: code_prefix.to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, RouteError> {
        let url = format!("{}{path}", self.base_url);
        self.client.send_json(method, &url, &[], body).await.map_err(feed_error)
    }

    async fn create(&self, request: &RouteRequest) -> Result<OpenedRoute, RouteError> {
        let order_code = request.payos_number.ok_or_else(|| RouteError::NotApplicable {
            provider: PROVIDER,
            reason: "payOS names an order by a number: the order code must be digits after its prefix".into(),
        })?;
        let return_url = request.return_url.as_deref().ok_or_else(|| RouteError::NotApplicable {
            provider: PROVIDER,
            reason: "payOS needs a page to send the buyer back to: set SHOP_URL".into(),
        })?;
        let description = payos_description(&request.code, &self.code_prefix);
        let signature = payos_signature::sign_link(
            &self.checksum_key,
            &LinkToSign {
                amount: request.amount_vnd,
                cancel_url: return_url,
                description: &description,
                order_code,
                return_url,
            },
        );
        let body = json!({
            "orderCode": order_code,
            "amount": request.amount_vnd,
            "description": description,
            "cancelUrl": return_url,
            "returnUrl": return_url,
            // Unix seconds (payOS takes an Int32): the link ends with the order.
            "expiredAt": request.expires_at.timestamp(),
            "signature": signature,
        });
        let answer = self.call(reqwest::Method::POST, "/v2/payment-requests", Some(&body)).await?;
        let raw = answer.to_string();
        // payOS signs its answer's data; an answer that does not verify is not payOS's.
        if let (Some(data), Some(sig)) = (answer.get("data"), answer.get("signature").and_then(Value::as_str))
            && data.is_object()
            && !payos_signature::verify_data(&self.checksum_key, data, sig)
        {
            return Err(RouteError::Invalid {
                provider: PROVIDER,
                reason: "the answer's signature does not verify".into(),
            });
        }
        match data_of(answer) {
            Ok(data) => Ok(OpenedRoute {
                kind: RouteKind::PayosLink,
                number: order_code.to_string(),
                external_id: text(&data, "paymentLinkId").ok_or_else(|| RouteError::Invalid {
                    provider: PROVIDER,
                    reason: "a created link without paymentLinkId".into(),
                })?,
                checkout_url: text(&data, "checkoutUrl"),
                qr_code: text(&data, "qrCode"),
                account_name: text(&data, "accountName"),
                raw,
            }),
            Err((code, _)) if code == DUPLICATE_ORDER_CODE => {
                Err(RouteError::Exists { provider: PROVIDER, number: order_code.to_string() })
            }
            Err((_, e)) => Err(e),
        }
    }

    /// The link payOS already has for `order_code` (after a create that timed out, say), as
    /// an opened route: its id, without the checkout page payOS only gives on creation.
    async fn existing(&self, order_code: i64) -> Result<OpenedRoute, RouteError> {
        let data = self.link(&order_code.to_string()).await?;
        Ok(OpenedRoute {
            kind: RouteKind::PayosLink,
            number: order_code.to_string(),
            external_id: text(&data, "id")
                .ok_or_else(|| RouteError::Invalid { provider: PROVIDER, reason: "a link without id".into() })?,
            checkout_url: None,
            qr_code: None,
            account_name: None,
            raw: data.to_string(),
        })
    }

    async fn link(&self, number: &str) -> Result<Value, RouteError> {
        let answer = self.call(reqwest::Method::GET, &format!("/v2/payment-requests/{number}"), None).await?;
        data_of(answer).map_err(|(_, e)| e)
    }

    /// `POST /confirm-webhook`: payOS calls `url` once to check it, then sends payments there.
    pub async fn confirm_webhook(&self, url: &str) -> Result<(), RouteError> {
        let answer = self.call(reqwest::Method::POST, "/confirm-webhook", Some(&json!({"webhookUrl": url}))).await?;
        let code = text(&answer, "code").unwrap_or_default();
        if code == "00" { Ok(()) } else { Err(refusal(&answer)) }
    }
}

/// One transaction of a link (`GET /v2/payment-requests/{orderCode}`) as a transfer: the same
/// id the webhook gives it (the link's id and the bank's reference), so either way it is
/// recorded once.
pub fn link_transfer(link: &Value, t: &Value, order_code: Option<String>) -> Result<BankTransfer, String> {
    let link_id = text(link, "id").ok_or("a link without id")?;
    let reference = text(t, "reference").ok_or("a transaction without reference")?;
    let amount = t
        .get("amount")
        .ok_or("a transaction without amount")
        .and_then(|a| vnd_from_json(a).map_err(|_| "an amount that is not whole VND"))?;
    Ok(BankTransfer {
        gateway: Gateway::Payos,
        id: format!("{link_id}:{reference}"),
        transfer_type: if amount < 0 { TransferType::Out } else { TransferType::In },
        amount_vnd: amount.abs(),
        bank: text(t, "counterAccountBankName"),
        account_number: text(t, "accountNumber"),
        sub_account: text(t, "virtualAccountNumber"),
        code: order_code,
        content: text(t, "description"),
        description: None,
        reference: Some(reference),
        transaction_date: text(t, "transactionDateTime"),
        raw: t.to_string(),
    })
}

impl PaymentRoutes for PayosApi {
    fn kind(&self) -> RouteKind {
        RouteKind::PayosLink
    }

    fn open<'a>(&'a self, request: &'a RouteRequest) -> RouteFuture<'a, OpenedRoute> {
        Box::pin(async move {
            match self.create(request).await {
                Err(RouteError::Exists { .. }) => {
                    self.existing(request.payos_number.expect("created only with a number")).await
                }
                other => other,
            }
        })
    }

    fn status<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, RouteStatus> {
        Box::pin(async move {
            let link = self.link(&route.number).await?;
            let transactions = link.get("transactions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut transfers = Vec::new();
            for t in &transactions {
                // The order is named by the link; the code is filled in by the caller, who
                // knows the pattern.
                match link_transfer(&link, t, None) {
                    Ok(transfer) => transfers.push(transfer),
                    Err(reason) => return Err(RouteError::Invalid { provider: PROVIDER, reason }),
                }
            }
            Ok(RouteStatus { status: text(&link, "status").unwrap_or_default(), transfers })
        })
    }

    fn close<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, ()> {
        Box::pin(async move {
            let body = json!({"cancellationReason": "the order is no longer waiting for this payment"});
            let path = format!("/v2/payment-requests/{}/cancel", route.number);
            let refused = match self.call(reqwest::Method::POST, &path, Some(&body)).await.map(data_of) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err((_, e))) | Err(e @ RouteError::Refused { .. }) => e,
                Err(e) => return Err(e),
            };
            // A paid, expired or cancelled link cannot be cancelled, and needs not be.
            let link = self.link(&route.number).await?;
            match text(&link, "status").as_deref() {
                Some("PAID" | "CANCELLED" | "EXPIRED") => Ok(()),
                _ => Err(refused),
            }
        })
    }
}
