//! The sweeper's work, run every minute: publish outbox rows the relay could not, cancel
//! unpaid orders whose time is up, send payment reminders (`reminders`), forget old wrong-email
//! counts, and count (and log) items stuck past their stage's
//! deadline, for an alarm and for `coursedrop-admin stuck`.

use std::time::Duration;

use serde::Serialize;
use sqlx::MySqlPool;

use crate::adapters::queue::Publisher;
use crate::app::relay;
use crate::domain::{ItemStatus, Status};
use crate::store::{StoreError, orders, outbox, reports};

const ACTOR: &str = "sweeper";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub republished: usize,
    pub publish_failed: usize,
    pub expired_orders: usize,
    pub stuck_items: usize,
    /// Stuck items whose stage message was sent again (at most once per deadline each).
    pub requeued: usize,
    pub reminders_sent: usize,
    /// Reminders the SMTP server did not take: tried again at the next sweep.
    pub reminders_failed: usize,
}

/// When the sweeper publishes an outbox row again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxTiming {
    /// Rows younger than this are left to the relay that wrote them (30 s in production): a
    /// row whose publish the relay saw fail is published after it.
    pub grace_secs: u32,
    /// A row published but not consumed for this long is published again, and again at this
    /// interval while nobody consumes it (`OUTBOX_REPUBLISH_AFTER`, default 5 minutes). Longer
    /// than a healthy stage takes to take its message in.
    pub republish_after_secs: u32,
}

impl OutboxTiming {
    pub const DEFAULT_REPUBLISH_AFTER_SECS: u32 = 300;

    pub fn grace(grace_secs: u32) -> Self {
        OutboxTiming { grace_secs, republish_after_secs: Self::DEFAULT_REPUBLISH_AFTER_SECS }
    }

    pub fn from_vars(
        vars: &crate::app::config::Vars,
        grace_secs: u32,
    ) -> Result<Self, crate::app::config::ConfigError> {
        let after = vars.duration_or("OUTBOX_REPUBLISH_AFTER", "5m")?;
        Ok(OutboxTiming { grace_secs, republish_after_secs: after.num_seconds().clamp(1, u32::MAX as i64) as u32 })
    }
}

/// One sweep, with the default stage deadlines.
pub async fn sweep<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    outbox: OutboxTiming,
) -> Result<SweepReport, StoreError> {
    sweep_with(pool, publisher, outbox, &Deadlines::default(), None).await
}

/// [`sweep`] with the stage deadlines of the configuration.
pub async fn sweep_with<P: Publisher>(
    pool: &MySqlPool,
    publisher: &P,
    timing: OutboxTiming,
    deadlines: &Deadlines,
    reminders: Option<&crate::app::reminders::Reminders>,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    loop {
        let batch =
            outbox::due(&mut *pool.acquire().await?, timing.grace_secs, timing.republish_after_secs, 100).await?;
        let r = relay::republish(pool, publisher, &batch).await;
        report.republished += r.published;
        report.publish_failed += r.failed;
        // Stop at the first failing batch: the queue is likely down; the next sweep retries.
        if batch.len() < 100 || r.failed > 0 {
            break;
        }
    }

    let expired = orders::expired(pool, 500).await?;
    for order_id in expired {
        match orders::cancel_unpaid(pool, order_id, ACTOR, "expired unpaid").await {
            Ok(()) => report.expired_orders += 1,
            // Paid in the meantime: the payment won, as it should.
            Err(StoreError::OrderConflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // After expiry: an order cancelled a moment ago is not reminded.
    if let Some(r) = reminders {
        let sent = crate::app::reminders::send_due(pool, r).await?;
        report.reminders_sent = sent.sent;
        report.reminders_failed = sent.failed;
    }
    // A day is longer than any lock-out window a seller would set.
    crate::store::access::forget_old(pool, 24 * 3600).await?;
    let stuck = stuck_items(pool, deadlines).await?;
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
    // A stuck item's stage message is sent again: every consumer is idempotent, so this is
    // safe, and it heals what nothing else would (a message lost, a worker gone with its
    // lease). Once per deadline per item, so a paused upload is not hammered. The item stays
    // "stuck" (and alarmed) until it moves.
    let mut requeued = Vec::new();
    for item in &stuck {
        let status = item.status;
        let (Some(queue), Some(deadline)) = (status.served_by(), deadlines.of(status)) else { continue };
        let mut tx = pool.begin().await?;
        let recent = outbox::sent_recently_in(&mut tx, queue, item.id, deadline.as_secs()).await?;
        // A worker still holds it (alive, if slow): a message now would only come back busy
        // until its lease runs out. Once the lease lapses (the worker gone), it is sent.
        if recent || crate::store::leases::is_held(&mut tx, item.id).await? {
            continue;
        }
        requeued.push(outbox::enqueue(&mut tx, queue, item.id).await?);
        tx.commit().await?;
        tracing::warn!(item_id = item.id, order_code = %item.order_code, status = %item.status, %queue, "stuck item's message sent again");
    }
    report.requeued = requeued.len();
    let r = relay::republish(pool, publisher, &requeued).await;
    report.publish_failed += r.failed;
    crate::support::metrics::emit(crate::support::metrics::Metric::StuckItems { count: stuck.len() as u64 });
    tracing::info!(
        stuck_items = report.stuck_items,
        republished = report.republished,
        publish_failed = report.publish_failed,
        expired_orders = report.expired_orders,
        requeued = report.requeued,
        reminders_sent = report.reminders_sent,
        reminders_failed = report.reminders_failed,
        "sweep done"
    );
    Ok(report)
}

// ------------------------------------------------------------------ stuck items

pub use crate::store::reports::StuckItem;

/// How long an item may stay in a working state before someone should look. Delivery
/// counts from the last progress saved (every second while bytes move), not from the claim,
/// so a big course is never "stuck" merely for being big.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub enrolling: Duration,
    pub enrolled: Duration,
    pub delivering_without_progress: Duration,
    pub delivered: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            enrolling: Duration::from_secs(15 * 60),
            enrolled: Duration::from_secs(30 * 60),
            delivering_without_progress: Duration::from_secs(30 * 60),
            delivered: Duration::from_secs(15 * 60),
        }
    }
}

impl Deadlines {
    /// `DEADLINE_ENROLLING`, `DEADLINE_ENROLLED`, `DEADLINE_DELIVERING`, `DEADLINE_DELIVERED`
    /// (`30m`, `45s`, …), each defaulting as above.
    pub fn from_vars(vars: &crate::app::config::Vars) -> Result<Self, crate::app::config::ConfigError> {
        let d = Deadlines::default();
        let read = |var: &'static str, default: Duration| -> Result<Duration, crate::app::config::ConfigError> {
            Ok(vars.duration(var)?.map_or(default, |v| Duration::from_secs(v.num_seconds() as u64)))
        };
        Ok(Deadlines {
            enrolling: read("DEADLINE_ENROLLING", d.enrolling)?,
            enrolled: read("DEADLINE_ENROLLED", d.enrolled)?,
            delivering_without_progress: read("DEADLINE_DELIVERING", d.delivering_without_progress)?,
            delivered: read("DEADLINE_DELIVERED", d.delivered)?,
        })
    }

    /// The deadline of a working status, if it has one.
    pub fn of(&self, status: ItemStatus) -> Option<Duration> {
        match status {
            ItemStatus::Enrolling => Some(self.enrolling),
            ItemStatus::Enrolled => Some(self.enrolled),
            ItemStatus::Delivering => Some(self.delivering_without_progress),
            ItemStatus::Delivered => Some(self.delivered),
            _ => None,
        }
    }
}

/// Items in a working state longer than its deadline, longest first.
pub async fn stuck_items(pool: &MySqlPool, deadlines: &Deadlines) -> Result<Vec<StuckItem>, StoreError> {
    let limits: Vec<(ItemStatus, Duration)> =
        ItemStatus::ALL.iter().filter_map(|s| deadlines.of(*s).map(|d| (*s, d))).collect();
    reports::stuck(pool, &limits).await
}
