//! The SQS side of an SQS-triggered Lambda: parse each record's `{item_id}` ourselves, work
//! the records concurrently, and report as `BatchItemFailure`s only those worth retrying. A
//! body that can never succeed is logged and dropped, so one bad message never fails its batch.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::Instrument;

use crate::domain::state::ItemMessage;

/// `work(item_id)` answers whether the record should be retried.
pub async fn handle<W, Fut>(event: SqsEvent, work: W) -> SqsBatchResponse
where
    W: Fn(u64) -> Fut,
    Fut: Future<Output = bool>,
{
    let results = futures_util::future::join_all(event.records.iter().map(|record| {
        let message_id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let parsed = serde_json::from_str::<ItemMessage>(body);
        if parsed.is_err() {
            tracing::error!(%message_id, body = %body.chars().take(200).collect::<String>(), "dropped a message that is not {{item_id}}");
        }
        let work = &work;
        async move {
            let retry = match parsed {
                // The item's logs carry its id, and its order code once the stage has read it.
                Ok(m) => work(m.item_id).instrument(crate::support::spans::item_span(m.item_id)).await,
                Err(_) => false,
            };
            (retry, message_id)
        }
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
