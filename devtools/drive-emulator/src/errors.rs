//! Drive's error answers.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

/// Google's error body: `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`.
pub(crate) fn google_error(status: StatusCode, domain: &str, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"domain": domain, "reason": reason, "message": message}],
    }});
    (status, [(header::CONTENT_TYPE, "application/json; charset=UTF-8")], body.to_string()).into_response()
}

pub(crate) fn not_found(id: &str) -> Response<Body> {
    google_error(StatusCode::NOT_FOUND, "global", "notFound", &format!("File not found: {id}."))
}

pub(crate) fn bad_request(reason: &str, message: &str) -> Response<Body> {
    google_error(StatusCode::BAD_REQUEST, "global", reason, message)
}

pub(crate) fn insufficient(id: &str) -> Response<Body> {
    google_error(
        StatusCode::FORBIDDEN,
        "global",
        "insufficientFilePermissions",
        &format!("The user does not have sufficient permissions for file {id}."),
    )
}
