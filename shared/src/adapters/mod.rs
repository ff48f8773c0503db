//! Adapters to the outside world: SePay and Casso (webhooks and transaction APIs), VietQR,
//! SQS, Secrets Manager.

pub mod bank_api;
pub mod casso;
pub mod poller;
pub mod queue;
pub mod secrets;
pub mod sepay;
pub mod sepay_api;
pub mod signing;
pub mod sqs_batch;
pub mod vietqr;
