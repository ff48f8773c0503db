//! Adapters to the outside world: SePay, VietQR, SQS, Secrets Manager.

pub mod poller;
pub mod queue;
pub mod secrets;
pub mod sepay;
pub mod signing;
pub mod sqs_batch;
pub mod vietqr;
