//! Signing in and out. The link in the email opens a page with one button: the sign-in
//! happens on its POST, so a mail scanner that opens links does not use it up.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::{ConsoleError, auth};
use coursedrop::runtime::http::client_ip;
use serde::Deserialize;

use crate::ConsoleState;
use crate::i18n::Lang;
use crate::render::{self, Failure};
use crate::session::{Change, SESSION_COOKIE, cookie, same_origin, set_cookie};

fn cross_site(lang: Lang) -> Response {
    Failure::new(lang, StatusCode::FORBIDDEN, "cross_site", "this request did not come from the console's pages")
        .into_response()
}

pub async fn form(headers: HeaderMap) -> Response {
    render::page("sign_in.html", Lang::of(&headers), StatusCode::OK, minijinja::context! { step => "ask" })
}

#[derive(Deserialize)]
pub struct AskForm {
    #[serde(default)]
    email: String,
}

pub async fn ask<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    form: Result<Form<AskForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = Lang::of(&headers);
    if !same_origin(&headers, &state.0.origin) {
        return cross_site(lang);
    }
    let email = form.map(|f| f.0.email).unwrap_or_default();
    let client = client_ip(&extensions).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
    let c = &state.0;
    match auth::request_link(&c.pool, &c.mailer, &c.settings, &email, &client, &c.public_url, lang.code()).await {
        Ok(()) => render::page("sign_in.html", lang, StatusCode::OK, minijinja::context! { step => "sent" }),
        Err(e) => {
            let retry_after = match &e {
                ConsoleError::TooManyLinks { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            };
            let mut r = Failure::from_error(lang, e).into_response();
            if let Some(secs) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
            }
            r
        }
    }
}

pub async fn confirm(headers: HeaderMap, Path(token): Path<String>) -> Response {
    let r = render::page(
        "sign_in.html",
        Lang::of(&headers),
        StatusCode::OK,
        minijinja::context! { step => "confirm", token },
    );
    crate::pages::no_store(r)
}

pub async fn redeem<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let lang = Lang::of(&headers);
    // A link pressed on another site's page would sign this browser in as the link's owner.
    if !same_origin(&headers, &state.0.origin) {
        return cross_site(lang);
    }
    let c = &state.0;
    match auth::redeem(&c.pool, &token, cookie(&headers, SESSION_COOKIE)).await {
        Ok(Some(session)) => {
            let mut r = Redirect::to("/").into_response();
            let max_age = c.settings.session_absolute.as_secs();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, session.id.expose(), Some(max_age), c.secure_cookies),
            );
            r
        }
        Ok(None) => render::page("sign_in.html", lang, StatusCode::BAD_REQUEST, minijinja::context! { step => "bad" }),
        Err(e) => Failure::from_error(lang, e).into_response(),
    }
}

pub async fn sign_out<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    headers: HeaderMap,
    Change { s: signed, .. }: Change<serde::de::IgnoredAny>,
) -> Response {
    if let Some(c) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = auth::sign_out(&state.0.pool, c).await
    {
        return Failure::from_error(signed.lang, e).into_response();
    }
    let mut r = Redirect::to("/sign-in").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0), state.0.secure_cookies));
    r
}

/// Switches the language (a cookie of its own, readable by nothing but the console).
/// `?back=` is the page to return to (a path of ours; the referrer is never sent).
pub async fn language(
    Path(lang): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let lang = if lang == "en" { "en" } else { "vi" };
    let back = crate::pages::local_path(q.get("back").map(String::as_str).unwrap_or("/"), "/");
    let mut r = Redirect::to(&back).into_response();
    let c = format!("cd_lang={lang}; Path=/; Max-Age=31536000; SameSite=Lax");
    if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
