//! The enroll function: one `SqsEvent` in, an `SqsBatchResponse` out listing only the
//! records worth retrying. A body that can never succeed (not JSON, no such item) is logged
//! and dropped, so one bad message never fails its batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::adapters::queue::Publisher;
use coursedrop::enrollment::{self, EnrollProvider, EnrollSettings, Outcome};
use coursedrop::relay;
use sqlx::MySqlPool;

pub struct EnrollContext<P, Q> {
    pub pool: MySqlPool,
    pub provider: P,
    pub publisher: Q,
    pub settings: EnrollSettings,
    /// Names the lease holder in the database: the Lambda's request id, or a poller's name.
    pub worker: String,
}

/// Works the records of a batch concurrently (each item is claimed by a lease, so two
/// records for one item cannot both call the provider).
pub async fn handle<P: EnrollProvider, Q: Publisher>(ctx: &EnrollContext<P, Q>, event: SqsEvent) -> SqsBatchResponse {
    coursedrop::adapters::sqs_batch::handle(event, |item_id| handle_item(ctx, item_id)).await
}

/// One item; true when its record should be retried.
async fn handle_item<P: EnrollProvider, Q: Publisher>(ctx: &EnrollContext<P, Q>, item_id: u64) -> bool {
    match enrollment::enroll_item(&ctx.pool, &ctx.provider, item_id, &ctx.settings, &ctx.worker).await {
        Ok(Outcome::Enrolled { outbox }) => {
            tracing::info!(item_id, provider = ctx.provider.name(), "enrolled");
            relay::publish_all(&ctx.pool, &ctx.publisher, outbox.as_slice()).await;
            false
        }
        Ok(Outcome::Unenrolled) => {
            tracing::info!(item_id, provider = ctx.provider.name(), "refunded: the buyer is out of the LMS");
            false
        }
        Ok(Outcome::AlreadyDone(status)) => {
            tracing::info!(item_id, %status, "nothing to do: the item is past enrollment");
            false
        }
        Ok(Outcome::UnknownItem) => {
            tracing::error!(item_id, "dropped a message for an item that does not exist");
            false
        }
        Ok(Outcome::Failed(reason)) => {
            tracing::error!(item_id, %reason, "enrollment (or a refund's unenrollment) failed; an operator is needed");
            false
        }
        Ok(Outcome::Retry(reason)) => {
            tracing::warn!(item_id, %reason, "enrollment will be retried");
            true
        }
        Err(e) => {
            tracing::warn!(item_id, error = %e, "store error; the message will be retried");
            true
        }
    }
}
