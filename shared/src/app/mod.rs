//! The use cases: one module each. They call `store` and `adapters`, never the reverse.

pub mod config;
pub mod console;
pub mod delivery;
pub mod drive_access;
pub mod enrollment;
pub mod finalize;
pub mod operations;
pub mod ordering;
pub mod payments;
pub mod reconcile;
pub mod refund;
pub mod relay;
pub mod reminders;
pub mod routes;
pub mod self_service;
pub mod stage;
pub mod sweeper;
