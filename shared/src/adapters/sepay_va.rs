//! SePay's order virtual-account API (v2, `https://userapi.sepay.vn`, `Authorization: Bearer
//! <API token>`): an order at SePay with a virtual account for exactly its amount
//! (`POST /v2/bank-accounts/{ba_xid}/orders`, 201 `{status, data: {id, va_number, …}}`), read
//! (`GET …/orders/{id}`) and cancelled with its unpaid accounts (`DELETE …/orders/{id}`, 204;
//! 422 `invalid_state` once it is paid or cancelled). About 3 requests a second, 429 with
//! `Retry-After`. Production only: SePay has no test mode for it.
//!
//! Each bank has its rules: BIDV takes any order code up to 50 characters; Sacombank needs the
//! account's `va_prefix`; Vietcombank needs a terminal id (`tid`) and a code of 6 to 15
//! characters. Money paid into the account arrives in SePay's ordinary webhook with the
//! account's number in `subAccount`.

use std::time::Duration;

use serde_json::{Value, json};

use super::bank_api::{ApiClient, FeedError, Pacing, route_error, text};
use crate::domain::payment_route::{
    OpenedRoute, PaymentRoutes, RouteError, RouteFuture, RouteKind, RouteRef, RouteRequest, RouteStatus,
};

pub const DEFAULT_BASE_URL: &str = "https://userapi.sepay.vn";
const PROVIDER: &str = "SePay virtual accounts";

/// The bank's rules for an order's virtual account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaBank {
    Bidv,
    Sacombank { va_prefix: String },
    Vietcombank { terminal_id: String },
}

impl VaBank {
    /// The longest order code the bank takes.
    fn max_code_len(&self) -> usize {
        match self {
            VaBank::Vietcombank { .. } => 15,
            _ => 50,
        }
    }
}

pub struct SepayVa {
    client: ApiClient,
    base_url: String,
    /// SePay's id of the seller's bank account (`ba_xid`).
    account_xid: String,
    bank: VaBank,
}

fn pacing() -> Pacing {
    Pacing {
        min_interval: Duration::from_millis(350),
        max_429s: 5,
        max_wait: Duration::from_secs(30),
        transient_retries: 2,
    }
}

fn error_code(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body).ok().and_then(|v| text(&v, "error_code"))
}

fn feed_error(e: FeedError) -> RouteError {
    route_error(PROVIDER, e, |status, body| match serde_json::from_str::<Value>(body) {
        Ok(v) => format!(
            "{status} {}: {}",
            text(&v, "error_code").unwrap_or_default(),
            text(&v, "message").unwrap_or_default()
        ),
        Err(_) => format!("{status}: {body}"),
    })
}

impl SepayVa {
    pub fn new(base_url: &str, token: &str, account_xid: &str, bank: VaBank) -> Self {
        SepayVa {
            client: ApiClient::new(PROVIDER, format!("Bearer {token}"), "retry-after", pacing()),
            base_url: base_url.trim_end_matches('/').to_string(),
            account_xid: account_xid.to_string(),
            bank,
        }
    }

    fn orders_url(&self) -> String {
        format!("{}/v2/bank-accounts/{}/orders", self.base_url, self.account_xid)
    }

    async fn create(&self, request: &RouteRequest) -> Result<OpenedRoute, RouteError> {
        let code_len = request.code.chars().count();
        if !(6..=self.bank.max_code_len()).contains(&code_len) {
            return Err(RouteError::NotApplicable {
                provider: PROVIDER,
                reason: format!("the bank takes order codes of 6 to {} characters", self.bank.max_code_len()),
            });
        }
        let seconds = (request.expires_at - chrono::Utc::now()).num_seconds().max(60);
        let mut body = json!({
            "order_code": request.code,
            "amount": request.amount_vnd,
            "duration": seconds,
            "with_qrcode": "0",
        });
        match &self.bank {
            VaBank::Bidv => {}
            VaBank::Sacombank { va_prefix } => body["va_prefix"] = json!(va_prefix),
            VaBank::Vietcombank { terminal_id } => body["tid"] = json!(terminal_id),
        }
        let answer = self
            .client
            .send_json(reqwest::Method::POST, &self.orders_url(), &[], Some(&body))
            .await
            .map_err(feed_error)?;
        let data = answer
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| RouteError::Invalid { provider: PROVIDER, reason: "an answer without data".into() })?;
        let missing =
            |field: &str| RouteError::Invalid { provider: PROVIDER, reason: format!("an order without {field}") };
        Ok(OpenedRoute {
            kind: RouteKind::VirtualAccount,
            number: text(data, "va_number").ok_or_else(|| missing("va_number"))?,
            external_id: text(data, "id").ok_or_else(|| missing("id"))?,
            checkout_url: None,
            // SePay's QR is an image; the page draws the VietQR of the account itself.
            qr_code: None,
            account_name: text(data, "va_holder_name").or_else(|| text(data, "account_holder_name")),
            raw: answer.to_string(),
        })
    }

    async fn order(&self, id: &str) -> Result<Value, RouteError> {
        let url = format!("{}/{id}", self.orders_url());
        let answer = self.client.get_json(&url, &[]).await.map_err(feed_error)?;
        answer
            .get("data")
            .cloned()
            .ok_or_else(|| RouteError::Invalid { provider: PROVIDER, reason: "an answer without data".into() })
    }
}

impl PaymentRoutes for SepayVa {
    fn kind(&self) -> RouteKind {
        RouteKind::VirtualAccount
    }

    fn open<'a>(&'a self, request: &'a RouteRequest) -> RouteFuture<'a, OpenedRoute> {
        Box::pin(self.create(request))
    }

    fn status<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, RouteStatus> {
        Box::pin(async move {
            let order = self.order(&route.external_id).await?;
            // Its payments arrive in SePay's transaction feed, reconciled there.
            Ok(RouteStatus { status: text(&order, "status").unwrap_or_default(), transfers: Vec::new() })
        })
    }

    fn close<'a>(&'a self, route: &'a RouteRef) -> RouteFuture<'a, ()> {
        Box::pin(async move {
            let url = format!("{}/{}", self.orders_url(), route.external_id);
            match self.client.send_json(reqwest::Method::DELETE, &url, &[], None).await {
                Ok(_) => Ok(()),
                // Paid or cancelled already: it takes no more money, which is what was asked.
                Err(FeedError::Status { status: 422, body, .. })
                    if error_code(&body).as_deref() == Some("invalid_state") =>
                {
                    Ok(())
                }
                Err(FeedError::Status { status: 404, .. }) => Ok(()),
                Err(e) => Err(feed_error(e)),
            }
        })
    }
}
