//! How each adapter, the seller's brand and the database pool are built from the
//! configuration: the only place their settings are read, so nothing below `app` reads the
//! environment.

use std::collections::HashMap;
use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlConnectOptions;

use super::{ConfigError, Vars, database_url};
use crate::adapters::drive::DriveConfig;
use crate::adapters::drive::auth::{DriveAuth, GOOGLE_TOKEN_URI, RefreshTokenSource};
use crate::adapters::drive::upload::DriveClient;
use crate::adapters::mail::Mailer;
use crate::adapters::queue::{QueueConfig, SqsPublisher};
use crate::adapters::source::S3Source;
use crate::domain::brand::Brand;
use crate::domain::{Email, Queue};

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

impl Brand {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let logo_url = match vars.get("SELLER_LOGO_URL") {
            None => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| invalid("SELLER_LOGO_URL", e.to_string()))?;
                if parsed.scheme() != "https" || parsed.host_str().is_none() {
                    return Err(invalid(
                        "SELLER_LOGO_URL",
                        "an https:// address, so browsers and mail clients load it",
                    ));
                }
                Some(parsed.to_string())
            }
        };
        let support_email = match vars.get("SUPPORT_EMAIL").or_else(|| vars.get("SUPPORT_CONTACT")) {
            None => None,
            Some(e) => Some(Email::parse(&e).map_err(|e| invalid("SUPPORT_EMAIL", e.to_string()))?.to_string()),
        };
        let phone = |var: &'static str, v: String| -> Result<String, ConfigError> {
            let digits = v.chars().filter(char::is_ascii_digit).count();
            if !(8..=15).contains(&digits) || !v.chars().all(|c| c.is_ascii_digit() || " +.-()".contains(c)) {
                return Err(invalid(var, "a phone number: 8 to 15 digits, spaces and + . - ( )"));
            }
            Ok(v)
        };
        let support_phone = vars.get("SUPPORT_PHONE").map(|v| phone("SUPPORT_PHONE", v)).transpose()?;
        let support_zalo = match vars.get("SUPPORT_ZALO") {
            None => None,
            Some(v) if v.starts_with("https://zalo.me/") => Some(v),
            Some(v) => {
                let number: String = phone("SUPPORT_ZALO", v)?.chars().filter(char::is_ascii_digit).collect();
                Some(format!("https://zalo.me/{number}"))
            }
        };
        let brand =
            Brand { seller_name: vars.get("SELLER_NAME"), logo_url, support_email, support_phone, support_zalo };
        if brand.seller_name.is_none() {
            tracing::warn!("SELLER_NAME is not set: the buyer page and the emails show no seller name until it is");
        }
        Ok(brand)
    }
}

impl DriveAuth {
    /// Reads which flow to use from the environment (or the secret merged into it). Exactly
    /// one of the three must be configured.
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let token_uri = vars.get("DRIVE_TOKEN_URI");
        let service_account = vars.get("DRIVE_SERVICE_ACCOUNT_KEY");
        let refresh_token = vars.get("DRIVE_REFRESH_TOKEN");
        let fixed = vars.get("DRIVE_ACCESS_TOKEN");
        let configured = [service_account.is_some(), refresh_token.is_some(), fixed.is_some()];
        match configured.iter().filter(|c| **c).count() {
            0 => {
                return Err(ConfigError::Invalid {
                    var: "DRIVE_SERVICE_ACCOUNT_KEY",
                    reason: "no Drive credentials: set DRIVE_SERVICE_ACCOUNT_KEY, DRIVE_REFRESH_TOKEN (with \
                             DRIVE_CLIENT_ID and DRIVE_CLIENT_SECRET) or, for the emulator, DRIVE_ACCESS_TOKEN"
                        .into(),
                });
            }
            1 => {}
            _ => {
                return Err(ConfigError::Invalid {
                    var: "DRIVE_SERVICE_ACCOUNT_KEY",
                    reason: "more than one kind of Drive credentials is set; keep one".into(),
                });
            }
        }
        if let Some(key) = service_account {
            let invalid = |reason: String| ConfigError::Invalid { var: "DRIVE_SERVICE_ACCOUNT_KEY", reason };
            let mut key: yup_oauth2::ServiceAccountKey =
                serde_json::from_str(&key).map_err(|e| invalid(format!("is not a service account key: {e}")))?;
            if let Some(uri) = token_uri {
                key.token_uri = uri;
            }
            return DriveAuth::service_account(key, vars.get("DRIVE_SUBJECT"))
                .await
                .map_err(|e| invalid(e.to_string()));
        }
        if let Some(refresh_token) = refresh_token {
            let required = |var: &'static str| {
                vars.get(var).ok_or(ConfigError::Invalid { var, reason: "is required with DRIVE_REFRESH_TOKEN".into() })
            };
            return Ok(DriveAuth::RefreshToken(Arc::new(RefreshTokenSource::new(
                token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.into()),
                required("DRIVE_CLIENT_ID")?,
                required("DRIVE_CLIENT_SECRET")?,
                refresh_token,
            ))));
        }
        Ok(DriveAuth::Fixed(fixed.unwrap_or_default()))
    }
}

impl DriveClient<DriveAuth> {
    /// The client the deliver job and the finalize function build at start:
    /// `DRIVE_API_ROOT` (default Google's), `DRIVE_CHUNK_SIZE` (16 MiB, a multiple of
    /// 256 KiB) and the credentials `DriveAuth::from_vars` reads.
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let mut config = DriveConfig::new(vars.string_or("DRIVE_API_ROOT", "https://www.googleapis.com"));
        config.chunk_size = vars.parse_or("DRIVE_CHUNK_SIZE", config.chunk_size)?;
        if config.chunk_size == 0 || !config.chunk_size.is_multiple_of(crate::adapters::drive::CHUNK_GRANULE) {
            return Err(ConfigError::Invalid {
                var: "DRIVE_CHUNK_SIZE",
                reason: "must be a positive multiple of 262144".into(),
            });
        }
        Ok(DriveClient::new(config, DriveAuth::from_vars(vars).await?))
    }
}

impl Mailer {
    /// `SMTP_URL` (`smtp://host:port` plain, `smtp://…?tls=required` STARTTLS, `smtps://…`
    /// TLS; user and password in the URL; default the local sink), `MAIL_FROM` (its display
    /// name defaults to `SELLER_NAME`), and the seller's brand ([`Brand::from_vars`]).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let url = vars.string_or("SMTP_URL", "smtp://127.0.0.1:1025");
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| ConfigError::Invalid { var: "SMTP_URL", reason: e.to_string() })?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let brand = Brand::from_vars(vars)?;
        let mut from: Mailbox = vars.string_or("MAIL_FROM", "no-reply@coursedrop.local").parse().map_err(
            |e: lettre::address::AddressError| ConfigError::Invalid { var: "MAIL_FROM", reason: e.to_string() },
        )?;
        // The buyer bought from the seller: their name is who the mail is from.
        if from.name.is_none() {
            from.name = brand.seller_name.clone();
        }
        Ok(Mailer::new(transport, from, brand))
    }
}

impl QueueConfig {
    pub fn from_vars(vars: &Vars) -> Self {
        let mut urls = HashMap::new();
        for (queue, var) in [
            (Queue::Enroll, "ENROLL_QUEUE_URL"),
            (Queue::Deliver, "DELIVER_QUEUE_URL"),
            (Queue::Finalize, "FINALIZE_QUEUE_URL"),
        ] {
            if let Some(url) = vars.get(var) {
                urls.insert(queue, url);
            }
        }
        QueueConfig { urls, name_prefix: vars.string_or("QUEUE_NAME_PREFIX", "coursedrop-") }
    }
}

/// The publisher every function builds at cold start: an SQS client from the shared SDK
/// configuration and the queues from the environment.
pub async fn sqs_publisher(vars: &Vars) -> SqsPublisher {
    SqsPublisher::new(
        aws_sdk_sqs::Client::new(&crate::adapters::queue::aws_sdk_config().await),
        QueueConfig::from_vars(vars),
    )
}

impl S3Source {
    /// From the shared SDK configuration. `S3_FORCE_PATH_STYLE=true` for moto and LocalStack,
    /// whose buckets are not DNS names.
    pub async fn from_vars(vars: &Vars) -> Self {
        let sdk = crate::adapters::queue::aws_sdk_config().await;
        let path_style = vars.get("S3_FORCE_PATH_STYLE").is_some_and(|v| v == "true" || v == "1");
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .timeout_config(crate::adapters::source::s3_timeouts())
            .build();
        S3Source::new(aws_sdk_s3::Client::from_conf(config))
    }
}

/// Connects to `DATABASE_URL` (or the local default) with at most `DATABASE_MAX_CONNECTIONS`
/// connections, `default_max` when unset: each binary's own (a Lambda serves one request at a
/// time; the deliver job works several files at once).
pub async fn connect_database(vars: &Vars, default_max: u32) -> Result<MySqlPool, sqlx::Error> {
    let max =
        vars.parse_or("DATABASE_MAX_CONNECTIONS", default_max).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    if max == 0 {
        return Err(sqlx::Error::Configuration("DATABASE_MAX_CONNECTIONS must be at least 1".into()));
    }
    let mut options: MySqlConnectOptions = database_url(vars).parse()?;
    // A function's own user (infra/db-users.sql), from its own secret, over the shared URL.
    if let Some(user) = vars.get("DATABASE_USER") {
        options = options.username(&user).password(&vars.get("DATABASE_PASSWORD").unwrap_or_default());
    }
    crate::store::connect_with(options, max).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::brand::Brand;

    fn brand(pairs: &[(&str, &str)]) -> Result<Brand, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Brand::from_vars(&Vars::new(move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())))
    }

    #[test]
    fn contacts_are_checked_and_a_zalo_number_becomes_its_address() {
        let b = brand(&[
            ("SELLER_NAME", "Học Rust cùng Lan"),
            ("SELLER_LOGO_URL", "https://cdn.example.vn/logo.png"),
            ("SUPPORT_EMAIL", "Ho.Tro@Example.vn"),
            ("SUPPORT_PHONE", "0912 345 678"),
            ("SUPPORT_ZALO", "0912.345.678"),
        ])
        .unwrap();
        assert_eq!(b.support_zalo.as_deref(), Some("https://zalo.me/0912345678"));
        assert_eq!(b.support_email.as_deref(), Some("Ho.Tro@example.vn"));
        assert_eq!(b.logo_origin().as_deref(), Some("https://cdn.example.vn"));
        assert!(brand(&[("SELLER_LOGO_URL", "http://example.vn/logo.png")]).is_err());
        assert!(brand(&[("SUPPORT_EMAIL", "not an email")]).is_err());
        assert!(brand(&[("SUPPORT_PHONE", "call me")]).is_err());
        assert_eq!(brand(&[]).unwrap(), Brand::default());
    }
}
