//! The enroll function: one `SqsEvent` in, an `SqsBatchResponse` out listing only the
//! records worth retrying. A body that can never succeed (not JSON, no such item) is logged
//! and dropped, so one bad message never fails its batch.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use coursedrop::adapters::queue::Publisher;
use coursedrop::enrollment::{self, EnrollProvider, EnrollSettings, Outcome};
use coursedrop::relay;
use coursedrop::store::outbox::ItemMessage;
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
    let results = futures_util::future::join_all(event.records.iter().map(|record| async move {
        let message_id = record.message_id.clone().unwrap_or_default();
        (handle_record(ctx, &message_id, record.body.as_deref().unwrap_or_default()).await, message_id)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (retry, message_id) in results {
        if !retry {
            continue;
        }
        if message_id.is_empty() {
            // An empty identifier would fail the whole batch; SQS always sets one.
            tracing::error!("a record without a message id cannot be retried alone");
            continue;
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// One record; true when it should be retried.
async fn handle_record<P: EnrollProvider, Q: Publisher>(
    ctx: &EnrollContext<P, Q>,
    message_id: &str,
    body: &str,
) -> bool {
    let Ok(message) = serde_json::from_str::<ItemMessage>(body) else {
        tracing::error!(%message_id, body = %body.chars().take(200).collect::<String>(), "dropped a message that is not {{item_id}}");
        return false;
    };
    let item_id = message.item_id;
    match enrollment::enroll_item(&ctx.pool, &ctx.provider, item_id, &ctx.settings, &ctx.worker).await {
        Ok(Outcome::Enrolled { outbox }) => {
            tracing::info!(item_id, provider = ctx.provider.name(), "enrolled");
            relay::publish_all(&ctx.pool, &ctx.publisher, outbox.as_slice()).await;
            false
        }
        Ok(Outcome::AlreadyDone(status)) => {
            tracing::info!(item_id, %status, "nothing to do: the item is past enrollment");
            false
        }
        Ok(Outcome::UnknownItem) => {
            tracing::error!(item_id, %message_id, "dropped a message for an item that does not exist");
            false
        }
        Ok(Outcome::Failed(reason)) => {
            tracing::error!(item_id, %reason, "enrollment failed; the item waits for an operator");
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
