//! Locally, a loop that does what Lambda's SQS event source does: receive a batch, hand it
//! to the function as an `SqsEvent`, then delete exactly the messages not reported in the
//! `SqsBatchResponse`'s failures. The failed ones become visible again after `retry_after`.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// Long-poll wait of each receive, seconds: Lambda's SQS event source long-polls for 20 s, and
/// a long poll answers as soon as a message arrives, so nothing waits for it.
const WAIT_SECS: i32 = 20;

/// Receives, calls `handler`, deletes the successes. Returns when `stop` resolves.
pub async fn poll_like_lambda<H, Fut>(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    retry_after: Duration,
    handler: H,
    stop: impl Future<Output = ()>,
) where
    H: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    tokio::pin!(stop);
    let receiver = super::queue::long_poll_client(&client, Duration::from_secs(WAIT_SECS as u64));
    loop {
        let receive = receiver
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(WAIT_SECS)
            .send();
        tokio::pin!(receive);
        // An open receive is never dropped (SQS would hand it a message nobody works): on a
        // stop it ends within the wait and what it got is made visible again.
        let received = tokio::select! {
            r = &mut receive => r,
            _ = &mut stop => {
                for m in receive.await.map(|out| out.messages.unwrap_or_default()).unwrap_or_default() {
                    let _ = client
                        .change_message_visibility()
                        .queue_url(&queue_url)
                        .receipt_handle(m.receipt_handle.unwrap_or_default())
                        .visibility_timeout(0)
                        .send()
                        .await;
                }
                return;
            }
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = %queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        let mut handles = Vec::with_capacity(messages.len());
        for m in messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            handles.push((m.message_id.unwrap_or_default(), m.receipt_handle.unwrap_or_default()));
            event.records.push(record);
        }
        let response = handler(event).await;
        let failed: HashSet<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        for (id, receipt) in handles {
            let result = if failed.contains(&id) {
                let secs = retry_after.as_secs().min(43_200) as i32;
                client
                    .change_message_visibility()
                    .queue_url(&queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(secs)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            } else {
                client
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            };
            if let Err(e) = result {
                tracing::warn!(message_id = %id, error = %e, "could not settle a message");
            }
        }
    }
}
