//! The enroll function: one `SqsEvent` in, an `SqsBatchResponse` out listing only the
//! records worth retrying. A body that can never succeed (not JSON, no such item) is logged
//! and dropped, so one bad message never fails its batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::adapters::queue::Publisher;
use coursedrop::app::enrollment::{self, EnrollProvider, EnrollSettings};
use coursedrop::app::stage;
use sqlx::MySqlPool;

pub struct EnrollContext<P, Q> {
    pub pool: MySqlPool,
    pub provider: P,
    pub publisher: Q,
    pub settings: EnrollSettings,
    /// Names the lease holder in the database: the Lambda's request id, or a poller's name.
    pub worker: String,
}

/// Works the records of a batch concurrently through the one stage runner (each item is
/// claimed by a lease, so two records for one item cannot both call the provider).
pub async fn handle<P: EnrollProvider, Q: Publisher + Sync>(
    ctx: &EnrollContext<P, Q>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let enroll = enrollment::Enroll {
        pool: &ctx.pool,
        provider: &ctx.provider,
        publisher: &ctx.publisher,
        settings: &ctx.settings,
        worker: &ctx.worker,
    };
    stage::run_batch(&enroll, event).await
}
