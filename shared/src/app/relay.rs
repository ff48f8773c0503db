//! The outbox relay: after a transaction commits, its outbox rows are published. A publish
//! that succeeds writes nothing (the stage it triggers marks the row consumed, in its own
//! transaction); one that fails is recorded, with the error, for the sweeper to take at once.

use sqlx::MySqlPool;

use crate::adapters::queue::{MAX_BATCH, Publisher};
use crate::domain::{Queue, Status};
use crate::store::outbox::{self, OutboxMessage};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Publishes the messages, batched per queue (one SQS call for up to ten). A failure is
/// recorded on its row; a success writes nothing.
pub async fn publish_all<P: Publisher>(pool: &MySqlPool, publisher: &P, messages: &[OutboxMessage]) -> RelayReport {
    publish(pool, publisher, messages).await.0
}

/// Publishes, records the failures, and returns the ids published.
async fn publish<P: Publisher>(pool: &MySqlPool, publisher: &P, messages: &[OutboxMessage]) -> (RelayReport, Vec<u64>) {
    let mut report = RelayReport::default();
    if messages.is_empty() {
        return (report, Vec::new());
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
    if failures.is_empty() {
        return (report, published);
    }
    match pool.acquire().await {
        Ok(mut conn) => {
            for (id, e) in failures {
                tracing::warn!(outbox_id = id, queue = %e.queue, error = %e, "publish failed; left for the sweeper");
                let _ = outbox::record_publish_failure(&mut conn, id, &e.to_string()).await;
            }
        }
        // Unconsumed rows are published again by the sweeper in any case, only later.
        Err(e) => tracing::warn!(error = %e, "cannot record publish failures"),
    }
    (report, published)
}

/// The sweeper's publish: like [`publish_all`], and the rows published are marked with when,
/// so a row nobody consumes is published again only after the sweeper's interval.
pub async fn republish<P: Publisher>(pool: &MySqlPool, publisher: &P, messages: &[OutboxMessage]) -> RelayReport {
    let (report, published) = publish(pool, publisher, messages).await;
    if published.is_empty() {
        return report;
    }
    if let Ok(mut conn) = pool.acquire().await
        && let Err(e) = outbox::mark_published(&mut conn, &published).await
    {
        tracing::warn!(error = %e, "published but not marked; the next sweep publishes again");
    }
    report
}
