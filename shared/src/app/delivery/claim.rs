//! Taking an item and holding it: the claim, the lease's heartbeat, release and hand-back.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Deliverer, Outcome};
use crate::adapters::drive::AccessToken;
use crate::adapters::queue::Publisher;
use crate::domain::ItemStatus;
use crate::store::items::{self, ItemChange};
use crate::store::{StoreError, leases};

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// Takes the item: from `enrolled`, or from a `delivering` whose lease has lapsed.
    pub(super) async fn claim(&self, item_id: u64) -> Result<Option<Outcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let change = ItemChange::new(item_id, ItemStatus::Enrolled, ItemStatus::Delivering, &self.worker);
        match items::transition_in(&mut tx, &change).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => return Ok(Some(Outcome::UnknownItem)),
            Err(StoreError::ItemConflict { actual: ItemStatus::Delivering, .. }) => {
                drop(tx);
                // A crashed worker's item: ours once its lease has lapsed.
                let taken =
                    leases::take(&self.pool, item_id, ItemStatus::Delivering, &self.worker, self.settings.lease_secs)
                        .await?;
                return Ok((!taken).then_some(Outcome::Busy));
            }
            Err(StoreError::ItemConflict { actual, .. }) => {
                return Ok(Some(Outcome::AlreadyDone(actual)));
            }
            Err(e) => return Err(e),
        }
        leases::grant_in(&mut tx, item_id, &self.worker, self.settings.lease_secs).await?;
        tx.commit().await?;
        Ok(None)
    }

    /// Keeps the lease alive while the item is worked. The receiver fires when the lease is
    /// lost: a renewal that updates nothing (another worker took the item over), or no renewal
    /// succeeding for a whole lease (the database unreachable: by now another may have it).
    /// The worker must then stop at once.
    pub(super) fn spawn_heartbeat(&self, item_id: u64) -> (tokio::task::JoinHandle<()>, oneshot::Receiver<()>) {
        let (pool, worker, lease) = (self.pool.clone(), self.worker.clone(), self.settings.lease_secs);
        let (lost, lost_rx) = oneshot::channel();
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs((lease / 3).max(1) as u64));
            tick.tick().await;
            let mut renewed = Instant::now();
            loop {
                tick.tick().await;
                match leases::renew(&pool, item_id, ItemStatus::Delivering, &worker, lease).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(item_id, %worker, "the lease is another worker's now; stopping");
                        let _ = lost.send(());
                        return;
                    }
                    Err(e) if renewed.elapsed() >= Duration::from_secs(lease as u64) => {
                        tracing::warn!(item_id, %worker, error = %e, "no heartbeat for a whole lease; stopping");
                        let _ = lost.send(());
                        return;
                    }
                    Err(e) => tracing::warn!(item_id, error = %e, "heartbeat failed; trying again"),
                }
            }
        });
        (handle, lost_rx)
    }

    /// Hands the item back for a later try; with an error, counts an attempt. Returns the
    /// attempts so far, or `None` when the lease was no longer ours (nothing changed).
    pub(super) async fn release(&self, item_id: u64, error: Option<&str>) -> Result<Option<u32>, StoreError> {
        leases::release(&self.pool, item_id, ItemStatus::Delivering, &self.worker, error).await
    }

    /// Gives a claimed item back at once (a stopping worker), so the next can take it without
    /// waiting for the lease to lapse.
    pub async fn hand_back(&self, item_id: u64) -> Result<(), StoreError> {
        // `delivering → enrolled`, while the lease is ours: the next worker claims it as any
        // enrolled item and resumes from what Drive holds. The item's new deliver outbox row
        // is not published: the handed-back message becomes visible at once, and the claim
        // it leads to consumes the row (the sweeper publishes it only if nobody does).
        let change = ItemChange::new(item_id, ItemStatus::Delivering, ItemStatus::Enrolled, &self.worker)
            .because("handed back by a stopping worker")
            .held_by(&self.worker);
        match items::transition(&self.pool, &change).await {
            Ok(_) => Ok(()),
            // Another worker holds it, or it has moved on: nothing of ours to hand back.
            Err(StoreError::ItemConflict { .. } | StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
