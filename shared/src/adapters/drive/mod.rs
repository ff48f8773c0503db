//! Google Drive. Metadata (folders, listing, permissions) goes through google-drive3's hub
//! (`meta`); uploads go through our own implementation of the resumable protocol (`upload`):
//! google-drive3's uploader needs a blocking seekable source and mishandles retried chunks
//! (google-apis-rs #438). Both draw tokens from one `AccessToken` source (`auth`) and share
//! one retry loop and failure classifier.

pub mod auth;
pub mod meta;
pub mod upload;

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Where Drive is and how hard to try. `api_root` is `https://www.googleapis.com/` in
/// production and the emulator's address locally (`DRIVE_API_ROOT`).
#[derive(Debug, Clone)]
pub struct DriveConfig {
    pub api_root: String,
    /// Bytes per chunk: a multiple of 256 KiB (`DRIVE_CHUNK_SIZE`, default 16 MiB).
    pub chunk_size: usize,
    /// Tries of one call before giving up on a retryable error.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A connection that stops answering (a stalled PUT) fails after this and is retried from
    /// what Drive holds, instead of hanging the item. Generous: it must outlast one chunk's
    /// send on a slow link.
    pub read_timeout: Duration,
}

pub const CHUNK_GRANULE: usize = 256 * 1024;

impl DriveConfig {
    pub fn new(api_root: impl Into<String>) -> Self {
        DriveConfig {
            api_root: api_root.into().trim_end_matches('/').to_string(),
            chunk_size: 16 * 1024 * 1024,
            max_attempts: 8,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(32),
            read_timeout: Duration::from_secs(300),
        }
    }

    /// The waits between attempts (backon's exponential backoff): from `backoff_base`
    /// doubling, each with up to as much again of random jitter, never over `backoff_max`, at
    /// most `max_attempts - 1` of them.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.backoff_base.min(self.backoff_max / 2))
            // Jitter adds up to the delay itself: half the cap keeps every wait under it.
            .with_max_delay(self.backoff_max / 2)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DriveError {
    /// Retryable errors (429, 5xx, 403 rate limits, network) that outlasted every attempt.
    #[error("Drive kept failing after {attempts} attempts; last: {last}")]
    Exhausted { attempts: u32, last: String },
    /// 403 `userRateLimitExceeded` that backoff does not cure: the daily upload cap. Pause
    /// uploads (until tomorrow) instead of spending attempts.
    #[error("Drive's daily upload limit is reached: {0}")]
    DailyLimit(String),
    /// The resumable session is gone (404/410, or other 4xx on a chunk): start a new one.
    #[error("the upload session is gone: {0}")]
    SessionGone(String),
    /// Refused for good: 400, 401, 403 other than rate limits, 404 on metadata.
    #[error("Drive refused the request ({status} {reason}): {message}")]
    Refused { status: u16, reason: String, message: String },
    #[error("the file's source failed: {0}")]
    Source(String),
    #[error("Drive's MD5 {remote} differs from the {local} computed while streaming")]
    Checksum { local: String, remote: String },
    #[error("cannot get an access token: {0}")]
    Auth(String),
}

/// Supplies bearer tokens.
pub trait AccessToken: Send + Sync + 'static {
    fn token(&self) -> impl Future<Output = Result<String, DriveError>> + Send;
}

/// A fixed token (the emulator's, or one minted elsewhere).
#[derive(Clone)]
pub struct StaticToken(pub String);

impl AccessToken for StaticToken {
    async fn token(&self) -> Result<String, DriveError> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// A failed answer from Drive, read into what the retry logic needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub reason: String,
    pub message: String,
}

impl Failure {
    pub fn parse(status: u16, body: &str) -> Self {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(b) => Failure {
                status,
                reason: b.error.errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
                message: b.error.message,
            },
            Err(_) => Failure { status, reason: String::new(), message: body.chars().take(200).collect() },
        }
    }

    /// Drive's JSON error as google-drive3 hands it over (the status is in `error.code`).
    pub fn from_value(value: &serde_json::Value) -> Self {
        match serde_json::from_value::<ErrorBody>(value.clone()) {
            Ok(b) => Failure {
                status: b.error.code.unwrap_or(0),
                reason: b.error.errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
                message: b.error.message,
            },
            Err(_) => {
                Failure { status: 0, reason: String::new(), message: value.to_string().chars().take(200).collect() }
            }
        }
    }

    /// 429, 500, 502, 503, 504 and 403 with a rate-limit reason are worth another try (Google's
    /// list); 403 `storageQuotaExceeded` and the rest are not. 501 Not Implemented is not: the
    /// server does not implement the request, and sending it again cannot change that.
    pub fn retryable(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
            || (self.status == 403 && matches!(self.reason.as_str(), "rateLimitExceeded" | "userRateLimitExceeded"))
    }

    pub fn is_user_rate_limit(&self) -> bool {
        self.status == 403 && self.reason == "userRateLimitExceeded"
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.reason, self.message)
    }
}
