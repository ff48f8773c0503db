//! `POST /webhooks/sepay`: authenticate, parse, record the payment in one transaction,
//! publish the stage messages it produced, answer `200 {"success": true}`.
//!
//! Non-2xx only when something internal failed (the database), because that is exactly
//! when SePay's retries help. A duplicate, an unmatched transfer or an outgoing transfer is
//! recorded (or recognised) and answered 200.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use coursedrop::adapters::queue::Publisher;
use coursedrop::adapters::sepay::{AuthError, AuthHeaders, SepayTransaction, WebhookAuth};
use coursedrop::config::{self, ConfigError, Vars};
use coursedrop::http::{self, ApiError};
use coursedrop::payments::{self, PaymentOutcome, PaymentSettings};
use coursedrop::relay;
use serde_json::{Value, json};
use sqlx::MySqlPool;

/// SePay's bodies are a few hundred bytes; anything near this is not SePay.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct WebhookState<P> {
    pub pool: MySqlPool,
    pub auth: WebhookAuth,
    pub settings: PaymentSettings,
    pub publisher: P,
}

impl<P: Publisher> WebhookState<P> {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(
        pool: MySqlPool,
        publisher: P,
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let auth = config::webhook_auth(vars)?;
        if let WebhookAuth::Unconfigured { reason } = &auth {
            tracing::error!(%reason, "the SePay webhook has no key: every request will be refused");
        }
        let settings = PaymentSettings {
            pattern: config::code_pattern(vars)?,
            account_number: config::bank_account(vars)?.account_number,
        };
        Ok(WebhookState { pool, auth, settings, publisher })
    }
}

/// The function's routes, mergeable with others (as `make dev` does).
pub fn routes<P: Publisher>(state: Arc<WebhookState<P>>) -> Router {
    Router::new()
        .route("/webhooks/sepay", post(receive::<P>).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .with_state(state)
}

/// The function as deployed: its route, with JSON answers for unknown paths and methods.
pub fn router<P: Publisher>(state: Arc<WebhookState<P>>) -> Router {
    http::with_fallbacks(routes(state))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive<P: Publisher>(
    State(s): State<Arc<WebhookState<P>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
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
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the webhook's credentials were not accepted",
        ));
    }
    let tx = SepayTransaction::parse(&body).map_err(|e| {
        tracing::warn!(error = %e, bytes = body.len(), "refused an unreadable SePay payload");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string())
    })?;
    // Bodies are JSON, and JSON is UTF-8; a lossy copy only ever differs for a body that
    // serde has just accepted, which cannot happen.
    let raw = String::from_utf8_lossy(&body);
    let recorded = payments::record(&s.pool, &tx, &raw, &s.settings).await.map_err(|e| {
        // Not recorded: a non-2xx makes SePay deliver it again.
        ApiError::internal("recording a SePay payment", &e)
    })?;
    match &recorded.outcome {
        PaymentOutcome::Duplicate => {
            tracing::info!(sepay_id = tx.id, "duplicate delivery; already recorded")
        }
        PaymentOutcome::Outgoing => tracing::info!(sepay_id = tx.id, "outgoing transfer recorded"),
        PaymentOutcome::Unmatched { reason } => {
            tracing::warn!(sepay_id = tx.id, amount = tx.transfer_amount, %reason, "unmatched transfer kept")
        }
        PaymentOutcome::Applied { order_code, paid_vnd, total_vnd, became_paid } => {
            tracing::info!(sepay_id = tx.id, order_code = %order_code, paid_vnd, total_vnd, became_paid, "payment applied")
        }
        PaymentOutcome::Flagged { order_code, reason } => {
            tracing::warn!(sepay_id = tx.id, order_code = %order_code, %reason, "payment kept; order flagged for an operator")
        }
    }
    // The payment is committed: a failed publish is left to the sweeper, and SePay still
    // gets its 200.
    relay::publish_all(&s.pool, &s.publisher, &recorded.outbox).await;
    Ok(Json(json!({"success": true})))
}
