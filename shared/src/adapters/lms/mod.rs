//! The sellers' learning-management systems: Moodle's web-service API, and a signed webhook
//! to the seller's own system.

pub mod moodle;
pub mod webhook;
