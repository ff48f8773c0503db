//! Publishing stage messages to SQS, behind a small trait so the outbox relay can be driven
//! by anything that delivers a body to a queue.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use thiserror::Error;
use tokio::sync::OnceCell;

use crate::domain::{Queue, Status};

#[derive(Debug, Error)]
#[error("publishing to the {queue} queue failed: {message}")]
pub struct PublishError {
    pub queue: Queue,
    pub message: String,
}

/// SQS takes at most this many messages per `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;

pub trait Publisher: Send + Sync + 'static {
    /// Publishes up to [`MAX_BATCH`] bodies to one queue in one call. The answer has one
    /// entry per body, in order: a batch can partly succeed.
    fn publish_batch(
        &self,
        queue: Queue,
        bodies: &[&str],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send;
}

/// The AWS SDK configuration every binary shares: rustls with ring (the provider sqlx
/// already uses), short timeouts so an unreachable endpoint fails fast instead of stalling
/// a webhook reply, and `AWS_ENDPOINT_URL` honoured for moto or LocalStack.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::support::http_client::aws_http_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// How much longer than its wait a long poll's attempt may take before the client gives up:
/// SQS answers an idle long poll just after the wait, plus a network round trip.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

/// A client for receiving with long polls of up to `wait`, built from `client` (same
/// endpoint, region, credentials and retries) with timeouts that outlast the wait.
///
/// The shared configuration's 5 s per attempt suits a webhook's publish, not a 20 s long poll:
/// the client would give up on every idle receive while the receive stays open at SQS, and a
/// message arriving then is handed to that abandoned receive and stays invisible for the
/// visibility timeout with its receive count raised, taken by nobody. Every receiver uses
/// this client; senders keep the short timeouts.
pub fn long_poll_client(client: &aws_sdk_sqs::Client, wait: Duration) -> aws_sdk_sqs::Client {
    let attempt = wait + LONG_POLL_MARGIN;
    let config = client
        .config()
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt)
                // Room for every attempt the retry configuration allows (2), each a full wait.
                .operation_timeout(attempt * 2 + Duration::from_secs(2))
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Where each queue is: an explicit URL (`ENROLL_QUEUE_URL`, `DELIVER_QUEUE_URL`,
/// `FINALIZE_QUEUE_URL`, as the SAM template sets them) or, when unset, a queue named
/// `{QUEUE_NAME_PREFIX}{queue}` (default `coursedrop-enroll`, …) looked up once on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub urls: HashMap<Queue, String>,
    pub name_prefix: String,
}

impl QueueConfig {
    pub fn queue_name(&self, queue: Queue) -> String {
        format!("{}{}", self.name_prefix, queue.as_str())
    }
}

pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
    config: QueueConfig,
    resolved: HashMap<Queue, OnceCell<String>>,
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, config: QueueConfig) -> Self {
        let resolved = Queue::ALL.iter().map(|q| (*q, OnceCell::new())).collect();
        SqsPublisher { client, config, resolved }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub async fn queue_url(&self, queue: Queue) -> Result<String, PublishError> {
        if let Some(url) = self.config.urls.get(&queue) {
            return Ok(url.clone());
        }
        let cell = &self.resolved[&queue];
        cell.get_or_try_init(|| async {
            let name = self.config.queue_name(queue);
            let out = self.client.get_queue_url().queue_name(&name).send().await.map_err(|e| PublishError {
                queue,
                message: format!("looking up queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
            out.queue_url.ok_or_else(|| PublishError { queue, message: format!("no URL for queue {name}") })
        })
        .await
        .cloned()
    }
}

impl Publisher for SqsPublisher {
    async fn publish_batch(&self, queue: Queue, bodies: &[&str]) -> Vec<Result<(), PublishError>> {
        assert!(bodies.len() <= MAX_BATCH, "at most {MAX_BATCH} messages per batch");
        let all_failed =
            |message: String| bodies.iter().map(|_| Err(PublishError { queue, message: message.clone() })).collect();
        let url = match self.queue_url(queue).await {
            Ok(url) => url,
            Err(e) => return all_failed(e.message),
        };
        let mut entries = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.iter().enumerate() {
            match aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(*body)
                .build()
            {
                Ok(entry) => entries.push(entry),
                Err(e) => return all_failed(e.to_string()),
            }
        }
        let out = match self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
            Ok(out) => out,
            Err(e) => return all_failed(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
        };
        let mut results: Vec<Result<(), PublishError>> =
            bodies.iter().map(|_| Err(PublishError { queue, message: "not acknowledged by SQS".into() })).collect();
        for ok in out.successful {
            if let Some(r) = ok.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *r = Ok(());
            }
        }
        for failed in out.failed {
            if let Some(r) = failed.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *r = Err(PublishError {
                    queue,
                    message: format!("{}: {}", failed.code, failed.message.unwrap_or_default()),
                });
            }
        }
        results
    }
}

impl<P: Publisher> Publisher for std::sync::Arc<P> {
    fn publish_batch(
        &self,
        queue: Queue,
        bodies: &[&str],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send {
        (**self).publish_batch(queue, bodies)
    }
}

impl SqsPublisher {
    /// How many messages wait in the queue at `url` (SQS's approximate count), `None` when SQS
    /// does not answer: the console shows "unknown" rather than failing the page.
    pub async fn approximate_depth(&self, url: &str) -> Option<i64> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(
                |e| tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "reading a queue's depth"),
            )
            .ok()?;
        out.attributes?.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?.parse().ok()
    }
}
