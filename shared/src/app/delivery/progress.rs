//! How far a delivery is: counted in memory, written at most once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::adapters::drive::AccessToken;
use crate::adapters::queue::Publisher;
use crate::store::{StoreError, items};

use super::{CopyError, Deliverer};
use sqlx::MySqlPool;

pub(super) struct Progress {
    pub(super) bytes: AtomicU64,
    pub(super) files: AtomicU32,
}

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// Progress reaches the database at most once a second, however many files are in flight.
    pub(super) fn spawn_progress_writer(&self, item_id: u64, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = write_progress(&pool, item_id, &progress).await;
            }
        })
    }

    pub(super) async fn write_progress(&self, item_id: u64, progress: &Progress) -> Result<(), CopyError> {
        Ok(write_progress(&self.pool, item_id, progress).await?)
    }
}

async fn write_progress(pool: &MySqlPool, item_id: u64, progress: &Progress) -> Result<(), StoreError> {
    items::set_progress(pool, item_id, progress.bytes.load(Ordering::Relaxed), progress.files.load(Ordering::Relaxed))
        .await
}
