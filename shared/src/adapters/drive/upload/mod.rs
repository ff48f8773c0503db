//! Uploads to Drive: the client (`DriveClient`: HTTP, the hub, tokens, retries) here, the
//! resumable protocol in `protocol`, the unconfirmed bytes in `buffer`.
//!
//! The resumable upload protocol, streamed.
//!
//! `start` opens a session (its URI is what a restarted job needs to resume). `upload` reads
//! the source as a stream, sends chunks of `chunk_size` (a multiple of 256 KiB; the last may
//! be shorter), each body streaming out as the source is read, so reading and sending overlap.
//! It keeps only the bytes Drive has not yet confirmed, in 1 MiB segments: memory stays at
//! about one chunk whatever the file's size, and the source is never read twice. Every `308`
//! is read for what Drive really holds (never assume a whole chunk arrived). After a failed
//! chunk it backs off, asks Drive what it holds (`bytes */total`) and continues from there,
//! sending the unconfirmed bytes again.

use std::future::Future;
use std::sync::Arc;

use super::auth::{HttpsConnector, HubToken, https_connector};
use super::{AccessToken, DriveConfig, DriveError, Failure};

mod buffer;
mod protocol;

pub use protocol::{Held, UploadedFile};

/// A request that got no answer (connection refused or reset, timeout): worth another try.
/// The URL is left out of the message: a resumable session's URI is usable without a token.
pub(super) fn network(e: reqwest::Error) -> Attempt {
    Attempt::Retry { what: format!("network: {}", e.without_url()), user_rate_limit: false }
}

/// Drive's error answer, read as worth another try or final.
pub(super) fn classify(failure: Failure) -> Attempt {
    if failure.retryable() {
        Attempt::Retry { user_rate_limit: failure.is_user_rate_limit(), what: failure.to_string() }
    } else {
        Attempt::Fatal(DriveError::Refused { status: failure.status, reason: failure.reason, message: failure.message })
    }
}

/// Reads a non-success answer's body and classifies it.
pub(super) async fn failure(response: reqwest::Response) -> Attempt {
    let status = response.status().as_u16();
    classify(Failure::parse(status, &response.text().await.unwrap_or_default()))
}

/// The error once retryable failures have outlasted every attempt: a `userRateLimitExceeded`
/// that outlasts them is the daily cap.
pub(super) fn gave_up(attempts: u32, last: String, user_rate_limit: bool) -> DriveError {
    if user_rate_limit { DriveError::DailyLimit(last) } else { DriveError::Exhausted { attempts, last } }
}

/// One try's failure: worth another try, or final.
pub(super) enum Attempt {
    Retry { what: String, user_rate_limit: bool },
    Fatal(DriveError),
}

pub struct DriveClient<T> {
    pub(super) http: reqwest::Client,
    pub(super) hub: google_drive3::DriveHub<HttpsConnector>,
    pub(super) config: DriveConfig,
    token: Arc<T>,
}

impl<T: AccessToken> DriveClient<T> {
    pub fn new(config: DriveConfig, token: T) -> Self {
        assert!(
            config.chunk_size > 0 && config.chunk_size.is_multiple_of(super::CHUNK_GRANULE),
            "chunk size must be a multiple of 256 KiB"
        );
        let http = crate::support::http_client::client_builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(config.read_timeout)
            .build()
            .expect("an HTTP client with rustls builds");
        let token = Arc::new(token);
        let hyper_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https_connector());
        let mut hub = google_drive3::DriveHub::new(hyper_client, HubToken(token.clone()));
        hub.base_url(format!("{}/drive/v3/", config.api_root));
        hub.root_url(format!("{}/", config.api_root));
        DriveClient { http, hub, config, token }
    }

    pub fn config(&self) -> &DriveConfig {
        &self.config
    }

    /// Runs `op` until it succeeds, fails for good, or retryable failures outlast the attempts.
    /// A `userRateLimitExceeded` that outlasts them is the daily cap.
    pub(super) async fn with_retries<R, F, Fut>(&self, op: F) -> Result<R, DriveError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, Attempt>>,
    {
        use backon::Retryable;
        let outcome = op
            .retry(self.config.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Retry { .. }))
            .notify(|e, wait| {
                if let Attempt::Retry { what, .. } = e {
                    tracing::debug!(%what, wait_ms = wait.as_millis() as u64, "Drive call failed; backing off");
                }
            })
            .await;
        match outcome {
            Ok(r) => Ok(r),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Retry { what, user_rate_limit }) => {
                Err(gave_up(self.config.max_attempts, what, user_rate_limit))
            }
        }
    }

    /// Sends `request` with the bearer token; a failure to get an answer is worth a retry.
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Attempt> {
        let token = self.token.token().await.map_err(Attempt::Fatal)?;
        request.bearer_auth(token).send().await.map_err(network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures_as_drive_documents() {
        let f = |status, reason: &str| Failure { status, reason: reason.into(), message: String::new() };
        assert!(f(429, "rateLimitExceeded").retryable());
        assert!(f(503, "backendError").retryable());
        assert!(f(403, "rateLimitExceeded").retryable());
        assert!(f(403, "userRateLimitExceeded").retryable() && f(403, "userRateLimitExceeded").is_user_rate_limit());
        assert!(!f(403, "storageQuotaExceeded").retryable(), "never retry a full drive");
        assert!(!f(400, "invalid").retryable());
        let parsed = Failure::parse(
            403,
            r#"{"error":{"code":403,"message":"User rate limit exceeded.","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#,
        );
        assert_eq!(parsed.reason, "userRateLimitExceeded");
        assert_eq!(parsed.message, "User rate limit exceeded.");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        use backon::BackoffBuilder;
        let c = DriveConfig::new("http://x");
        let waits: Vec<_> = c.backoff().build().collect();
        assert_eq!(waits.len() as u32, c.max_attempts - 1, "one wait between each two attempts");
        assert!(waits.iter().all(|w| *w <= c.backoff_max && *w >= c.backoff_base), "{waits:?}");
        assert!(waits.last() > waits.first(), "{waits:?}");
    }
}
