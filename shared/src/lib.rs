//! coursedrop's shared library, in layers that import only downward (`tests/layers.rs`
//! fails on an upward import):
//!
//! - [`domain`]: validated types, the state machines and the pure decisions; no I/O.
//! - [`support`]: plumbing with no business in it (metrics, spans, the HTTP client).
//! - [`store`]: all SQL (MySQL through sqlx). Imports `domain` and `support` only.
//! - [`adapters`]: the outside world (bank feeds, Drive, course sources, mail, SQS, Secrets
//!   Manager, LMSs), each behind a trait or type `domain` declares. Imports `domain` and
//!   `support` only.
//! - [`app`]: one module per use case, and [`app::config`], which reads the configuration
//!   once at start into plain structs.
//! - [`runtime`]: what the entrypoints share: logging, serving a Router on Lambda or locally,
//!   running a pass on a period.
//!
//! Binaries under `functions/`, `jobs/` and `devtools/` only parse their input, call in here
//! and map the result; everything that decides anything lives in this crate.

pub mod adapters;
pub mod app;
pub mod domain;
pub mod runtime;
pub mod store;
pub mod support;
#[cfg(feature = "testing")]
pub mod testing;
