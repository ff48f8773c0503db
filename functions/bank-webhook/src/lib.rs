//! The bank feeds' webhooks, `POST /webhooks/sepay`, `POST /webhooks/casso` and
//! `POST /webhooks/payos`:
//! authenticate, parse, record the payment in one transaction (the same path for every feed
//! and for reconciliation), publish the stage messages it produced, answer 2xx.
//!
//! Non-2xx only when something internal failed (the database), because that is exactly
//! when the feed's retries help. A duplicate, an unmatched transfer or an outgoing transfer
//! is recorded (or recognised) and answered 200.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use coursedrop::adapters::casso::{self, CassoAuth, SignatureError};
use coursedrop::adapters::payos::{self, PayosAuth, PayosWebhookError};
use coursedrop::adapters::queue::Publisher;
use coursedrop::adapters::sepay::{AuthError, AuthHeaders, SepayTransaction, WebhookAuth};
use coursedrop::app::config::{self, ConfigError, Vars};
use coursedrop::app::payments::{self, Arrival, BankTransfer, PaymentOutcome, PaymentSettings};
use coursedrop::app::relay;
use coursedrop::runtime::http::{self, ApiError};
use coursedrop::store::kept::KeptConnections;
use serde_json::{Value, json};
use sqlx::MySqlPool;

/// The feeds' bodies are a few hundred bytes; anything near this is not a feed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct WebhookState<P> {
    /// The pool's connections, kept between requests (`store::kept`).
    pub db: KeptConnections,
    pub auth: WebhookAuth,
    pub casso: CassoAuth,
    pub payos: PayosAuth,
    pub settings: PaymentSettings,
    pub publisher: P,
    /// SePay's calls accepted only from these addresses (`SEPAY_ALLOWED_IPS`); `None`: from
    /// anywhere. On top of the key, never instead of it.
    pub sepay_sources: Option<Vec<std::net::IpAddr>>,
}

/// The addresses SePay sends webhooks from, as it publishes them (developer.sepay.vn, "Địa
/// chỉ IP"; the page says the list may change: `SEPAY_ALLOWED_IPS` can name others).
pub const SEPAY_PUBLISHED_IPS: &[&str] = &[
    "172.236.138.20",
    "172.233.83.68",
    "171.244.35.2",
    "151.158.108.68",
    "151.158.109.79",
    "103.255.238.139",
    "2400:8905::2000:8cff:fe98:45cd",
    "2600:3c15::2000:8aff:fedd:874b",
];

/// `SEPAY_ALLOWED_IPS`: unset or empty → any source; otherwise a comma-separated list of
/// addresses, where `sepay` stands for the published list.
pub fn sepay_sources(vars: &Vars) -> Result<Option<Vec<std::net::IpAddr>>, ConfigError> {
    let Some(list) = vars.get("SEPAY_ALLOWED_IPS").filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry.eq_ignore_ascii_case("sepay") {
            out.extend(
                SEPAY_PUBLISHED_IPS.iter().map(|ip| ip.parse::<std::net::IpAddr>().expect("a published address")),
            );
        } else {
            out.push(entry.parse().map_err(|_| ConfigError::Invalid {
                var: "SEPAY_ALLOWED_IPS",
                reason: format!("{entry:?} is not an IP address (or `sepay` for SePay's published list)"),
            })?);
        }
    }
    Ok(Some(out))
}

impl<P: Publisher> WebhookState<P> {
    pub fn from_vars(pool: MySqlPool, publisher: P, vars: &Vars) -> Result<Self, ConfigError> {
        let auth = config::webhook_auth(vars)?;
        if let WebhookAuth::Unconfigured { reason } = &auth {
            tracing::error!(%reason, "the SePay webhook has no key: every request will be refused");
        }
        let casso = config::casso_auth(vars);
        if let CassoAuth::Unconfigured { reason } = &casso {
            tracing::info!(%reason, "the Casso webhook is off: every request to it will be refused");
        }
        let settings = config::payment_settings(vars)?;
        let sepay_sources = sepay_sources(vars)?;
        let payos = config::payos_auth(vars);
        Ok(WebhookState { db: KeptConnections::new(pool), auth, casso, payos, settings, publisher, sepay_sources })
    }
}

/// The function's routes, mergeable with others (as `make dev` does).
pub fn routes<P: Publisher>(state: Arc<WebhookState<P>>) -> Router {
    Router::new()
        .route("/webhooks/sepay", post(receive::<P>).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/webhooks/casso", post(receive_casso::<P>).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/webhooks/payos", post(receive_payos::<P>).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .with_state(state)
}

/// The function as deployed: its route, with JSON answers for unknown paths and methods.
pub fn router<P: Publisher>(state: Arc<WebhookState<P>>) -> Router {
    http::with_common_layers(routes(state))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the webhook's credentials were not accepted")
}

async fn receive<P: Publisher>(
    State(s): State<Arc<WebhookState<P>>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if let Some(allowed) = &s.sepay_sources {
        // An unknown source is refused too: the allow-list was asked for.
        let source = http::client_ip(&extensions);
        if !source.is_some_and(|ip| allowed.contains(&ip.to_canonical())) {
            tracing::warn!(?source, "refused a SePay webhook from an address not in SEPAY_ALLOWED_IPS");
            coursedrop::support::metrics::emit(coursedrop::support::metrics::Metric::WebhookRefused {
                gateway: "sepay",
            });
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_source",
                "this address is not one SePay sends webhooks from (SEPAY_ALLOWED_IPS)",
            ));
        }
    }
    let body = body.map_err(ApiError::from_body)?;
    let presented = AuthHeaders {
        authorization: header(&headers, "authorization"),
        signature: header(&headers, "x-sepay-signature"),
        timestamp: header(&headers, "x-sepay-timestamp"),
    };
    if let Err(e) = s.auth.verify(presented, &body, chrono::Utc::now().timestamp()) {
        match (&e, &s.auth) {
            (AuthError::NotConfigured, WebhookAuth::Unconfigured { reason }) => {
                tracing::error!(%reason, "refused a webhook: no key is configured")
            }
            _ => tracing::warn!(reason = %e, "refused a webhook"),
        }
        coursedrop::support::metrics::emit(coursedrop::support::metrics::Metric::WebhookRefused { gateway: "sepay" });
        return Err(unauthorized());
    }
    let tx = SepayTransaction::parse(&body).map_err(|e| {
        tracing::warn!(error = %e, bytes = body.len(), "refused an unreadable SePay payload");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string())
    })?;
    // Bodies are JSON, and JSON is UTF-8; a lossy copy only ever differs for a body that
    // serde has just accepted, which cannot happen.
    let raw = String::from_utf8_lossy(&body).into_owned();
    let transfer = tx.into_transfer(raw);
    record(&s, &transfer).await?;
    Ok(Json(json!({"success": true})))
}

/// Records a verified transfer from any feed and publishes what it started. `Err` only when
/// it was not recorded: the feed then retries.
async fn record<P: Publisher>(s: &WebhookState<P>, tx: &BankTransfer) -> Result<(), ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        // Not recorded: a non-2xx makes the feed deliver it again.
        coursedrop::support::metrics::emit(coursedrop::support::metrics::Metric::WebhookFailed {
            gateway: tx.gateway.as_str(),
        });
        ApiError::internal("recording a payment", e)
    };
    let mut conn = s.db.get().await.map_err(|e| failed(&e))?;
    let recorded = payments::record_with(&mut conn, tx, &s.settings, Arrival::Webhook).await.map_err(|e| failed(&e))?;
    conn.keep();
    let (gateway, id) = (tx.gateway.as_str(), tx.id.as_str());
    match &recorded.outcome {
        PaymentOutcome::Duplicate => tracing::info!(gateway, id, "duplicate delivery; already recorded"),
        PaymentOutcome::Outgoing => tracing::info!(gateway, id, "outgoing transfer recorded"),
        PaymentOutcome::SameTransfer { payment_id } => {
            tracing::info!(gateway, id, payment_id, "another feed reported this transfer first; kept as evidence")
        }
        PaymentOutcome::Held { duplicate_of } => tracing::warn!(
            gateway,
            id,
            amount = tx.amount_vnd,
            duplicate_of,
            "transfer held for an operator: it looks like one already counted"
        ),
        PaymentOutcome::Unmatched { reason } => {
            tracing::warn!(gateway, id, amount = tx.amount_vnd, %reason, "unmatched transfer kept")
        }
        PaymentOutcome::Applied { order_code, paid_vnd, total_vnd, became_paid } => {
            tracing::info!(gateway, id, order_code = %order_code, paid_vnd, total_vnd, became_paid, "payment applied")
        }
        PaymentOutcome::Flagged { order_code, reason } => {
            tracing::warn!(gateway, id, order_code = %order_code, %reason, "payment kept; order flagged for an operator")
        }
    }
    // The payment is committed: a failed publish is left to the sweeper, and the feed still
    // gets its 2xx.
    relay::publish_all(s.db.pool(), &s.publisher, &recorded.outbox).await;
    Ok(())
}

/// `POST /webhooks/casso` (webhook v2). Casso's dashboard test call is not signed as real
/// deliveries are: a request with no transaction in it records nothing, so it is answered
/// 200 with a message saying so, whether signed or not; a request that carries a
/// transaction must be signed.
async fn receive_casso<P: Publisher>(
    State(s): State<Arc<WebhookState<P>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", format!("body is not JSON: {e}")))?;
    let raw = String::from_utf8_lossy(&body).into_owned();
    let transfer = casso::webhook_transfer(&parsed, &raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()));
    let signature = header(&headers, casso::SIGNATURE_HEADER);
    let verified = s.casso.verify(signature, &parsed, chrono::Utc::now().timestamp_millis());
    let transfer = match (transfer, verified) {
        (Ok(None), verified) => {
            tracing::info!(signed = verified.is_ok(), "Casso test call (no transaction) answered");
            return Ok(Json(json!({
                "success": true,
                "message": "coursedrop's Casso webhook is reachable. This request carried no transaction, so nothing \
                            was recorded; real deliveries must carry X-Casso-Signature made with the webhook's checksum key."
            })));
        }
        (_, Err(e)) => {
            match &s.casso {
                CassoAuth::Unconfigured { reason } => {
                    tracing::error!(%reason, "refused a Casso webhook: no key is configured")
                }
                _ => tracing::warn!(reason = %e, "refused a Casso webhook"),
            }
            coursedrop::support::metrics::emit(coursedrop::support::metrics::Metric::WebhookRefused {
                gateway: "casso",
            });
            let message = match e {
                SignatureError::NotConfigured => "the Casso webhook is not configured on this server (no checksum key)",
                SignatureError::Missing | SignatureError::Malformed => {
                    "a Casso delivery must carry X-Casso-Signature: t=<unix ms>,v1=<hex HMAC-SHA512>"
                }
                SignatureError::Expired => "the signature's timestamp is too old (or in the future)",
                SignatureError::Invalid => "the signature does not match the body",
            };
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message));
        }
        (Err(e), Ok(())) => {
            tracing::warn!(error = %e.message, "refused an unreadable Casso payload");
            return Err(e);
        }
        (Ok(Some(t)), Ok(())) => t,
    };
    record(&s, &transfer).await?;
    Ok(Json(json!({"success": true})))
}

/// `POST /webhooks/payos`: the body carries `data` and payOS's `signature` over it. A delivery
/// that is unsigned, signed with another key, or changed in transit records nothing and is
/// answered 401; a verified one is recorded as every feed's is, and answered 2xx (payOS's
/// own check when the URL is registered is a signed delivery too).
async fn receive_payos<P: Publisher>(
    State(s): State<Arc<WebhookState<P>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", format!("body is not JSON: {e}")))?;
    if let Err(e) = s.payos.verify(&parsed) {
        match e {
            PayosWebhookError::NotConfigured => tracing::error!("refused a payOS webhook: no PAYOS_CHECKSUM_KEY"),
            _ => tracing::warn!(reason = %e, "refused a payOS webhook"),
        }
        coursedrop::support::metrics::emit(coursedrop::support::metrics::Metric::WebhookRefused { gateway: "payos" });
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()));
    }
    if payos::is_validation_call(&parsed) {
        tracing::info!("payOS checked the webhook URL with its sample delivery; nothing recorded");
        return Ok(Json(json!({"success": true})));
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
    let transfer = payos::webhook_transfer(&parsed, &raw, &s.settings.pattern).map_err(|e| {
        tracing::warn!(error = %e, "refused an unreadable payOS payload");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string())
    })?;
    record(&s, &transfer).await?;
    Ok(Json(json!({"success": true})))
}
