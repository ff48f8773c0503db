//! Logging: JSON lines on Lambda and in containers (CloudWatch parses them), readable text
//! in a terminal. `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

pub fn init() {
    crate::metrics::init();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json =
        std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() || std::env::var("LOG_FORMAT").as_deref() == Ok("json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second init (tests, a binary that serves several functions) is harmless.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
}
