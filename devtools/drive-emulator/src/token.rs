//! Bearer tokens: the check of each call's `Authorization`, and `POST /token` for the
//! refresh-token and service-account JWT flows.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::{Value, json};

use crate::Emulator;
use crate::errors::google_error;
use crate::model::random_id;

impl Emulator {
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) if self.0.meta.lock().unwrap().tokens.contains(t) => Ok(()),
            _ => Err(google_error(
                StatusCode::UNAUTHORIZED,
                "global",
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )),
        }
    }
}

pub(crate) async fn token(State(emu): State<Emulator>, Form(form): Form<HashMap<String, String>>) -> Response<Body> {
    let err = |e: &str, d: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e, "error_description": d}))).into_response()
    };
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let ok = form.get("refresh_token").is_some_and(|t| emu.0.config.refresh_tokens.contains(t));
            if !ok {
                return err("invalid_grant", "Token has been expired or revoked.");
            }
            if form.get("client_id").is_none_or(String::is_empty) {
                return err("invalid_request", "Could not determine client ID from request.");
            }
            json!({"grant_type": "refresh_token", "client_id": form["client_id"]})
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            // The signature is not checked (there is no key to check it against); the claims are.
            let claims = form
                .get("assertion")
                .and_then(|a| a.split('.').nth(1))
                .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let Some(claims) = claims else {
                return err("invalid_grant", "Invalid JWT: cannot decode the assertion.");
            };
            let now = chrono::Utc::now().timestamp();
            if claims["iss"].as_str().is_none() || claims["scope"].as_str().is_none() {
                return err("invalid_grant", "Invalid JWT: iss and scope are required.");
            }
            if claims["exp"].as_i64().is_none_or(|exp| exp < now) {
                return err(
                    "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
                );
            }
            json!({"grant_type": "jwt-bearer", "claims": claims})
        }
        _ => return err("unsupported_grant_type", "Invalid grant_type."),
    };
    let access = format!("ya29.emu-{}", random_id(40));
    let mut meta = emu.0.meta.lock().unwrap();
    meta.tokens.insert(access.clone());
    meta.grants.push(grant);
    drop(meta);
    axum::Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}
