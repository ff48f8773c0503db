//! The seller's console: server-rendered pages for the shop's staff, on a phone or a laptop,
//! in Vietnamese or English. Sign-in by a one-time link sent by email; then a session cookie
//! (`HttpOnly; Secure; SameSite=Strict`), a form token on every change, and a role that
//! decides what the person may do. Handlers parse, call `coursedrop::app::console` and
//! render; the rules live there.
//!
//! Routes: `/sign-in` (GET form, POST ask for a link), `/sign-in/{token}` (GET confirm, POST
//! sign in), `/sign-out`, `/` (dashboard), `/orders` (+ `.csv`), `/orders/{code}` and its
//! actions, `/problems`, `/payments/{id}/…`, `/items/{id}/resend|retry|send-again`, `/catalog`, `/coupons`,
//! `/revenue` (+ `/revenue/{year}.csv|.xlsx`), `/audit`, `/static/…`.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::adapters::queue::SqsPublisher;
use coursedrop::adapters::source::S3Source;
use coursedrop::app::config::{self, ConfigError, Vars};
use coursedrop::app::console::ConsoleSettings;
use coursedrop::domain::CodePattern;
use sqlx::MySqlPool;

pub mod export;
pub mod i18n;
mod pages;
pub mod plot;
pub mod render;
mod said;
pub mod session;

/// The console's parts, built once at cold start.
pub struct Console<T> {
    pub pool: MySqlPool,
    pub drive: DriveClient<T>,
    pub mailer: Mailer,
    pub publisher: SqsPublisher,
    pub s3: S3Source,
    pub settings: ConsoleSettings,
    pub pattern: CodePattern,
    /// Where staff open the console (`CONSOLE_URL`): the sign-in links point there.
    pub public_url: String,
    /// `scheme://host[:port]` of `public_url`: a change must come from there.
    pub origin: String,
    /// Whether cookies are `Secure`: always, except for a console served over plain http on
    /// this machine (`make dev`), where browsers would refuse them.
    pub secure_cookies: bool,
    /// The dead-letter queues the dashboard shows (`*_DLQ_URL`), by stage.
    pub dead_letters: Vec<(String, String)>,
}

pub struct ConsoleState<T>(pub Arc<Console<T>>);

impl<T> Clone for ConsoleState<T> {
    fn clone(&self) -> Self {
        ConsoleState(self.0.clone())
    }
}

/// `scheme://host[:port]` of an address.
pub fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or_default()),
        None => url.to_string(),
    }
}

impl<T: AccessToken> ConsoleState<T> {
    pub fn new(
        pool: MySqlPool,
        drive: DriveClient<T>,
        mailer: Mailer,
        publisher: SqsPublisher,
        s3: S3Source,
        vars: &Vars,
    ) -> Result<Self, ConfigError> {
        let public_url = vars.string_or("CONSOLE_URL", "http://127.0.0.1:3007").trim_end_matches('/').to_string();
        let origin = origin_of(&public_url);
        let local = origin.starts_with("http://127.0.0.1") || origin.starts_with("http://localhost");
        let dead_letters =
            [("enroll", "ENROLL_DLQ_URL"), ("deliver", "DELIVER_DLQ_URL"), ("finalize", "FINALIZE_DLQ_URL")]
                .into_iter()
                .filter_map(|(stage, var)| vars.get(var).map(|url| (stage.to_string(), url)))
                .collect();
        Ok(ConsoleState(Arc::new(Console {
            pool,
            drive,
            mailer,
            publisher,
            s3,
            settings: ConsoleSettings::from_vars(vars)?,
            pattern: config::code_pattern(vars)?,
            public_url,
            origin,
            secure_cookies: !local,
            dead_letters,
        })))
    }
}

/// The console's routes, mergeable with others (as `make dev` does).
pub fn routes<T: AccessToken>(state: ConsoleState<T>) -> Router {
    use pages::{catalog, dashboard, orders, problems, revenue, sign_in};
    Router::new()
        .route("/sign-in", get(sign_in::form).post(sign_in::ask::<T>))
        .route("/sign-in/{token}", get(sign_in::confirm).post(sign_in::redeem::<T>))
        .route("/sign-out", post(sign_in::sign_out::<T>))
        .route("/lang/{lang}", get(sign_in::language))
        .route("/static/console.css", get(pages::css))
        .route("/static/console.js", get(pages::js))
        .route("/", get(dashboard::show::<T>))
        .route("/orders", get(orders::list::<T>))
        .route("/orders.csv", get(orders::csv::<T>))
        .route("/orders/{code}", get(orders::show::<T>))
        .route("/orders/{code}/refund", get(orders::refund_form::<T>).post(orders::refund::<T>))
        .route("/orders/{code}/move", post(orders::move_access::<T>))
        .route("/items/{id}/{action}", post(orders::item_action::<T>))
        .route("/problems", get(problems::show::<T>))
        .route("/payments/{id}/attach", post(problems::attach::<T>))
        .route("/payments/{id}/release", post(problems::release::<T>))
        .route("/payments/{id}/drop", post(problems::drop_held::<T>))
        .route("/payments/{id}/handled", post(problems::handled::<T>))
        .route("/catalog", get(catalog::courses::<T>).post(catalog::add_course::<T>))
        .route("/catalog/{slug}", post(catalog::edit_course::<T>))
        .route("/catalog/{slug}/active", post(catalog::set_active::<T>))
        .route("/catalog/{slug}/source", post(catalog::change_source::<T>))
        .route("/coupons", get(catalog::coupons::<T>).post(catalog::add_coupon::<T>))
        .route("/coupons/{code}/disable", post(catalog::disable_coupon::<T>))
        .route("/revenue", get(revenue::show::<T>))
        .route("/revenue/{file}", get(revenue::download::<T>))
        .route("/audit", get(dashboard::audit::<T>))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(render::security_headers))
        .with_state(state)
}

/// The function as deployed: its routes with `/health`, request ids and the access log.
pub fn router<T: AccessToken>(state: ConsoleState<T>) -> Router {
    coursedrop::runtime::http::with_common_layers(routes(state))
}
