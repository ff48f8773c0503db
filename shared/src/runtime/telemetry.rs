//! Logging: JSON lines on Lambda and in containers (CloudWatch parses them), readable text
//! in a terminal. `RUST_LOG` filters. Logs go to stderr; stdout is left to EMF metric lines
//! and to the output of commands such as `make demo`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    init_with(default_filter());
}

/// `RUST_LOG` when set; on Lambda, the function's log level (`AWS_LAMBDA_LOG_LEVEL`, from its
/// logging configuration); else `info`.
fn default_filter() -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    EnvFilter::new(lambda_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()))
}

/// Lambda's log levels as tracing's: Lambda has FATAL, tracing stops at error.
fn lambda_level(level: Option<&str>) -> &'static str {
    match level.map(|l| l.trim().to_ascii_uppercase()).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
}

/// True when log lines are JSON: on Lambda, or with `LOG_FORMAT=json`.
pub fn json_logs() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() || std::env::var("LOG_FORMAT").as_deref() == Ok("json")
}

/// [`init`] with a filter chosen by the caller (a command whose own output is the point).
pub fn init_with(filter: EnvFilter) {
    crate::support::metrics::init();
    let json = json_logs();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    // A second init (tests, a binary that serves several functions) is harmless.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).without_time().try_init()
    } else {
        // Colour only for a person at a terminal: CloudWatch and files would keep the escape codes.
        builder.compact().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
}

/// For commands whose own output is the point (`make demo`, `make chaos`): in a terminal only
/// warnings are logged; as JSON lines (`LOG_FORMAT=json`), everything `RUST_LOG` asks for.
pub fn init_quiet_in_terminal() {
    if json_logs() { init() } else { init_with(EnvFilter::new("warn")) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lambda_log_levels_map_to_tracing_levels() {
        assert_eq!(super::lambda_level(Some("DEBUG")), "debug");
        assert_eq!(super::lambda_level(Some("fatal")), "error");
        assert_eq!(super::lambda_level(Some("WARN")), "warn");
        assert_eq!(super::lambda_level(None), "info");
        assert_eq!(super::lambda_level(Some("loud")), "info");
    }
}
