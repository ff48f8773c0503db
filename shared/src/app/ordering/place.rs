//! Placing an order: prices from the catalog, one transaction, a retry under the same
//! idempotency key answered with the order it made.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use super::price::price_in;
use super::validate::validate;
use super::{OrderRequest, OrderSettings, PlaceOrderError, invalid};
use crate::adapters::{sepay, vietqr};
use crate::app::config::BankAccount;
use crate::domain::payment_route::{RouteKind, RouteState};
use crate::domain::{OrderCode, Vnd};
use crate::store::routes::StoredRoute;
use crate::store::{self, StoreError, coupons, items, orders};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlacedItem {
    pub course: String,
    pub title: String,
    pub price_vnd: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PaymentInstructions {
    pub bank: String,
    /// The order's own virtual account when it has one, else the seller's account.
    pub account_number: String,
    pub account_name: String,
    /// True when `account_number` is this order's own account: the amount is what matters,
    /// and a transfer with a wrong or empty text still pays the order.
    pub virtual_account: bool,
    pub transfer_text: String,
    pub qr_image_url: String,
    pub vietqr: String,
    /// payOS's payment link for the order, when payOS is configured and opened one.
    pub payos: Option<PayosCheckout>,
}

/// payOS's page and QR for the order, beside ours.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PayosCheckout {
    pub order_code: String,
    pub checkout_url: Option<String>,
    /// payOS's VietQR payload (its own transfer text); drawn at `qr.svg?via=payos`.
    pub qr_code: Option<String>,
}

/// How the buyer pays: into the order's open virtual account if it has one, else into the
/// seller's account with the code; and payOS's link beside it when open.
pub fn instructions(
    bank: &BankAccount,
    code: &str,
    amount: i64,
    routes: &[StoredRoute],
) -> Result<PaymentInstructions, vietqr::VietQrError> {
    let open = |kind| routes.iter().find(|r| r.kind == kind && r.state == RouteState::Open);
    let account = open(RouteKind::VirtualAccount).and_then(|r| Some((r.number.clone()?, r.account_name.clone())));
    let (account_number, account_name, virtual_account) = match account {
        Some((number, name)) => (number, name.unwrap_or_else(|| bank.account_name.clone()), true),
        None => (bank.account_number.clone(), bank.account_name.clone(), false),
    };
    let payee = BankAccount { account_number: account_number.clone(), ..bank.clone() };
    Ok(PaymentInstructions {
        bank: bank.bank_code.clone(),
        account_name,
        virtual_account,
        transfer_text: code.to_string(),
        qr_image_url: sepay::qr_image_url(&account_number, &bank.bank_code, amount, code),
        vietqr: vietqr_payload(&payee, code, amount)?,
        account_number,
        payos: open(RouteKind::PayosLink).map(|r| PayosCheckout {
            order_code: r.number.clone().unwrap_or_default(),
            checkout_url: r.checkout_url.clone(),
            qr_code: r.qr_code.clone(),
        }),
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlacedOrder {
    pub code: String,
    /// Opens the order's status view: `GET /orders/{code}?t={view_token}`, and the page's
    /// `?order={code}&t={view_token}`. The code alone is for the transfer text and opens nothing.
    pub view_token: String,
    pub status: crate::domain::OrderStatus,
    /// What the buyer transfers: the courses' prices less the coupon's discount.
    pub amount_vnd: i64,
    pub subtotal_vnd: i64,
    pub discount_vnd: i64,
    pub coupon: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<PlacedItem>,
    pub payment: PaymentInstructions,
}

#[derive(Debug)]
pub struct Placement {
    pub order: PlacedOrder,
    /// False when an Idempotency-Key replay returned an order made earlier.
    pub created: bool,
}

pub fn vietqr_payload(bank: &BankAccount, code: &str, amount: i64) -> Result<String, vietqr::VietQrError> {
    vietqr::VietQr {
        bank_bin: &bank.bank_bin,
        account_number: &bank.account_number,
        amount: Vnd::new(amount).ok(),
        bill_number: None,
        purpose: code,
    }
    .payload()
}

async fn placed(
    conn: &mut MySqlConnection,
    head: &orders::OrderHead,
    s: &OrderSettings,
) -> Result<PlacedOrder, StoreError> {
    let items = items::priced_courses_in(conn, head.id).await?;
    // No provider configured: no route to read, and no round trip for it.
    let routes =
        if s.routes.providers.is_empty() { Vec::new() } else { crate::app::routes::of_order(conn, head.id).await? };
    let payment = instructions(&s.bank, &head.code, head.total_vnd, &routes)
        .map_err(|e| StoreError::Corrupt(format!("VietQR for {}: {e}", head.code)))?;
    Ok(PlacedOrder {
        code: head.code.clone(),
        view_token: head.view_token.clone().unwrap_or_default(),
        status: head.status,
        amount_vnd: head.total_vnd,
        subtotal_vnd: head.total_vnd + head.discount_vnd,
        discount_vnd: head.discount_vnd,
        coupon: head.coupon.clone(),
        expires_at: head.expires_at,
        items: items.into_iter().map(|(course, title, price_vnd)| PlacedItem { course, title, price_vnd }).collect(),
        payment,
    })
}

/// Validates the request, prices it from the catalog and creates the order, or returns the
/// order an earlier request with the same `idempotency_key` created.
pub async fn place_order(
    pool: &MySqlPool,
    settings: &OrderSettings,
    request: &OrderRequest,
    idempotency_key: Option<&str>,
    client_ip: Option<std::net::IpAddr>,
) -> Result<Placement, PlaceOrderError> {
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(invalid("Idempotency-Key", "Idempotency-Key must be 1 to 128 visible ASCII characters"));
    }
    let valid = validate(request)?;
    let digest = valid.digest();
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;

    let replay = |head: orders::OrderHead| {
        if head.request_hash.as_deref() != Some(digest.as_str()) {
            return Err(PlaceOrderError::IdempotencyConflict);
        }
        Ok(head)
    };
    if let Some(key) = idempotency_key
        && let Some(head) = orders::head_by_key(&mut conn, key).await?
    {
        let head = replay(head)?;
        return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: false });
    }

    // Caps on unpaid orders: one client cannot fill the database or the code space. A retry
    // under its Idempotency-Key was answered above and counts nothing. Two requests at the
    // same instant may both pass: a cap, not an exact count.
    let client = client_ip.map(|ip| ip.to_string());
    let (by_email, by_client) = orders::pending_for(&mut conn, valid.email.as_str(), client.as_deref()).await?;
    if by_email >= settings.max_pending_per_email {
        return Err(PlaceOrderError::TooManyPending(format!(
            "this email already has {by_email} unpaid orders; pay one of them, or wait until they expire"
        )));
    }
    if by_client >= settings.max_pending_per_client {
        return Err(PlaceOrderError::TooManyPending(
            "too many unpaid orders from this network; pay one of them, or wait until they expire".into(),
        ));
    }

    let priced = price_in(&mut conn, &valid.slugs, valid.coupon.as_ref()).await?;

    // An order with a coupon holds one of its uses while unpaid: for less time.
    let hold = if priced.coupon.is_some() { settings.ttl.min(settings.coupon_ttl) } else { settings.ttl };
    let expires_at = Utc::now() + hold;
    // A random code can collide with an existing one; a fresh draw almost surely will not.
    for _ in 0..8 {
        let code = OrderCode::generate(&settings.pattern);
        let new = orders::NewOrder {
            code: &code,
            email: &valid.email,
            phone: valid.phone.as_deref(),
            lang: valid.lang,
            expires_at,
            items: &priced.lines,
            idempotency_key,
            request_hash: Some(&digest),
            coupon: priced.coupon,
        };
        // On the connection this request already holds: taking a second from the pool while
        // holding one can starve the pool under concurrent requests.
        let created = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            // First, so the coupon's row lock is the first this transaction takes: orders
            // racing for the last use queue on it and each sees the count the one before left.
            // Not last: the order's insert checks its foreign key with a shared lock on the
            // coupon's row, and two orders each holding that lock and then asking for the
            // exclusive one deadlock (tried: `make bench`'s coupon phase got 500s).
            // Held through the commit, the lock makes a flash sale's orders commit one at a
            // time: about 0.6 x the rate of plain orders in `make bench`.
            if let Some((coupon_id, _)) = new.coupon {
                if !coupons::reserve_in(&mut tx, coupon_id).await? {
                    return Ok(Some(super::CouponRefusal::UsedUp));
                }
                let (by_email, by_client) =
                    coupons::holds_in(&mut tx, coupon_id, valid.email.as_str(), client.as_deref()).await?;
                if by_email >= settings.max_coupon_holds_per_email
                    || (client.is_some() && by_client >= settings.max_coupon_holds_per_client)
                {
                    return Ok(Some(super::CouponRefusal::HeldAlready));
                }
            }
            let created = orders::create_in(&mut tx, &new, "create-order").await?;
            if let Some(ip) = &client {
                orders::set_client_ip_in(&mut tx, created.order_id, ip).await?;
            }
            tx.commit().await?;
            Ok::<Option<super::CouponRefusal>, StoreError>(None)
        }
        .await;
        match created {
            // Its last use went to another order a moment ago (or it just ended), or this buyer
            // holds one already: the reservation, not the reading before it, decides. The
            // transaction is rolled back as it drops.
            Ok(Some(refusal)) => return Err(PlaceOrderError::Coupon(refusal)),
            Ok(None) => {
                let head = orders::head_by_code(&mut conn, code.as_str())
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: "order", id: code.to_string() })?;
                // After the commit: the order exists whatever the providers answer.
                crate::app::routes::open_for(&mut conn, &settings.routes, &settings.pattern, &head).await?;
                return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: true });
            }
            Err(StoreError::Database(e)) if store::is_duplicate_key(&e, "uq_orders_code") => {
                continue;
            }
            Err(StoreError::Database(e)) if store::is_duplicate_key(&e, "uq_orders_idempotency_key") => {
                // A concurrent request with the same key won the race: answer as its retry.
                let key = idempotency_key.unwrap_or_default();
                let head = orders::head_by_key(&mut conn, key)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: "order", id: key.to_string() })?;
                let head = replay(head)?;
                return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: false });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Corrupt("could not draw an unused order code in 8 tries; widen ORDER_CODE_LENGTH".into()).into())
}
