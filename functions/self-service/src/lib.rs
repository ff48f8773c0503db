//! The buyer's self-service API: `POST /orders/{code}/resend {email}` sends the delivery email
//! of each completed item again; `POST /orders/{code}/access {email, new_email[, course]}`
//! moves the Drive access to another Google address. Handlers parse, call
//! `coursedrop::app::self_service` and map.
//!
//! A function of its own, apart from the order API: it holds the Drive and SMTP credentials,
//! which placing an order never needs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::config::{self, ConfigError, Vars};
use coursedrop::app::self_service::{self, Asker, MoveRequest, SelfServiceError, SelfServiceSettings};
use coursedrop::domain::{CodePattern, OrderCode};
use coursedrop::runtime::http::{self, ApiError};
use serde::Deserialize;
use sqlx::MySqlPool;

pub const MAX_BODY_BYTES: usize = 4 * 1024;

pub struct SelfService<T> {
    pub pool: MySqlPool,
    pub drive: DriveClient<T>,
    pub mailer: Mailer,
    pub settings: SelfServiceSettings,
    pub pattern: CodePattern,
}

pub struct SelfServiceState<T>(pub Arc<SelfService<T>>);

impl<T> Clone for SelfServiceState<T> {
    fn clone(&self) -> Self {
        SelfServiceState(self.0.clone())
    }
}

impl<T: AccessToken> SelfServiceState<T> {
    pub fn new(pool: MySqlPool, drive: DriveClient<T>, mailer: Mailer, vars: &Vars) -> Result<Self, ConfigError> {
        Ok(SelfServiceState(Arc::new(SelfService {
            pool,
            drive,
            mailer,
            settings: SelfServiceSettings::from_vars(vars)?,
            pattern: config::code_pattern(vars)?,
        })))
    }
}

/// The function's routes, mergeable with others (as `make dev` does).
pub fn routes<T: AccessToken>(state: SelfServiceState<T>) -> Router {
    Router::new()
        .route("/orders/{code}/resend", post(resend::<T>))
        .route("/orders/{code}/access", post(move_access::<T>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The function as deployed: its routes, with JSON answers for unknown paths and methods.
pub fn router<T: AccessToken>(state: SelfServiceState<T>) -> Router {
    http::with_common_layers(routes(state))
}

#[derive(Deserialize)]
struct ResendBody {
    email: Option<String>,
}

#[derive(Deserialize)]
struct AccessBody {
    email: Option<String>,
    new_email: Option<String>,
    course: Option<String>,
}

fn required<'a>(field: &'static str, value: &'a Option<String>) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| ApiError::invalid_field(field, format!("{field} is required")))
}

/// A code that does not parse names no order: answered as a wrong email is, so the two can't
/// be told apart.
fn code_of<T>(s: &SelfService<T>, raw: &str) -> Option<OrderCode> {
    OrderCode::parse(raw, &s.pattern).ok()
}

fn retry_after(error: ApiError, secs: i64) -> Response {
    let mut response = error.into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn refused(e: SelfServiceError) -> Response {
    let error = match e {
        SelfServiceError::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this order code and email do not go together; check both (use the email the order was placed with)",
        ),
        SelfServiceError::Locked { retry_after_secs } => {
            let message = format!("too many wrong tries; try again in {} minutes", (retry_after_secs + 59) / 60);
            return retry_after(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message),
                retry_after_secs,
            );
        }
        SelfServiceError::TooSoon { retry_after_secs } => {
            let message = format!(
                "the emails were sent again a moment ago (check the spam folder too); ask again in {retry_after_secs} s"
            );
            return retry_after(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "resent_recently", message),
                retry_after_secs,
            );
        }
        SelfServiceError::NotDeliveredYet => ApiError::new(
            StatusCode::CONFLICT,
            "not_delivered_yet",
            "no course of this order has been delivered yet; the email goes out by itself when it is",
        ),
        SelfServiceError::Invalid(field, message) => ApiError::invalid_field(field, message),
        SelfServiceError::LimitReached(message) => ApiError::new(StatusCode::CONFLICT, "access_change_limit", message),
        SelfServiceError::Busy => {
            let message = "the access is being moved by another request; try again in a moment";
            return retry_after(ApiError::new(StatusCode::CONFLICT, "try_again", message), 5);
        }
        e @ (SelfServiceError::Drive(_) | SelfServiceError::Mail(_)) => {
            tracing::warn!(error = %e, "self-service could not finish; the buyer may try again");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "try_again",
                "Google Drive or the mail server did not answer; nothing is lost, try again in a minute",
            )
        }
        SelfServiceError::Store(e) => ApiError::internal("self-service", &e),
    };
    error.into_response()
}

/// Why a request was not done: a malformed request, or the self-service's own refusal.
enum Refusal {
    Request(ApiError),
    Service(SelfServiceError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Request(e)
    }
}

impl From<SelfServiceError> for Refusal {
    fn from(e: SelfServiceError) -> Self {
        Refusal::Service(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Request(e) => e.into_response(),
            Refusal::Service(e) => refused(e),
        }
    }
}

async fn resend<T: AccessToken>(
    State(s): State<SelfServiceState<T>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let s = &s.0;
    let request: ResendBody = http::json_body(&headers, payload, "request")?;
    let email = required("email", &request.email)?;
    let code = code_of(s, &raw).ok_or(SelfServiceError::Forbidden)?;
    let asker = Asker { code: &code, email, client: http::client_ip(&extensions) };
    let resent = self_service::resend(&s.pool, &s.mailer, &s.settings, &asker).await?;
    Ok((StatusCode::ACCEPTED, Json(resent)).into_response())
}

async fn move_access<T: AccessToken>(
    State(s): State<SelfServiceState<T>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let s = &s.0;
    let request: AccessBody = http::json_body(&headers, payload, "request")?;
    let email = required("email", &request.email)?;
    let new_email = required("new_email", &request.new_email)?;
    let code = code_of(s, &raw).ok_or(SelfServiceError::Forbidden)?;
    let asker = Asker { code: &code, email, client: http::client_ip(&extensions) };
    let move_request = MoveRequest { new_email, course: request.course.as_deref() };
    let moved = self_service::move_access(&s.pool, &s.drive, &s.mailer, &s.settings, &asker, &move_request).await?;
    Ok((StatusCode::OK, Json(moved)).into_response())
}
