//! Adapters to the outside world: SePay and Casso (webhooks and transaction APIs), VietQR,
//! Google Drive, the course sources (S3, the seller's Drive), mail, SQS, Secrets Manager and
//! the sellers' LMSs. Each implements a port `domain` declares or is a plain client; none
//! reads configuration (`app::config` builds them) or touches the database.

pub mod bank_api;
pub mod casso;
pub mod drive;
pub mod lms;
pub mod mail;
pub mod payos;
pub mod payos_api;
pub mod payos_signature;
pub mod poller;
pub mod queue;
pub mod secrets;
pub mod sepay;
pub mod sepay_api;
pub mod sepay_va;
pub mod signing;
pub mod source;
pub mod sqs_batch;
pub mod vietqr;
