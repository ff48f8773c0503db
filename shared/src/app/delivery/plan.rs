//! What to deliver: the buyer's folder, the course's objects, the folder tree, the rows and
//! Drive ids that make every create safe to repeat.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::adapters::drive::AccessToken;
use crate::adapters::queue::Publisher;
use crate::adapters::source::{CourseSource, DeliveryMode, S3Location, SourceError};
use crate::store::delivered_files::{self, DeliveredFile};
use crate::store::items::{self, DeliveryFacts};
use futures_util::{StreamExt, TryStreamExt};

use super::{CopyError, Deliverer, Progress};

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// Copies what is missing; answers the bytes copied by this run.
    pub(super) async fn work(&self, item_id: u64) -> Result<u64, CopyError> {
        let facts = items::delivery_facts(&self.pool, item_id).await?;
        crate::support::spans::record_order_code(&facts.order_code);
        let mode = DeliveryMode::parse(&facts.delivery_mode).map_err(SourceError::from)?;
        match (CourseSource::parse(&facts.source)?, mode) {
            (CourseSource::S3(at), _) => self.work_s3(item_id, &facts, &at).await,
            (CourseSource::Drive(folder), DeliveryMode::Copy) => self.work_drive_copy(item_id, &facts, &folder).await,
            (CourseSource::Drive(folder), DeliveryMode::Share) => self.work_share(item_id, &folder).await,
        }
    }

    async fn work_s3(&self, item_id: u64, facts: &DeliveryFacts, at: &S3Location) -> Result<u64, CopyError> {
        let folder_id = self.item_folder(item_id, facts).await?;
        let objects = self.source.list(at).await?;
        // Never an empty folder for a paid course: a prefix that lists nothing (files moved, a
        // bucket being restored) is retried, and fails the item with this reason if it stays so.
        if objects.is_empty() {
            return Err(SourceError::Read(format!("{} holds no files; nothing to deliver", facts.source)).into());
        }
        let bytes_total: u64 = objects.iter().map(|o| o.size).sum();
        items::set_totals(&self.pool, item_id, objects.len() as u32, bytes_total).await?;
        let folders =
            self.make_tree(item_id, folder_id, objects.iter().map(|o| o.path.as_str()), str::to_string).await?;

        let (progress, already) = self.progress_so_far(item_id).await?;
        // The futures are built in a plain loop: a closure over borrowed items here makes the
        // whole future fail the `Send` check the job's spawn needs.
        let mut pending = Vec::with_capacity(objects.len());
        for o in &objects {
            pending.push(self.copy_file(item_id, at, o, parent_of(&folders, &o.path), &progress));
        }
        self.run_all(item_id, pending, &progress, already).await
    }

    /// The folder tree, parents before children, made with stored ids (a repeat finds each
    /// folder made); answers each folder path's id, `""` being the item's own folder.
    pub(super) async fn make_tree<'p>(
        &self,
        item_id: u64,
        folder_id: String,
        paths: impl Iterator<Item = &'p str>,
        name_of: fn(&str) -> String,
    ) -> Result<HashMap<String, String>, CopyError> {
        // A BTreeSet orders "a/" before "a/b/".
        let mut dirs = BTreeSet::new();
        for path in paths {
            let mut end = 0;
            while let Some(i) = path[end..].find('/') {
                end += i + 1;
                dirs.insert(path[..end].to_string());
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
            self.drive.create_folder(&id, &name_of(name), &parent_id).await?;
            delivered_files::folder_made(&self.pool, row.id).await?;
            folders.insert(dir, id);
        }
        Ok(folders)
    }

    /// What earlier runs of the item delivered (bytes, files), as the counter this run adds to;
    /// and those bytes, to tell this run's share apart.
    pub(super) async fn progress_so_far(&self, item_id: u64) -> Result<(Arc<Progress>, u64), CopyError> {
        let (already, files_done) = delivered_files::done(&self.pool, item_id).await?;
        Ok((Arc::new(Progress { bytes: AtomicU64::new(already), files: AtomicU32::new(files_done) }), already))
    }

    /// Runs the file copies F at a time, writing progress as they go; answers the bytes this
    /// run added.
    pub(super) async fn run_all<F>(
        &self,
        item_id: u64,
        pending: Vec<F>,
        progress: &Arc<Progress>,
        already: u64,
    ) -> Result<u64, CopyError>
    where
        F: Future<Output = Result<(), CopyError>>,
    {
        let writer = self.spawn_progress_writer(item_id, progress.clone());
        let copies = futures_util::stream::iter(pending)
            .buffer_unordered(self.settings.files_in_flight.max(1))
            .try_collect::<Vec<()>>()
            .await;
        writer.abort();
        self.write_progress(item_id, progress).await?;
        copies.map(|_| progress.bytes.load(Ordering::Relaxed).saturating_sub(already))
    }

    /// The buyer's folder for this item: its id is stored before the folder is made.
    pub(super) async fn item_folder(&self, item_id: u64, facts: &DeliveryFacts) -> Result<String, CopyError> {
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

    pub(super) async fn file_row(&self, item_id: u64, path: &str, size: u64) -> Result<DeliveredFile, CopyError> {
        Ok(delivered_files::row(&self.pool, item_id, path, size).await?)
    }

    /// The Drive id this row's object gets, generated and stored on first need.
    pub(super) async fn drive_id_for(&self, row: &DeliveredFile) -> Result<String, CopyError> {
        if let Some(id) = &row.drive_file_id {
            return Ok(id.clone());
        }
        let fresh = self.drive.generate_ids(1).await?.remove(0);
        Ok(delivered_files::keep_drive_id(&self.pool, row.id, &fresh).await?)
    }
}

/// The Drive id of the folder a file at `path` goes in.
pub(super) fn parent_of(folders: &HashMap<String, String>, path: &str) -> String {
    folders[&path[..path.rfind('/').map_or(0, |i| i + 1)]].clone()
}
