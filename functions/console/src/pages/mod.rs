//! The handlers, one module per part of the console. Each parses, calls the use case and
//! renders; a change answers with a redirect to the page to look at next, carrying its
//! result as a one-time message.

pub mod catalog;
pub mod dashboard;
pub mod orders;
pub mod problems;
pub mod revenue;
pub mod sign_in;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use coursedrop::app::console::ConsoleError;
use minijinja::Value;

use crate::render::{self, Failure};
use crate::session::{FLASH_COOKIE, Signed, set_cookie};

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// A page for a signed-in person: the layout's menu, their name and role, the form token,
/// and the message of what they just did (then cleared).
pub fn signed_page(s: &Signed, secure: bool, template: &str, nav: &str, context: Value) -> Response {
    let context = minijinja::context! {
        me => minijinja::context! { email => &s.staff.email, role => s.staff.role.as_str() },
        owner => s.staff.role == coursedrop::domain::staff::StaffRole::Owner,
        csrf => &s.session.csrf,
        flash => &s.flash,
        nav => nav,
        here => &s.here,
        ..context
    };
    let mut response = render::page(template, s.lang, StatusCode::OK, context);
    if s.flash.is_some() {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", Some(0), secure));
    }
    response
}

/// After a change: back to `to`, with `message` shown there once.
pub fn done(secure: bool, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, &render::flash(message), Some(60), secure));
    response
}

/// A use case's failure, as its page.
pub fn failed(s: &Signed, e: ConsoleError) -> Response {
    Failure::from_error(s.lang, e).into_response()
}

/// A form that did not parse.
pub fn bad_form(s: &Signed, e: impl std::fmt::Display) -> Response {
    Failure::new(s.lang, StatusCode::BAD_REQUEST, "invalid_input", format!("the form is not complete: {e}"))
        .into_response()
}

/// Where a redirect may go after a change: a path of ours, never another site. Only `/`, or
/// `/` then a letter, digit or `?`, and nothing but URL characters after: a browser drops a
/// tab or a newline when it reads `Location`, so `/\t/evil.example` would be `//evil.example`.
pub fn local_path(p: &str, fallback: &str) -> String {
    let b = p.as_bytes();
    let starts_ours = b.first() == Some(&b'/') && b.get(1).is_none_or(|c| c.is_ascii_alphanumeric() || *c == b'?');
    let plain = p.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-._~?=&%+:".contains(&c));
    if starts_ours && plain { p.to_string() } else { fallback.to_string() }
}

pub fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_our_own_paths_are_returned_to() {
        for ours in ["/", "/orders", "/orders?q=CD123&status=paid", "/orders/CD12345678", "/?x=1"] {
            assert_eq!(local_path(ours, "/"), ours);
        }
        for theirs in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "evil.example",
            "/%2F/evil",
            "",
            "/ /x",
        ] {
            assert_eq!(local_path(theirs, "/fallback"), "/fallback", "{theirs:?}");
        }
    }
}
