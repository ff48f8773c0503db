//! HTTP errors as every coursedrop endpoint returns them: JSON `{"code", "message"}` with a
//! stable code, never a debug dump.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
    /// Why the field was refused, as a stable word a client can show in its own language
    /// (a coupon's `expired`, `used_up`, …), where there are several reasons.
    pub reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, reason: None }
    }

    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        ApiError { field: Some(field), ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
    }

    /// [`ApiError::invalid_field`] with the reason's stable word.
    pub fn invalid_field_because(field: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { reason: Some(reason), ..ApiError::invalid_field(field, message) }
    }

    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        // The detail goes to the log; the client gets a stable code and no internals.
        tracing::error!(error = %error, "{context}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on our side; please retry")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Maps a failure to read the body: too large → 413, anything else → 400.
    pub fn from_body(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { code: self.code, message: &self.message, field: self.field, reason: self.reason };
        (self.status, Json(body)).into_response()
    }
}

/// What every HTTP function's router gets: `GET /health`; JSON answers for unknown paths
/// (404) and wrong methods (405); a request id on every request (`x-request-id`: the Lambda
/// request's id, or a fresh one locally; echoed in the answer); and one access-log line per
/// request with its method, route, status and latency. The line names the route's pattern
/// (`/orders/{code}`), never the path as sent: paths and queries can carry order codes and
/// tokens a log reader has no need of.
pub fn with_common_layers(router: axum::Router) -> axum::Router {
    use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), route = route.as_deref().unwrap_or("unmatched"), request_id = %id)
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(tower_http::LatencyUnit::Millis));
    router
        .route("/health", axum::routing::get(health))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds))
}

/// `GET /health`: the function is up and serving. It asks nothing of the database or the
/// queues: a load balancer's or an operator's probe must not add to their load.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The request's id: on Lambda, the id Lambda gave the invocation (what its own logs and
/// X-Ray name); elsewhere a random one. A client's own `x-request-id` is kept as sent.
#[derive(Clone, Copy)]
struct RequestIds;

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, request: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        use lambda_http::RequestExt;
        let id = request
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        axum::http::HeaderValue::from_str(&id).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// For routes that do not exist.
pub async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Whether a Content-Type header names JSON (`application/json`, with or without parameters).
pub fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON body, or the JSON error saying what is wrong with it: unreadable or too large (from
/// the body limit), not sent as JSON (415), or not a valid `what` (400, serde's reason).
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    if !is_json(headers.get(axum::http::header::CONTENT_TYPE)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the {what} as JSON with Content-Type: application/json"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not a valid {what}: {e}"))
    })
}

/// For a known route called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

/// Runs an HTTP function: under Lambda (`AWS_LAMBDA_RUNTIME_API` set) through lambda_http,
/// elsewhere as a plain server on 127.0.0.1:`PORT` (default `default_port`).
pub async fn serve(router: axum::Router, default_port: u16) -> Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(router).await;
    }
    // A PORT that is not a port stops the start naming it, rather than serving elsewhere.
    let port = crate::app::config::Vars::process().parse_or("PORT", default_port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    // The peer's address, for `client_ip` (on Lambda it comes from API Gateway instead).
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// A client address put on a request by hand (tests), taking precedence over the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

/// The address of the client that made the request, when known: API Gateway's `sourceIp`
/// on Lambda, the TCP peer locally. Never a header such as `X-Forwarded-For`, which the
/// client writes itself.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    if let Some(ip) = extensions.get::<ClientIp>() {
        return Some(ip.0);
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        extensions.get::<lambda_http::request::RequestContext>()
    {
        return ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    }
    extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = interrupt => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
