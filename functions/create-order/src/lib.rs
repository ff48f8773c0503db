//! The buyer-facing HTTP API: `GET /courses`, `POST /orders`, `GET /orders/{code}` and
//! `GET /orders/{code}/qr.svg`, and the buyer's page at `GET /` that uses them. Handlers
//! parse, call `coursedrop::app::ordering` and map.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coursedrop::app::config::{self, ConfigError, Vars};
use coursedrop::app::ordering::{self, OrderRequest, OrderSettings, PlaceOrderError};
use coursedrop::domain::OrderCode;
use coursedrop::runtime::http::{self, ApiError};
use coursedrop::store::catalog;
use serde::Serialize;
use sqlx::MySqlPool;

/// Largest `POST /orders` body we read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: MySqlPool,
    pub settings: Arc<OrderSettings>,
    /// The buyer page with the seller's brand in it, rendered once at start.
    pub page: Arc<BrandedPage>,
}

pub struct BrandedPage {
    /// Shared by every request without a copy.
    html: Bytes,
    csp: String,
}

impl AppState {
    pub fn from_vars(pool: MySqlPool, vars: &Vars) -> Result<Self, ConfigError> {
        let settings = OrderSettings {
            pattern: config::code_pattern(vars)?,
            bank: config::bank_account(vars)?,
            ttl: config::order_ttl(vars)?,
            max_pending_per_email: vars.parse_or("PENDING_ORDERS_PER_EMAIL", 5u32)?,
            max_pending_per_client: vars.parse_or("PENDING_ORDERS_PER_CLIENT", 30u32)?,
            coupon_ttl: vars.duration_or("COUPON_ORDER_TTL", "15m")?,
            max_coupon_holds_per_email: vars.parse_or("COUPON_HOLDS_PER_EMAIL", 1u32)?,
            max_coupon_holds_per_client: vars.parse_or("COUPON_HOLDS_PER_CLIENT", 3u32)?,
            routes: config::payment_routes(vars)?,
        };
        let brand = coursedrop::domain::brand::Brand::from_vars(vars)?;
        // The page says how often a buyer may move their access; the self-service function
        // enforces it, from the same variable.
        let access_changes: u32 = vars.parse_or("ACCESS_CHANGES_PER_ITEM", 2)?;
        Ok(AppState { pool, settings: Arc::new(settings), page: Arc::new(BrandedPage::new(&brand, access_changes)) })
    }
}

/// The function's routes, mergeable with others (as `make dev` does).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/courses", get(list_courses))
        .route("/orders", post(create_order).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/quote", post(quote).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/orders/{code}", get(get_order))
        .route("/orders/{code}/qr.svg", get(qr_svg))
        .with_state(state)
}

/// The function as deployed: its routes, with JSON answers for unknown paths and methods.
pub fn router(state: AppState) -> Router {
    http::with_common_layers(routes(state))
}

/// The buyer's page: plain HTML and a little JavaScript, no build step. It only calls the
/// API above, with relative URLs, so it works wherever the API is mounted.
const PAGE: &str = include_str!("page.html");

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

impl BrandedPage {
    /// The page with the seller's name (in its title too), logo and support contacts. Without a
    /// name the heading is the page's own words ("Buy a course"), never a placeholder.
    pub fn new(brand: &coursedrop::domain::brand::Brand, access_changes: u32) -> Self {
        let name = brand.seller_name.as_deref().map(escape);
        let logo = brand
            .logo_url
            .as_deref()
            .map(|url| format!(r#"<img src="{}" alt="" width="40" height="40">"#, escape(url)))
            .unwrap_or_default();
        let mut support = String::new();
        let mut line = |label: &str, href: String, text: &str| {
            support.push_str(&format!(
                r#"<li><span data-t="{label}"></span>: <a href="{}">{}</a></li>"#,
                escape(&href),
                escape(text)
            ));
        };
        if let Some(email) = &brand.support_email {
            line("supportEmail", format!("mailto:{email}"), email);
        }
        if let Some(phone) = &brand.support_phone {
            let dial: String = phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
            line("supportPhone", format!("tel:{dial}"), phone);
        }
        if let Some(zalo) = &brand.support_zalo {
            line("supportZalo", zalo.clone(), zalo.trim_start_matches("https://"));
        }
        let html = PAGE
            .replace("{{TITLE}}", name.as_deref().unwrap_or("Khoá học · Courses"))
            .replace("{{LOGO}}", &logo)
            .replace("{{NAME_ATTR}}", if name.is_some() { "" } else { r#" data-t="shop""# })
            .replace("{{NAME}}", name.as_deref().unwrap_or_default())
            .replace("{{SUPPORT_HIDDEN}}", if brand.has_support() { "" } else { " hidden" })
            .replace("{{SUPPORT}}", &support)
            .replace("{{ACCESS_CHANGES}}", &access_changes.to_string());
        // Everything the page loads is its own, and the seller's logo; it writes data only
        // through textContent.
        let img = match brand.logo_origin() {
            Some(origin) => format!("img-src 'self' {origin}"),
            None => "img-src 'self'".into(),
        };
        let csp = format!(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; {img}; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        BrandedPage { html: Bytes::from(html), csp }
    }
}

async fn page(State(s): State<AppState>) -> Response {
    let csp =
        header::HeaderValue::from_str(&s.page.csp).unwrap_or(header::HeaderValue::from_static("default-src 'self'"));
    (
        [
            (header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer")),
        ],
        s.page.html.clone(),
    )
        .into_response()
}

#[derive(Serialize)]
struct CourseView {
    slug: String,
    title: String,
    price_vnd: i64,
}

async fn list_courses(State(s): State<AppState>) -> Result<Json<Vec<CourseView>>, ApiError> {
    let mut conn = s.pool.acquire().await.map_err(|e| ApiError::internal("listing courses", &e))?;
    let courses = catalog::list_active(&mut conn).await.map_err(|e| ApiError::internal("listing courses", &e))?;
    Ok(Json(courses.into_iter().map(|c| CourseView { slug: c.slug, title: c.title, price_vnd: c.price_vnd }).collect()))
}

/// What an order of these courses with this coupon costs now: the page shows it before the
/// buyer orders. Reserves nothing.
async fn quote(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ordering::Quote>, ApiError> {
    let request: ordering::QuoteRequest = http::json_body(&headers, body, "quote request")?;
    ordering::quote(&s.pool, &request).await.map(Json).map_err(order_error)
}

fn order_error(e: PlaceOrderError) -> ApiError {
    match e {
        PlaceOrderError::Invalid { field, message } => ApiError::invalid_field(field, message),
        PlaceOrderError::IdempotencyConflict => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different order; use a new key",
        ),
        PlaceOrderError::TooManyPending(message) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_pending_orders", message)
        }
        PlaceOrderError::Coupon(why) => ApiError::invalid_field_because("coupon", why.as_str(), why.message()),
        PlaceOrderError::Store(e) => ApiError::internal("placing an order", &e),
    }
}

async fn create_order(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: OrderRequest = http::json_body(&headers, body, "order")?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid_field("Idempotency-Key", "Idempotency-Key must be visible ASCII"))?,
        ),
    };
    let client = coursedrop::runtime::http::client_ip(&extensions);
    match ordering::place_order(&s.pool, &s.settings, &request, key, client).await {
        Ok(placement) => {
            if placement.created {
                let buyer = coursedrop::domain::mask_email(request.email.as_deref().unwrap_or_default());
                tracing::info!(order_code = %placement.order.code, %buyer, amount_vnd = placement.order.amount_vnd, "order placed");
            }
            let mut response = (StatusCode::CREATED, Json(placement.order)).into_response();
            if !placement.created {
                response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        Err(e) => Err(order_error(e)),
    }
}

/// A path segment that is not a well-formed code cannot name an order: 404, like an unknown one.
fn code_from_path(s: &AppState, raw: &str) -> Result<OrderCode, ApiError> {
    OrderCode::parse(raw, &s.settings.pattern).map_err(|_| ApiError::not_found("no order with this code"))
}

/// `?t=<view token>`: what the order's placement answered. Without it, or with a wrong one, an
/// order answers as an unknown one does.
#[derive(serde::Deserialize)]
struct ViewQuery {
    t: Option<String>,
    /// `payos`: payOS's QR for the order's link instead of ours.
    via: Option<String>,
}

/// The token given, if any: a query string that does not parse gives none (and so a 404, never
/// the framework's text rejection).
fn token_of(q: &Result<Query<ViewQuery>, QueryRejection>) -> &str {
    q.as_ref().ok().and_then(|q| q.t.as_deref()).unwrap_or_default()
}

async fn get_order(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Json<ordering::OrderView>, ApiError> {
    let code = code_from_path(&s, &raw)?;
    match ordering::order_view(&s.pool, &code, token_of(&q)).await {
        Ok(Some(view)) => Ok(Json(view)),
        Ok(None) => Err(ApiError::not_found("no order with this code")),
        Err(e) => Err(ApiError::internal("reading an order", &e)),
    }
}

async fn qr_svg(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let code = code_from_path(&s, &raw)?;
    let payos = q.as_ref().ok().and_then(|q| q.via.as_deref()) == Some("payos");
    let payload = match ordering::order_vietqr(&s.pool, &s.settings, &code, token_of(&q), payos).await {
        Ok(Some(p)) => p,
        Ok(None) if payos => return Err(ApiError::not_found("no payOS link is open for this order")),
        Ok(None) => return Err(ApiError::not_found("no order with this code")),
        Err(e) => return Err(ApiError::internal("reading an order for its QR", &e)),
    };
    let svg = coursedrop::adapters::vietqr::svg(&payload).map_err(|e| ApiError::internal("rendering a QR", &e))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "private, max-age=3600")], svg)
        .into_response())
}
