//! What the entrypoints share: logging set-up, HTTP serving (Lambda or a local port), and a
//! pass on a period.

pub mod http;
pub mod schedule;
pub mod telemetry;
