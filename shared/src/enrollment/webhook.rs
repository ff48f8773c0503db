//! The seller's own LMS, reached by a signed webhook.
//!
//! `POST {ENROLL_WEBHOOK_URL}` with JSON `{order_code, email, phone, course_slug, item_id}`
//! and headers `X-Coursedrop-Timestamp: <unix seconds>` and
//! `X-Coursedrop-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! 2xx → enrolled; 409 → already enrolled (success); other 4xx → permanent; 5xx, timeout or
//! no connection → transient. Redirects are not followed: a 301/302 would turn the POST into a
//! body-less GET and a landing page's 2xx would count as enrolled, so a 3xx is a permanent
//! failure naming where it pointed (the URL to configure instead).

use std::time::Duration;

use serde::Serialize;

use super::{EnrollError, EnrollProvider, Enrollee};
use crate::adapters::signing;

#[derive(Clone)]
pub struct WebhookProvider {
    url: String,
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
    order_code: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    course_slug: &'a str,
    item_id: u64,
}

impl WebhookProvider {
    pub fn new(url: String, secret: String, timeout: Duration) -> Self {
        let client = crate::http::client_builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        WebhookProvider { url, secret, client }
    }
}

impl EnrollProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn enroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        let body = serde_json::to_vec(&Body {
            order_code: &who.order_code,
            email: &who.email,
            phone: who.phone.as_deref(),
            course_slug: &who.course_slug,
            item_id: who.item_id,
        })
        .expect("the body serializes");
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = format!("sha256={}", signing::sign(&self.secret, &timestamp, &body));
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-coursedrop-timestamp", &timestamp)
            .header("x-coursedrop-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| EnrollError::Transient(format!("LMS webhook unreachable: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        if status.is_redirection() {
            let to = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
            return Err(EnrollError::Permanent(format!(
                "LMS webhook answered {status} (a redirect to {to}); redirects are not followed: set ENROLL_WEBHOOK_URL to the address that takes the POST"
            )));
        }
        let text: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        let message = format!("LMS webhook answered {status}: {text}");
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(EnrollError::Permanent(message))
        } else {
            Err(EnrollError::Transient(message))
        }
    }
}
