//! Delivery of one item: the unit the deliver job's SQS loop calls for each message.
//!
//! Claim the item (`enrolled → delivering`, with a lease a crashed worker's successor can take
//! over), make or reuse its Drive folder, list the course's objects, copy them F at a time
//! keeping the folder tree, then `delivering → delivered` with the finalize message. Every
//! Drive object is created with an id generated and stored beforehand, so a repeated create
//! gets 409 and never makes a copy; every file's upload session is stored, so a restarted
//! job resumes from what Drive holds.

use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::queue::Publisher;
use crate::adapters::source::drive::Shortcuts;
use crate::adapters::source::{S3Source, SourceError};
use crate::app::{relay, stage};
use crate::domain::{ItemStatus, Stage};
use crate::store::StoreError;
use crate::store::items::{self, ItemChange};
use sqlx::MySqlPool;
use thiserror::Error;

mod claim;
mod copy;
mod drive_copy;
mod plan;
mod progress;

use progress::Progress;

#[derive(Debug, Clone)]
pub struct DeliverSettings {
    /// Files copied at once per item (`DELIVER_FILES_IN_FLIGHT`, default 4).
    pub files_in_flight: usize,
    /// How long a claim lasts without a heartbeat (`DELIVER_LEASE`, default 120 s).
    pub lease_secs: u32,
    /// Transient failures before the item is failed (`DELIVER_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// Where buyers' folders are made: a shared drive's folder, or `root`.
    pub parent_folder: String,
    /// Shortcuts in a Drive course folder: followed or skipped (`DRIVE_SHORTCUTS`).
    pub shortcuts: Shortcuts,
}

impl Default for DeliverSettings {
    fn default() -> Self {
        DeliverSettings {
            files_in_flight: 4,
            lease_secs: 120,
            max_attempts: 5,
            parent_folder: "root".into(),
            shortcuts: Shortcuts::Follow,
        }
    }
}

pub struct Deliverer<T, P> {
    pub pool: MySqlPool,
    pub drive: DriveClient<T>,
    pub source: S3Source,
    pub publisher: P,
    pub settings: DeliverSettings,
    /// Names the lease holder: the task's id and a counter.
    pub worker: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Nothing to do: the item is not (or no longer) deliverable.
    AlreadyDone(ItemStatus),
    UnknownItem,
    /// Another worker holds a live lease on it.
    Busy,
    /// A transient failure; try again later.
    Retry(String),
    /// Drive's daily upload cap: wait long, without spending an attempt.
    Paused(String),
    /// Given up: the item is `failed` at stage `deliver`.
    Failed(String),
}

#[derive(Debug, Error)]
enum CopyError {
    #[error(transparent)]
    Drive(#[from] DriveError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Verdict {
    Retry(String),
    Pause(String),
    Fail(String),
}

impl CopyError {
    fn verdict(&self) -> Verdict {
        match self {
            CopyError::Drive(DriveError::DailyLimit(m)) => Verdict::Pause(m.clone()),
            // Never retried (FACTS): the shared drive is full, and waiting will not empty it.
            CopyError::Drive(DriveError::Refused { reason, .. }) if reason == "teamDriveFileLimitExceeded" => {
                Verdict::Fail(format!(
                    "the shared drive buyers' folders go in holds Drive's maximum number of items (trash included): {self}. Empty its trash, or point DRIVE_PARENT_FOLDER_ID at a folder in another shared drive, then retry the item"
                ))
            }
            CopyError::Drive(DriveError::Refused { status, .. }) if *status != 409 => Verdict::Fail(self.to_string()),
            CopyError::Drive(DriveError::Checksum { .. }) => Verdict::Fail(self.to_string()),
            CopyError::Source(s) if s.is_permanent() => Verdict::Fail(self.to_string()),
            _ => Verdict::Retry(self.to_string()),
        }
    }
}

/// Whether a write still needs this worker's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    Held,
    Released,
}

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// Delivers one item. Safe to call again at any time: a delivered item is left alone,
    /// and a half-delivered one continues where the last run stopped.
    pub async fn deliver_item(&self, item_id: u64) -> Result<Outcome, StoreError> {
        if let Some(outcome) = self.claim(item_id).await? {
            return Ok(outcome);
        }
        let (heartbeat, mut lease_lost) = self.spawn_heartbeat(item_id);
        let started = std::time::Instant::now();
        // A worker that lost its lease stops mid-copy (what it uploaded is resumable by the
        // new holder) and writes nothing more: every write below carries its lease.
        let result = tokio::select! {
            r = self.work(item_id) => Some(r),
            Ok(()) = &mut lease_lost => None,
        };
        heartbeat.abort();
        let Some(result) = result else { return Ok(Outcome::Busy) };
        match result {
            Ok(copied) => {
                crate::support::metrics::emit(crate::support::metrics::Metric::Delivered {
                    bytes: copied,
                    seconds: started.elapsed().as_secs_f64(),
                });
                let change = ItemChange::new(item_id, ItemStatus::Delivering, ItemStatus::Delivered, &self.worker)
                    .held_by(&self.worker);
                match items::transition_unless_moved(&self.pool, &change).await? {
                    Ok(t) => {
                        relay::publish_all(&self.pool, &self.publisher, t.outbox.as_slice()).await;
                        Ok(Outcome::Delivered)
                    }
                    // Still delivering, but under another worker's lease: it finishes.
                    Err(ItemStatus::Delivering) => Ok(Outcome::Busy),
                    // Revoked while we copied: the refund wins.
                    Err(now) => Ok(Outcome::AlreadyDone(now)),
                }
            }
            Err(e) => match e.verdict() {
                Verdict::Pause(m) => match self.release(item_id, None).await? {
                    Some(_) => Ok(Outcome::Paused(m)),
                    None => Ok(Outcome::Busy),
                },
                Verdict::Fail(m) => self.fail(item_id, &m, Lease::Held).await,
                Verdict::Retry(m) => {
                    let Some(attempts) = self.release(item_id, Some(&m)).await? else { return Ok(Outcome::Busy) };
                    if attempts >= self.settings.max_attempts {
                        // Released just now: no lease left to hold.
                        self.fail(item_id, &format!("gave up after {attempts} attempts: {m}"), Lease::Released).await
                    } else {
                        Ok(Outcome::Retry(m))
                    }
                }
            },
        }
    }

    async fn fail(&self, item_id: u64, reason: &str, lease: Lease) -> Result<Outcome, StoreError> {
        let held_by = (lease == Lease::Held).then_some(self.worker.as_str());
        let failed =
            stage::fail(&self.pool, item_id, ItemStatus::Delivering, Stage::Deliver, reason, &self.worker, held_by)
                .await?;
        Ok(match failed {
            Ok(()) => Outcome::Failed(reason.to_string()),
            Err(ItemStatus::Delivering) => Outcome::Busy,
            Err(now) => Outcome::AlreadyDone(now),
        })
    }
}

impl<T: AccessToken, P: Publisher + Sync> stage::Stage for Deliverer<T, P> {
    const NAME: Stage = Stage::Deliver;

    async fn run(&self, item_id: u64) -> Result<stage::Outcome, StoreError> {
        Ok(match self.deliver_item(item_id).await? {
            Outcome::Delivered => stage::Outcome::Done("delivered".into()),
            Outcome::AlreadyDone(status) => stage::Outcome::Skipped(format!("the item is {status}")),
            Outcome::UnknownItem => stage::Outcome::Skipped("no such item".into()),
            Outcome::Busy => stage::Outcome::Busy("another worker holds a live lease on it".into()),
            Outcome::Retry(reason) => stage::Outcome::Retry(reason),
            Outcome::Paused(reason) => stage::Outcome::Wait(reason),
            Outcome::Failed(reason) => stage::Outcome::Failed(reason),
        })
    }
}
