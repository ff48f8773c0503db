//! Adapters to the outside world: SePay, VietQR, SQS.

pub mod queue;
pub mod sepay;
pub mod vietqr;
