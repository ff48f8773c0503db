//! coursedrop's shared library: the domain (validated types and state machines), the store
//! (MySQL through sqlx), configuration, the adapters to the outside world, and the services
//! the functions call.
//!
//! Binaries under `functions/` and `jobs/` only parse their input, call in here and map the
//! result; everything that decides anything lives in this crate.

pub mod adapters;
pub mod brand;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod drive;
pub mod drive_access;
pub mod enrollment;
pub mod finalize;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod operations;
pub mod ordering;
pub mod payments;
pub mod refund;
pub mod relay;
pub mod reminders;
pub mod schedule;
pub mod self_service;
pub mod source;
pub mod store;
pub mod sweeper;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
