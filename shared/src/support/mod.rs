//! Plumbing every layer may use and that knows nothing of the business: metrics, the spans
//! work runs in, and the one HTTP client configuration.

pub mod http_client;
pub mod metrics;
pub mod spans;
