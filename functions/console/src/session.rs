//! The signed-in member of staff of a request, and the checks every change passes: a live
//! session, the session's form token, and a request that comes from the console's own pages.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::Staff;
use coursedrop::app::console::auth::{self, LiveSession};

use crate::ConsoleState;
use crate::i18n::Lang;
use crate::render::Failure;

pub const SESSION_COOKIE: &str = "cd_session";
pub const FLASH_COOKIE: &str = "cd_flash";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure unless the console is
/// served over plain http on this machine (a local run; browsers refuse Secure cookies there).
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<u64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("cd_invalid=; Max-Age=0"))
}

/// A signed-in request: who, in which language, with the form token its pages carry.
pub struct Signed {
    pub staff: Staff,
    pub session: LiveSession,
    pub lang: Lang,
    /// The message of the action that led here (from the flash cookie), shown once.
    pub flash: Option<String>,
    /// The page asked for, path and query: where switching the language comes back to.
    pub here: String,
}

impl Signed {
    /// Refuses a change whose form token is not the session's.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), Failure> {
        if auth::csrf_ok(&self.session, Some(submitted)) {
            Ok(())
        } else {
            Err(Failure::new(
                self.lang,
                StatusCode::FORBIDDEN,
                "csrf",
                "this form is out of date or did not come from the console; reload the page and try again",
            ))
        }
    }
}

/// Whether a state-changing request came from a page of this site: the browser says so in
/// `Sec-Fetch-Site` and `Origin` (a request without them, such as a test client's, is judged
/// by its form token alone).
pub fn same_origin(headers: &HeaderMap, console_origin: &str) -> bool {
    let site_ok =
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|o| o.trim_end_matches('/') == console_origin);
    site_ok && origin_ok
}

impl<T: AccessToken> FromRequestParts<ConsoleState<T>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState<T>) -> Result<Self, Self::Rejection> {
        let lang = Lang::of(&parts.headers);
        if parts.method != Method::GET && parts.method != Method::HEAD && !same_origin(&parts.headers, &state.0.origin)
        {
            return Err(Failure::new(
                lang,
                StatusCode::FORBIDDEN,
                "cross_site",
                "this request did not come from the console's pages",
            )
            .into_response());
        }
        let live = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(c) => auth::session(&state.0.pool, &state.0.settings, c)
                .await
                .map_err(|e| Failure::from_error(lang, e).into_response())?,
            None => None,
        };
        let Some(session) = live else {
            if parts.method == Method::GET {
                return Err(Redirect::to("/sign-in").into_response());
            }
            return Err(Failure::new(
                lang,
                StatusCode::UNAUTHORIZED,
                "signed_out",
                "your session has ended; sign in again",
            )
            .into_response());
        };
        let flash = cookie(&parts.headers, FLASH_COOKIE).map(crate::render::unflash);
        let here = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Signed { staff: session.staff.clone(), session, lang, flash, here })
    }
}

/// A change: a signed-in request whose form carries the session's token, and the form.
/// Whatever fails (no session, another site, no or a wrong token, a form that does not
/// parse) answers with its page before the handler runs.
pub struct Change<F> {
    pub s: Signed,
    pub form: F,
}

#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

impl<T: AccessToken, F: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<ConsoleState<T>> for Change<F> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &ConsoleState<T>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let s = Signed::from_request_parts(&mut parts, state).await?;
        let bad = |lang: Lang, why: String| {
            Failure::new(lang, StatusCode::BAD_REQUEST, "invalid_input", format!("the form is not complete: {why}"))
                .into_response()
        };
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.map_err(|e| bad(s.lang, e.to_string()))?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|e| bad(s.lang, e.to_string()))?;
        s.check_csrf(&token.csrf).map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| bad(s.lang, e.to_string()))?;
        Ok(Change { s, form })
    }
}
