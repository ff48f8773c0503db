//! Every outbound HTTPS connection is made by one of the three clients built here, all rustls
//! on ring (the provider sqlx and the AWS SDK also use), so there is one place that says where
//! trusted roots come from:
//!
//! - [`client_builder`] (reqwest: bank-feed APIs, LMSs, Drive uploads' metadata calls) and
//!   [`aws_http_client`] (S3, SQS, Secrets Manager) trust the operating system's CA store
//!   (rustls-platform-verifier and rustls-native-certs read it). Lambda's AL2023 runtime and
//!   the job's distroless image both carry one (`/etc/ssl/certs`).
//! - [`https_connector`] (Google's OAuth token endpoint and Drive through google-drive3)
//!   trusts the Mozilla roots compiled into the binary (webpki-roots), so Drive keeps working
//!   on an image whose CA store is missing or stale.

use hyper_util::client::legacy::connect::HttpConnector;

/// An HTTP client builder with rustls on ring and the system's roots.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Installing twice is harmless: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// The AWS SDK's HTTP client: rustls on ring (its default would build aws-lc, a C library).
pub fn aws_http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

pub type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// rustls on ring with bundled Mozilla roots; plain http too, for the emulator.
pub fn https_connector() -> HttpsConnector {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .expect("ring supports rustls' default protocol versions")
        .https_or_http()
        .enable_http1()
        .build()
}
