//! coursedrop's shared library: the domain (validated types and state machines), the store
//! (MySQL through sqlx), configuration, and the adapters to the outside world.
//!
//! Binaries under `functions/` and `jobs/` only parse their input, call in here and map the
//! result; everything that decides anything lives in this crate.

pub mod config;
pub mod domain;
pub mod store;
