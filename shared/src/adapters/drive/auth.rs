//! Where Drive's bearer tokens come from, chosen by configuration:
//!
//! - a **service account** (`DRIVE_SERVICE_ACCOUNT_KEY`, the key file's JSON) writing into a
//!   shared drive, optionally impersonating a Workspace user (`DRIVE_SUBJECT`, domain-wide
//!   delegation), through yup-oauth2's JWT flow;
//! - an **OAuth refresh token** (`DRIVE_REFRESH_TOKEN`, `DRIVE_CLIENT_ID`,
//!   `DRIVE_CLIENT_SECRET`) of a personal account. yup-oauth2's authorized-user flow hard-codes
//!   Google's token address, so this is our own small refresh (RFC 6749 §6), which honours
//!   `DRIVE_TOKEN_URI` and can therefore be tested against the emulator;
//! - a fixed **access token** (`DRIVE_ACCESS_TOKEN`), for the local emulator only.
//!
//! Both real flows cache the token until a minute before it expires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{AccessToken, DriveError};

/// Full Drive access: the job creates folders and files, finalize shares and unshares them.
pub const DRIVE_SCOPE: &str = "https://www.googleapis.com/auth/drive";
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

pub use crate::support::http_client::{HttpsConnector, https_connector};

type ServiceAccountAuth = yup_oauth2::authenticator::Authenticator<HttpsConnector>;

#[derive(Clone)]
pub enum DriveAuth {
    Fixed(String),
    ServiceAccount(ServiceAccountAuth),
    RefreshToken(Arc<RefreshTokenSource>),
}

impl std::fmt::Debug for DriveAuth {
    // Never print a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriveAuth::Fixed(_) => "DriveAuth::Fixed(..)",
            DriveAuth::ServiceAccount(_) => "DriveAuth::ServiceAccount(..)",
            DriveAuth::RefreshToken(_) => "DriveAuth::RefreshToken(..)",
        })
    }
}

impl DriveAuth {
    /// The JWT flow for `key`, impersonating `subject` when given (domain-wide delegation).
    pub async fn service_account(
        key: yup_oauth2::ServiceAccountKey,
        subject: Option<String>,
    ) -> Result<Self, DriveError> {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https_connector());
        let mut builder = yup_oauth2::ServiceAccountAuthenticator::with_client(
            key,
            yup_oauth2::CustomHyperClientBuilder::from(client),
        );
        if let Some(subject) = subject {
            builder = builder.subject(subject);
        }
        let auth = builder.build().await.map_err(|e| DriveError::Auth(e.to_string()))?;
        Ok(DriveAuth::ServiceAccount(auth))
    }
}

impl AccessToken for DriveAuth {
    async fn token(&self) -> Result<String, DriveError> {
        match self {
            DriveAuth::Fixed(token) => Ok(token.clone()),
            DriveAuth::ServiceAccount(auth) => {
                let token = auth.token(&[DRIVE_SCOPE]).await.map_err(|e| DriveError::Auth(e.to_string()))?;
                token.token().map(String::from).ok_or_else(|| DriveError::Auth("no access token in the answer".into()))
            }
            DriveAuth::RefreshToken(source) => source.token().await,
        }
    }
}

/// Trades a refresh token for access tokens at `token_uri`, caching each until shortly
/// before it expires.
pub struct RefreshTokenSource {
    http: reqwest::Client,
    token_uri: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// Renew this long before the stated expiry, so a token never runs out mid-request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
const REFRESH_ATTEMPTS: u32 = 3;

impl RefreshTokenSource {
    pub fn new(token_uri: String, client_id: String, client_secret: String, refresh_token: String) -> Self {
        let http = crate::support::http_client::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client with rustls builds");
        RefreshTokenSource {
            http,
            token_uri,
            client_id,
            client_secret,
            refresh_token,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn token(&self) -> Result<String, DriveError> {
        // Held across the refresh: concurrent callers wait for one refresh instead of each
        // making their own.
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        use backon::Retryable;
        let (token, lifetime) = (|| self.refresh())
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(REFRESH_ATTEMPTS as usize - 1),
            )
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Refresh::Transient(_)))
            .notify(|e, _| {
                if let Refresh::Transient(why) = e {
                    tracing::warn!(%why, "token refresh failed; trying again");
                }
            })
            .await
            .map_err(|(Refresh::Transient(why) | Refresh::Refused(why))| DriveError::Auth(why))?;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    async fn refresh(&self) -> Result<(String, Duration), Refresh> {
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            #[serde(default = "an_hour")]
            expires_in: u64,
        }
        fn an_hour() -> u64 {
            3600
        }
        #[derive(Deserialize, Default)]
        struct Refused {
            #[serde(default)]
            error: String,
            #[serde(default)]
            error_description: String,
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("refresh_token", self.refresh_token.as_str()),
        ];
        let response = self
            .http
            .post(&self.token_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| Refresh::Transient(format!("token endpoint unreachable: {}", e.without_url())))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| Refresh::Transient(format!("token answer cut off: {}", e.without_url())))?;
        if status.is_success() {
            let granted: Granted =
                serde_json::from_str(&body).map_err(|e| Refresh::Refused(format!("unreadable token answer: {e}")))?;
            return Ok((granted.access_token, Duration::from_secs(granted.expires_in)));
        }
        let refused: Refused = serde_json::from_str(&body).unwrap_or_default();
        let why = format!("token endpoint answered {status}: {} {}", refused.error, refused.error_description);
        if status.is_server_error() || status.as_u16() == 429 {
            Err(Refresh::Transient(why))
        } else {
            Err(Refresh::Refused(why))
        }
    }
}

enum Refresh {
    Transient(String),
    Refused(String),
}

/// Lets google-drive3's hub draw tokens from the same source as our uploader.
pub(super) struct HubToken<T>(pub(super) Arc<T>);

impl<T> Clone for HubToken<T> {
    fn clone(&self) -> Self {
        HubToken(self.0.clone())
    }
}

type TokenFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>,
>;

impl<T: AccessToken> google_drive3::common::GetToken for HubToken<T> {
    fn get_token<'a>(&'a self, _scopes: &'a [&str]) -> TokenFuture<'a> {
        Box::pin(async move { self.0.token().await.map(Some).map_err(|e| Box::new(e) as Box<_>) })
    }
}
