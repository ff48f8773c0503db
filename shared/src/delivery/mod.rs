//! Delivery of one item: the unit the deliver job's SQS loop calls for each message.
//!
//! Claim the item (`enrolled → delivering`, with a lease a crashed worker's successor can take
//! over), make or reuse its Drive folder, list the course's objects, copy them F at a time
//! keeping the folder tree, then `delivering → delivered` with the finalize message. Every
//! Drive object is created with an id generated and stored beforehand, so a repeated create
//! gets 409 and never makes a copy; every file's upload session is stored, so a restarted
//! job resumes from what Drive holds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::adapters::queue::Publisher;
use crate::domain::{ItemStatus, Stage};
use crate::drive::upload::{DriveClient, Held};
use crate::drive::{AccessToken, DriveError};
use crate::relay;
use crate::source::{S3Location, S3Source, SourceError, SourceObject};
use crate::store::delivered_files::{self, DeliveredFile};
use crate::store::items::{self, DeliveryFacts, ItemChange};
use crate::store::{StoreError, leases};
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use sqlx::MySqlPool;
use thiserror::Error;

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
}

impl Default for DeliverSettings {
    fn default() -> Self {
        DeliverSettings { files_in_flight: 4, lease_secs: 120, max_attempts: 5, parent_folder: "root".into() }
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
            CopyError::Drive(DriveError::Refused { status, .. }) if *status != 409 => Verdict::Fail(self.to_string()),
            CopyError::Drive(DriveError::Checksum { .. }) => Verdict::Fail(self.to_string()),
            CopyError::Source(s) if s.is_permanent() => Verdict::Fail(self.to_string()),
            _ => Verdict::Retry(self.to_string()),
        }
    }
}

struct Progress {
    bytes: AtomicU64,
    files: AtomicU32,
}

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// Delivers one item. Safe to call again at any time: a delivered item is left alone,
    /// and a half-delivered one continues where the last run stopped.
    pub async fn deliver_item(&self, item_id: u64) -> Result<Outcome, StoreError> {
        if let Some(outcome) = self.claim(item_id).await? {
            return Ok(outcome);
        }
        let heartbeat = self.spawn_heartbeat(item_id);
        let started = std::time::Instant::now();
        let result = self.work(item_id).await;
        heartbeat.abort();
        match result {
            Ok(copied) => {
                crate::metrics::emit(crate::metrics::Metric::Delivered {
                    bytes: copied,
                    seconds: started.elapsed().as_secs_f64(),
                });
                let change = ItemChange::new(item_id, ItemStatus::Delivering, ItemStatus::Delivered, &self.worker);
                match items::transition_unless_moved(&self.pool, &change).await? {
                    Ok(t) => {
                        relay::publish_all(&self.pool, &self.publisher, t.outbox.as_slice()).await;
                        Ok(Outcome::Delivered)
                    }
                    // Revoked while we copied: the refund wins.
                    Err(now) => Ok(Outcome::AlreadyDone(now)),
                }
            }
            Err(e) => match e.verdict() {
                Verdict::Pause(m) => {
                    self.release(item_id, None).await?;
                    Ok(Outcome::Paused(m))
                }
                Verdict::Fail(m) => self.fail(item_id, &m).await,
                Verdict::Retry(m) => {
                    let attempts = self.release(item_id, Some(&m)).await?;
                    if attempts >= self.settings.max_attempts {
                        self.fail(item_id, &format!("gave up after {attempts} attempts: {m}")).await
                    } else {
                        Ok(Outcome::Retry(m))
                    }
                }
            },
        }
    }

    /// Takes the item: from `enrolled`, or from a `delivering` whose lease has lapsed.
    async fn claim(&self, item_id: u64) -> Result<Option<Outcome>, StoreError> {
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

    /// Keeps the lease alive while the item is worked.
    fn spawn_heartbeat(&self, item_id: u64) -> tokio::task::JoinHandle<()> {
        let (pool, worker, lease) = (self.pool.clone(), self.worker.clone(), self.settings.lease_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs((lease / 3).max(1) as u64));
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = leases::renew(&pool, item_id, ItemStatus::Delivering, &worker, lease).await;
            }
        })
    }

    /// Hands the item back for a later try; with an error, counts an attempt. Returns the
    /// attempts so far.
    async fn release(&self, item_id: u64, error: Option<&str>) -> Result<u32, StoreError> {
        leases::release(&self.pool, item_id, ItemStatus::Delivering, error).await
    }

    async fn fail(&self, item_id: u64, reason: &str) -> Result<Outcome, StoreError> {
        let change = ItemChange::failure(item_id, ItemStatus::Delivering, Stage::Deliver, reason, &self.worker);
        Ok(match items::transition_unless_moved(&self.pool, &change).await? {
            Ok(_) => Outcome::Failed(reason.to_string()),
            Err(now) => Outcome::AlreadyDone(now),
        })
    }

    /// Copies what is missing; answers the bytes copied by this run.
    async fn work(&self, item_id: u64) -> Result<u64, CopyError> {
        let facts = items::delivery_facts(&self.pool, item_id).await?;
        crate::telemetry::record_order_code(&facts.order_code);
        let at = S3Location::parse(&facts.source)?;
        let folder_id = self.item_folder(item_id, &facts).await?;

        let objects = self.source.list(&at).await?;
        // Never an empty folder for a paid course: a prefix that lists nothing (files moved, a
        // bucket being restored) is retried, and fails the item with this reason if it stays so.
        if objects.is_empty() {
            return Err(SourceError::Read(format!("{} holds no files; nothing to deliver", facts.source)).into());
        }
        let bytes_total: u64 = objects.iter().map(|o| o.size).sum();
        items::set_totals(&self.pool, item_id, objects.len() as u32, bytes_total).await?;

        // The folder tree, parents before children (a BTreeSet orders "a/" before "a/b/").
        let mut dirs = BTreeSet::new();
        for o in &objects {
            let mut end = 0;
            while let Some(i) = o.path[end..].find('/') {
                end += i + 1;
                dirs.insert(o.path[..end].to_string());
            }
        }
        let mut folders: HashMap<String, String> = HashMap::from([(String::new(), folder_id)]);
        for dir in dirs {
            let trimmed = dir.trim_end_matches('/');
            let (parent, name) = match trimmed.rfind('/') {
                Some(i) => (&dir[..=i], &trimmed[i + 1..]),
                None => ("", trimmed),
            };
            let parent_id = folders[parent].clone();
            let row = self.file_row(item_id, &dir, 0).await?;
            let id = self.drive_id_for(&row).await?;
            self.drive.create_folder(&id, name, &parent_id).await?;
            delivered_files::folder_made(&self.pool, row.id).await?;
            folders.insert(dir, id);
        }

        let (already, files_done) = delivered_files::done(&self.pool, item_id).await?;
        let progress = Arc::new(Progress { bytes: AtomicU64::new(already), files: AtomicU32::new(files_done) });
        let writer = self.spawn_progress_writer(item_id, progress.clone());
        // The futures are built in a plain loop: a closure over borrowed items here makes the
        // whole future fail the `Send` check the job's spawn needs.
        let mut pending = Vec::with_capacity(objects.len());
        for o in &objects {
            let parent = folders[&o.path[..o.path.rfind('/').map_or(0, |i| i + 1)]].clone();
            pending.push(self.copy_file(item_id, &at, o, parent, &progress));
        }
        let copies = futures_util::stream::iter(pending)
            .buffer_unordered(self.settings.files_in_flight.max(1))
            .try_collect::<Vec<()>>()
            .await;
        writer.abort();
        self.write_progress(item_id, &progress).await?;
        copies.map(|_| progress.bytes.load(Ordering::Relaxed).saturating_sub(already))
    }

    /// The buyer's folder for this item: its id is stored before the folder is made.
    async fn item_folder(&self, item_id: u64, facts: &DeliveryFacts) -> Result<String, CopyError> {
        let id = match &facts.drive_folder_id {
            Some(id) => id.clone(),
            None => {
                let fresh = self.drive.generate_ids(1).await?.remove(0);
                items::keep_folder_id(&self.pool, item_id, &fresh).await?
            }
        };
        let name = format!("{} — {}", facts.title, facts.order_code);
        let folder = self.drive.create_folder(&id, &name, &self.settings.parent_folder).await?;
        items::set_drive_link(&self.pool, item_id, folder.web_view_link.as_deref()).await?;
        Ok(id)
    }

    async fn file_row(&self, item_id: u64, path: &str, size: u64) -> Result<DeliveredFile, CopyError> {
        Ok(delivered_files::row(&self.pool, item_id, path, size).await?)
    }

    /// The Drive id this row's object gets, generated and stored on first need.
    async fn drive_id_for(&self, row: &DeliveredFile) -> Result<String, CopyError> {
        if let Some(id) = &row.drive_file_id {
            return Ok(id.clone());
        }
        let fresh = self.drive.generate_ids(1).await?.remove(0);
        Ok(delivered_files::keep_drive_id(&self.pool, row.id, &fresh).await?)
    }

    /// MD5 of the object's first `len` bytes, read from the source.
    async fn hash_prefix(&self, at: &S3Location, key: &str, len: u64, hasher: &mut Md5) -> Result<(), CopyError> {
        if len == 0 {
            return Ok(());
        }
        let mut stream = self.source.open(&at.bucket, key, 0).await?;
        let mut seen = 0u64;
        while seen < len {
            let Some(chunk) = stream.next().await else {
                return Err(SourceError::Read(format!("{key} is shorter than {len} bytes")).into());
            };
            let chunk = chunk?;
            let take = chunk.len().min((len - seen) as usize);
            hasher.update(&chunk[..take]);
            seen += take as u64;
        }
        Ok(())
    }

    async fn copy_file(
        &self,
        item_id: u64,
        at: &S3Location,
        object: &SourceObject,
        parent: String,
        progress: &Progress,
    ) -> Result<(), CopyError> {
        let name = object.path.rsplit('/').next().unwrap_or(&object.path);
        for round in 0..2 {
            let row = self.file_row(item_id, &object.path, object.size).await?;
            if row.completed && row.size_bytes == object.size && row.md5.is_some() {
                return Ok(());
            }
            let file_id = self.drive_id_for(&row).await?;
            let mut resume = None;
            if let Some(uri) = &row.upload_session_uri {
                match self.drive.held(uri, object.size).await {
                    Ok(Held::Offset(h)) => resume = Some((uri.clone(), h)),
                    Ok(Held::Complete(_)) | Err(DriveError::SessionGone(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let (session, start) = match resume {
                Some(r) => r,
                None => match self.drive.start_with_id(name, &parent, object.size, Some(&file_id)).await {
                    Ok(uri) => {
                        delivered_files::start_session(&self.pool, row.id, &uri).await?;
                        (uri, 0)
                    }
                    // The file exists: an earlier run finished it but did not record it.
                    Err(DriveError::Refused { status: 409, .. }) => {
                        let mut hasher = Md5::new();
                        self.hash_prefix(at, &object.key, object.size, &mut hasher).await?;
                        let local = hex::encode(hasher.finalize());
                        let remote = self.drive.file(&file_id).await?.and_then(|f| f.md5_checksum);
                        if remote.as_deref() == Some(local.as_str()) {
                            self.complete(row.id, &local, object.size, progress, object.size).await?;
                            return Ok(());
                        }
                        self.redo(row.id).await?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let mut hasher = Md5::new();
            self.hash_prefix(at, &object.key, start, &mut hasher).await?;
            let stream = self.source.open(&at.bucket, &object.key, start).await?;
            progress.bytes.fetch_add(start, Ordering::Relaxed);
            let mut counted = start;
            let uploaded = self
                .drive
                .upload(&session, start, object.size, stream, &mut hasher, &mut |confirmed| {
                    progress.bytes.fetch_add(confirmed.saturating_sub(counted), Ordering::Relaxed);
                    counted = counted.max(confirmed);
                })
                .await;
            let uploaded = match uploaded {
                Ok(f) => f,
                Err(e) => {
                    progress.bytes.fetch_sub(counted, Ordering::Relaxed);
                    if matches!(e, DriveError::SessionGone(_)) {
                        delivered_files::forget_session(&self.pool, row.id).await?;
                    }
                    return Err(e.into());
                }
            };
            let local = hex::encode(hasher.finalize());
            if uploaded.md5_checksum.as_deref() == Some(local.as_str()) {
                self.complete(row.id, &local, object.size, progress, object.size - counted.min(object.size)).await?;
                return Ok(());
            }
            progress.bytes.fetch_sub(counted, Ordering::Relaxed);
            tracing::warn!(item_id, path = %object.path, local, remote = ?uploaded.md5_checksum, round, "MD5 mismatch; deleting and redoing the file");
            self.drive.delete(&uploaded.id).await?;
            self.redo(row.id).await?;
        }
        Err(DriveError::Checksum {
            local: "(twice)".into(),
            remote: format!("{} did not match after a redo", object.path),
        }
        .into())
    }

    /// Forgets a file's Drive object and session so the next round starts it afresh.
    async fn redo(&self, row_id: u64) -> Result<(), CopyError> {
        Ok(delivered_files::redo(&self.pool, row_id).await?)
    }

    async fn complete(
        &self,
        row_id: u64,
        md5: &str,
        size: u64,
        progress: &Progress,
        uncounted: u64,
    ) -> Result<(), CopyError> {
        delivered_files::complete(&self.pool, row_id, md5, size).await?;
        progress.bytes.fetch_add(uncounted, Ordering::Relaxed);
        progress.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Progress reaches the database at most once a second, however many files are in flight.
    fn spawn_progress_writer(&self, item_id: u64, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = write_progress(&pool, item_id, &progress).await;
            }
        })
    }

    async fn write_progress(&self, item_id: u64, progress: &Progress) -> Result<(), CopyError> {
        Ok(write_progress(&self.pool, item_id, progress).await?)
    }
}

async fn write_progress(pool: &MySqlPool, item_id: u64, progress: &Progress) -> Result<(), StoreError> {
    items::set_progress(pool, item_id, progress.bytes.load(Ordering::Relaxed), progress.files.load(Ordering::Relaxed))
        .await
}

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
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
