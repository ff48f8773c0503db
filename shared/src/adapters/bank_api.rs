//! What the bank feeds' transaction APIs have in common: a token in a header, a pace the
//! provider allows, 429s that say how long to wait, and errors that never carry a URL (a
//! query string can hold an account number, and the header never leaves this module).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::Mutex;

pub use crate::domain::bank_feed::FeedError;
use crate::domain::payment_route::RouteError;

/// How a feed's API is called.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// At least this long between the starts of two requests (SePay: about 2/s).
    pub min_interval: Duration,
    /// 429s waited out before a listing gives up (the pass fails; the cursor stays).
    pub max_429s: u32,
    /// The longest wait a 429 may ask for; longer asks fail the pass now, to retry at the next.
    pub max_wait: Duration,
    /// Connection errors and 5xx retried (with 1 s, 2 s, … between) before the pass fails.
    pub transient_retries: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            min_interval: Duration::from_millis(500),
            max_429s: 10,
            max_wait: Duration::from_secs(60),
            transient_retries: 2,
        }
    }
}

/// A client for one feed's API.
pub struct ApiClient {
    pub feed: &'static str,
    http: reqwest::Client,
    /// Sent with every request: the credentials (`authorization`, or payOS's client id and
    /// key). Never logged.
    headers: Vec<(&'static str, String)>,
    /// The header a 429 names its wait in, besides `Retry-After`.
    retry_after_header: &'static str,
    pacing: Pacing,
    last_request: Mutex<Option<Instant>>,
}

impl ApiClient {
    pub fn new(feed: &'static str, authorization: String, retry_after_header: &'static str, pacing: Pacing) -> Self {
        Self::with_headers(feed, vec![("authorization", authorization)], retry_after_header, pacing)
    }

    /// A client whose credentials are these headers.
    pub fn with_headers(
        feed: &'static str,
        headers: Vec<(&'static str, String)>,
        retry_after_header: &'static str,
        pacing: Pacing,
    ) -> Self {
        let http = crate::support::http_client::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client with rustls and timeouts is always buildable");
        ApiClient { feed, http, headers, retry_after_header, pacing, last_request: Mutex::new(None) }
    }

    async fn pace(&self) {
        let mut last = self.last_request.lock().await;
        if let Some(at) = *last {
            let due = at + self.pacing.min_interval;
            tokio::time::sleep_until(due.into()).await;
        }
        *last = Some(Instant::now());
    }

    fn retry_after(&self, headers: &reqwest::header::HeaderMap) -> Duration {
        let secs = [self.retry_after_header, "retry-after"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(1.0);
        Duration::from_secs_f64(secs)
    }

    /// GET `url` with `query`, paced, 429s waited out, transient failures retried; the body
    /// parsed as JSON.
    pub async fn get_json(&self, url: &str, query: &[(&str, String)]) -> Result<serde_json::Value, FeedError> {
        self.send_json(reqwest::Method::GET, url, query, None).await
    }

    /// [`ApiClient::get_json`] for any method, with an optional JSON body. A POST is retried
    /// as a GET is: the calls this client makes are idempotent at the provider (payOS refuses a
    /// second link for one `orderCode`; the caller reads the first).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, FeedError> {
        use backon::Retryable;
        let feed = self.feed;
        let limited = std::sync::atomic::AtomicU32::new(0);
        // Transient failures (no answer, a 5xx) wait 1 s, then 2 s, …: backon's policy.
        let transient = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_times(self.pacing.transient_retries as usize);
        (|| self.send_once(&method, url, query, body, &limited))
            .retry(transient)
            .sleep(tokio::time::sleep)
            .when(|f| matches!(f, Fault::Transient(_)))
            .notify(|f, wait| {
                if let Fault::Transient(why) = f {
                    tracing::warn!(feed, error = %why, wait_ms = wait.as_millis() as u64, "transaction API failed; retrying");
                }
            })
            .await
            .map_err(|(Fault::Transient(e) | Fault::Final(e))| e)
    }

    /// One request, with the 429s it meets waited out as the provider asks (`Retry-After`):
    /// that wait is the provider's to set, not a backoff of ours, and has its own limits.
    async fn send_once(
        &self,
        method: &reqwest::Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        limited: &std::sync::atomic::AtomicU32,
    ) -> Result<serde_json::Value, Fault> {
        let feed = self.feed;
        loop {
            self.pace().await;
            let mut request = self.http.request(method.clone(), url).query(query).header("accept", "application/json");
            for (name, value) in &self.headers {
                request = request.header(*name, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request.send().await;
            let response = sent
                .map_err(|e| Fault::Transient(FeedError::Unreachable { feed, reason: e.without_url().to_string() }))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let times = limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let wait = self.retry_after(response.headers());
                if times > self.pacing.max_429s || wait > self.pacing.max_wait {
                    return Err(Fault::Final(FeedError::RateLimited { feed, attempts: times }));
                }
                tracing::info!(feed, wait_ms = wait.as_millis() as u64, "rate limited; waiting as asked");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(Fault::Final(FeedError::Unauthorized { feed, status: status.as_u16() }));
            }
            let body = response
                .text()
                .await
                .map_err(|e| Fault::Final(FeedError::Unreachable { feed, reason: e.without_url().to_string() }))?;
            if !status.is_success() {
                let failed = FeedError::Status { feed, status: status.as_u16(), body: excerpt(&body) };
                return Err(if status.is_server_error() { Fault::Transient(failed) } else { Fault::Final(failed) });
            }
            // A 204 (SePay's DELETE) has no body.
            if body.trim().is_empty() {
                return Ok(serde_json::Value::Null);
            }
            return serde_json::from_str(&body)
                .map_err(|e| Fault::Final(FeedError::Invalid { feed, reason: format!("{e} in {}", excerpt(&body)) }));
        }
    }
}

/// Why one request failed: worth another try (no answer, a 5xx), or not.
enum Fault {
    Transient(FeedError),
    Final(FeedError),
}

/// A field of a feed's JSON record as text: a non-blank string, or a number written out (feeds
/// send ids and account numbers either way); `None` for null, blank or absent.
pub(super) fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The start of a body, for an error message.
pub(super) fn excerpt(body: &str) -> String {
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// A payment-route provider's failed call as a [`RouteError`]: no answer or a 5xx is
/// "unreachable" (worth trying later), a 429 past what we wait is "rate limited", another 4xx
/// is the provider's refusal, in its words (`words` reads them from its error body).
pub(super) fn route_error(provider: &'static str, e: FeedError, words: fn(u16, &str) -> String) -> RouteError {
    match e {
        FeedError::RateLimited { .. } => RouteError::RateLimited { provider },
        FeedError::Unreachable { reason, .. } => RouteError::Unreachable { provider, reason },
        FeedError::Status { status, body, .. } if status >= 500 => {
            RouteError::Unreachable { provider, reason: format!("answered {status}: {body}") }
        }
        FeedError::Status { status, body, .. } => RouteError::Refused { provider, reason: words(status, &body) },
        FeedError::Unauthorized { status, .. } => {
            RouteError::Refused { provider, reason: format!("our credentials were refused ({status})") }
        }
        other => RouteError::Invalid { provider, reason: other.to_string() },
    }
}
