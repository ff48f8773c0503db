//! Pages: the templates (minijinja, HTML auto-escaped), the words of [`crate::i18n`], the
//! security headers every answer carries, and the page a failure shows.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use coursedrop::app::console::ConsoleError;
use minijinja::{Environment, Value};

use crate::i18n::{self, Lang};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("dashboard.html", include_str!("../templates/dashboard.html")),
    ("orders.html", include_str!("../templates/orders.html")),
    ("order.html", include_str!("../templates/order.html")),
    ("refund.html", include_str!("../templates/refund.html")),
    ("problems.html", include_str!("../templates/problems.html")),
    ("catalog.html", include_str!("../templates/catalog.html")),
    ("coupons.html", include_str!("../templates/coupons.html")),
    ("revenue.html", include_str!("../templates/revenue.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("error.html", include_str!("../templates/error.html")),
];

fn time_filter(value: String) -> String {
    chrono::DateTime::parse_from_rfc3339(&value)
        .map(|t| coursedrop::domain::vietnam_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or(value)
}

fn vnd_filter(value: i64) -> String {
    coursedrop::domain::format_vnd(value)
}

fn duration_filter(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("the bundled templates parse");
    }
    env.add_filter("vntime", time_filter);
    env.add_filter("vnd", vnd_filter);
    env.add_filter("duration", duration_filter);
    env.add_filter("urlencode", |s: String| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    });
    env.add_function("t", |state: &minijinja::State, key: String| {
        let lang = state.lookup("lang").and_then(|l| l.as_str().map(str::to_string)).unwrap_or_default();
        i18n::word(if lang == "en" { Lang::En } else { Lang::Vi }, &key)
    });
    env
});

/// Renders `template` with `context` (plus `lang`) into an HTML answer.
pub fn page(template: &str, lang: Lang, status: StatusCode, context: Value) -> Response {
    let context = minijinja::context! { lang => lang.code(), other_lang => lang.other().code(), ..context };
    match ENV.get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "rendering a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn; the error is in the log").into_response()
        }
    }
}

/// A refused or failed request, as a page with a stable code and a readable message.
#[derive(Debug)]
pub struct Failure {
    pub lang: Lang,
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(lang: Lang, status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Failure { lang, status, code, message: message.into() }
    }

    pub fn from_error(lang: Lang, e: ConsoleError) -> Self {
        let status = match &e {
            ConsoleError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Refused(_) => StatusCode::CONFLICT,
            ConsoleError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ConsoleError::TooManyLinks { .. } => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Drive(_) | ConsoleError::Mail(_) | ConsoleError::Source(_) => StatusCode::BAD_GATEWAY,
            ConsoleError::Config(_) | ConsoleError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "console request failed");
            "something went wrong on our side; it is in the log, try again in a moment".to_string()
        } else {
            e.to_string()
        };
        Failure { lang, status, code: e.code(), message }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut r = page(
            "error.html",
            self.lang,
            self.status,
            minijinja::context! { code => self.code, message => self.message },
        );
        if let Ok(v) = HeaderValue::from_str(self.code) {
            r.headers_mut().insert("x-error-code", v);
        }
        r
    }
}

/// The message shown once on the next page, as a cookie can carry it.
pub fn flash(message: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message.as_bytes())
}

pub fn unflash(value: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The headers every console answer carries: its own scripts and styles only, never framed,
/// never cached, and the referrer only to the console itself (an order page's address names
/// the order). Not `no-referrer`: under it browsers send `Origin: null` with the console's own
/// forms, and the origin check refuses them.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
