//! The sweeper's work, run every minute: publish outbox rows the relay could not, cancel
//! unpaid orders whose time is up, and count (and log) items stuck past their stage's
//! deadline, for an alarm and for `coursedrop-admin stuck`.

use serde::Serialize;
use sqlx::MySqlPool;

use crate::adapters::queue::Publisher;
use crate::domain::{OrderStatus, Status};
use crate::relay;
use crate::store::{StoreError, orders, outbox};

const ACTOR: &str = "sweeper";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub republished: usize,
    pub publish_failed: usize,
    pub expired_orders: usize,
    pub stuck_items: usize,
}

/// One sweep. `outbox_grace_secs` leaves fresh rows to the relay that wrote them (30 s in
/// production) so the two rarely publish the same row; when they do, consumers are
/// idempotent.
pub async fn sweep<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    outbox_grace_secs: u32,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    loop {
        let batch = outbox::unpublished(&mut *pool.acquire().await?, outbox_grace_secs, 100).await?;
        let r = relay::publish_all(pool, publisher, &batch).await;
        report.republished += r.published;
        report.publish_failed += r.failed;
        // Stop at the first failing batch: the queue is likely down; the next sweep retries.
        if batch.len() < 100 || r.failed > 0 {
            break;
        }
    }

    let expired: Vec<u64> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = ? AND expires_at < NOW(3) ORDER BY expires_at LIMIT 500",
    )
    .bind(OrderStatus::Pending.as_str())
    .fetch_all(pool)
    .await?;
    for order_id in expired {
        match orders::cancel_unpaid(pool, order_id, ACTOR, "expired unpaid").await {
            Ok(()) => report.expired_orders += 1,
            // Paid in the meantime: the payment won, as it should.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let stuck = crate::operations::stuck_items(pool, &crate::operations::Deadlines::default()).await?;
    for item in &stuck {
        tracing::warn!(
            item_id = item.id,
            order_code = %item.order_code,
            status = %item.status,
            minutes = item.minutes,
            "item stuck past its stage's deadline"
        );
    }
    report.stuck_items = stuck.len();
    tracing::info!(
        stuck_items = report.stuck_items,
        republished = report.republished,
        publish_failed = report.publish_failed,
        expired_orders = report.expired_orders,
        "sweep done"
    );
    Ok(report)
}
