//! Adapters to the outside world: SePay, VietQR, SQS.

pub mod poller;
pub mod queue;
pub mod sepay;
pub mod signing;
pub mod sqs_batch;
pub mod vietqr;
