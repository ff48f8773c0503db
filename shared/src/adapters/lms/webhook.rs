//! The seller's own LMS, reached by a signed webhook.
//!
//! `POST {ENROLL_WEBHOOK_URL}` with JSON `{order_code, email, phone, course_slug, item_id}`
//! and headers `X-Coursedrop-Timestamp: <unix seconds>` and
//! `X-Coursedrop-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! 2xx → enrolled; 409 → already enrolled (success); other 4xx → permanent; 5xx, timeout or
//! no connection → transient. Redirects are not followed: a 301/302 would turn the POST into a
//! body-less GET and a landing page's 2xx would count as enrolled, so a 3xx is a permanent
//! failure naming where it pointed (the URL to configure instead).
//!
//! After a refund, `POST {ENROLL_WEBHOOK_REVOKE_URL}` with the same body plus
//! `"action": "revoke"`, signed the same way: 2xx, 404 or 410 → the buyer is out; other 4xx
//! → permanent; 5xx, timeout → transient. A separate address on purpose: an LMS endpoint
//! written before revocations existed would read a revoke sent to the enroll address as one
//! more enrollment. Without it, a refund's unenrollment is given up at once and the order
//! flagged, so an operator removes the buyer by hand.

use std::time::Duration;

use serde::Serialize;

use crate::adapters::signing;
use crate::domain::lms::{EnrollError, EnrollProvider, Enrollee};

#[derive(Clone)]
pub struct WebhookProvider {
    url: String,
    revoke_url: Option<String>,
    secret: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookProvider({}, secret ***)", self.url)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    order_code: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    course_slug: &'a str,
    item_id: u64,
}

impl WebhookProvider {
    pub fn new(url: String, secret: String, timeout: Duration) -> Self {
        let client = crate::support::http_client::client_builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        WebhookProvider { url, revoke_url: None, secret, client }
    }

    /// Where revocations go (`ENROLL_WEBHOOK_REVOKE_URL`).
    pub fn with_revoke_url(mut self, url: Option<String>) -> Self {
        self.revoke_url = url;
        self
    }

    /// Posts the signed body; answers the response, or a transient error when none came.
    async fn post(
        &self,
        url: &str,
        action: Option<&'static str>,
        who: &Enrollee,
    ) -> Result<reqwest::Response, EnrollError> {
        let body = serde_json::to_vec(&Body {
            action,
            order_code: &who.order_code,
            email: &who.email,
            phone: who.phone.as_deref(),
            course_slug: &who.course_slug,
            item_id: who.item_id,
        })
        .expect("the body serializes");
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = format!("sha256={}", signing::sign(&self.secret, &timestamp, &body));
        self.client
            .post(url)
            .header("content-type", "application/json")
            .header("x-coursedrop-timestamp", &timestamp)
            .header("x-coursedrop-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| EnrollError::Transient(format!("LMS webhook unreachable: {}", e.without_url())))
    }
}

/// A non-success answer: redirects and client errors are permanent (but 408 and 429).
async fn refused(response: reqwest::Response) -> EnrollError {
    let status = response.status();
    if status.is_redirection() {
        let to = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
        return EnrollError::Permanent(format!(
            "LMS webhook answered {status} (a redirect to {to}); redirects are not followed: set the address that takes the POST"
        ));
    }
    let text: String = response.text().await.unwrap_or_default().chars().take(300).collect();
    let message = format!("LMS webhook answered {status}: {text}");
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        EnrollError::Permanent(message)
    } else {
        EnrollError::Transient(message)
    }
}

impl EnrollProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn enroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        let response = self.post(&self.url, None, who).await?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        Err(refused(response).await)
    }

    async fn unenroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        let Some(url) = &self.revoke_url else {
            return Err(EnrollError::Permanent("ENROLL_WEBHOOK_REVOKE_URL is not set".into()));
        };
        let response = self.post(url, Some("revoke"), who).await?;
        let status = response.status();
        // 404/410: the LMS has no such enrollment (any more): what a revoke asks for.
        if status.is_success() || matches!(status.as_u16(), 404 | 410) {
            return Ok(());
        }
        Err(refused(response).await)
    }
}
