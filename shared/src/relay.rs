//! The outbox relay: after a transaction commits, its outbox rows are published and marked.
//! A row whose publish fails stays unpublished, with the error, for the sweeper.

use sqlx::MySqlPool;

use crate::adapters::queue::Publisher;
use crate::store::outbox::{self, OutboxMessage};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

pub async fn publish_all<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    messages: &[OutboxMessage],
) -> RelayReport {
    let mut report = RelayReport::default();
    for m in messages {
        let result = publisher.publish(m.queue, &m.body).await;
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                // The message may now be published twice (here and by the sweeper): harmless,
                // every consumer is idempotent.
                tracing::warn!(outbox_id = m.id, error = %e, "cannot record the publish outcome");
                report.failed += 1;
                continue;
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = outbox::mark_published(&mut conn, m.id).await {
                    tracing::warn!(outbox_id = m.id, error = %e, "published but not marked; the sweeper will publish again");
                }
                report.published += 1;
            }
            Err(e) => {
                tracing::warn!(outbox_id = m.id, queue = %m.queue, error = %e, "publish failed; left for the sweeper");
                let _ = outbox::record_publish_failure(&mut conn, m.id, &e.to_string()).await;
                report.failed += 1;
            }
        }
    }
    report
}
