//! The outbox relay: after a transaction commits, its outbox rows are published and marked.
//! A row whose publish fails stays unpublished, with the error, for the sweeper.

use sqlx::MySqlPool;

use crate::adapters::queue::{MAX_BATCH, Publisher};
use crate::domain::{Queue, Status};
use crate::store::outbox::{self, OutboxMessage};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Publishes the messages, batched per queue (one SQS call for up to ten), then marks the
/// published rows in one statement and records the error on the others.
pub async fn publish_all<P: Publisher>(pool: &MySqlPool, publisher: &P, messages: &[OutboxMessage]) -> RelayReport {
    let mut report = RelayReport::default();
    if messages.is_empty() {
        return report;
    }
    let mut published = Vec::with_capacity(messages.len());
    let mut failures = Vec::new();
    for queue in Queue::ALL {
        let for_queue: Vec<&OutboxMessage> = messages.iter().filter(|m| m.queue == *queue).collect();
        for chunk in for_queue.chunks(MAX_BATCH) {
            let bodies: Vec<&str> = chunk.iter().map(|m| m.body.as_str()).collect();
            let started = std::time::Instant::now();
            let results = publisher.publish_batch(*queue, &bodies).await;
            tracing::debug!(queue = %queue, messages = bodies.len(), elapsed_ms = started.elapsed().as_millis() as u64, "published a batch");
            for (m, result) in chunk.iter().zip(results) {
                match result {
                    Ok(()) => published.push(m.id),
                    Err(e) => failures.push((m.id, e)),
                }
            }
        }
    }
    report.published = published.len();
    report.failed = failures.len();
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            // Published rows may go out again from the sweeper: harmless, every consumer is
            // idempotent.
            tracing::warn!(error = %e, "cannot record publish outcomes");
            return report;
        }
    };
    if let Err(e) = outbox::mark_published(&mut conn, &published).await {
        tracing::warn!(error = %e, "published but not marked; the sweeper will publish again");
    }
    for (id, e) in failures {
        tracing::warn!(outbox_id = id, queue = %e.queue, error = %e, "publish failed; left for the sweeper");
        let _ = outbox::record_publish_failure(&mut conn, id, &e.to_string()).await;
    }
    report
}
