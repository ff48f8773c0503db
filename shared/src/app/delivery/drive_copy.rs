//! Delivery from the seller's own Drive. By copy: the buyer's folder and the tree as with S3,
//! each file copied server-side (`files.copy`) with an id generated and stored first, so a
//! repeated copy gets 409 and never a duplicate, and checked against the source (MD5, or size
//! and type for Google-native files). By share: nothing is made; the item's folder is the
//! seller's, which finalize shares with the buyer.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::adapters::drive::meta::{CopyTo, FileFacts};
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::queue::Publisher;
use crate::adapters::source::drive::{self, DriveObject, TreeError};
use crate::adapters::source::{DriveFolder, SourceError};
use crate::store::delivered_files;
use crate::store::items::{self, DeliveryFacts};

/// The app property a Docs Editors file's copy carries: `<item>:<its delivered_files row>`.
const COPY_KEY: &str = "coursedropCopy";

use super::plan::parent_of;
use super::{CopyError, Deliverer, Progress};

impl From<TreeError> for CopyError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Source(e) => CopyError::Source(e),
            TreeError::Drive(e) => CopyError::Drive(e),
        }
    }
}

/// Whether Drive's copy is the source's file: the same MD5 (and size), or for a Google-native
/// file, of which Drive keeps no MD5, the same size and type.
fn same_file(source: &DriveObject, copy: &FileFacts) -> bool {
    match &source.md5 {
        Some(md5) => copy.md5_checksum.as_deref() == Some(md5.as_str()) && copy.size.unwrap_or(0) == source.size,
        None => copy.size.unwrap_or(0) == source.size && copy.mime_type.as_deref() == Some(source.mime_type.as_str()),
    }
}

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    pub(super) async fn work_drive_copy(
        &self,
        item_id: u64,
        facts: &DeliveryFacts,
        folder: &DriveFolder,
    ) -> Result<u64, CopyError> {
        // Listed before anything is made: a course that can't be copied leaves no empty folder.
        let objects = drive::list_tree(&self.drive, folder, self.settings.shortcuts).await?;
        if objects.is_empty() {
            return Err(SourceError::Read(format!("{folder} holds no files; nothing to deliver")).into());
        }
        drive::refuse_copy_protected(&objects)?;
        let folder_id = self.item_folder(item_id, facts).await?;
        let bytes_total: u64 = objects.iter().map(|o| o.size).sum();
        items::set_totals(&self.pool, item_id, objects.len() as u32, bytes_total).await?;
        let folders =
            self.make_tree(item_id, folder_id, objects.iter().map(|o| o.path.as_str()), drive::drive_name).await?;

        let (progress, already) = self.progress_so_far(item_id).await?;
        let mut pending = Vec::with_capacity(objects.len());
        for o in &objects {
            pending.push(self.copy_drive_file(item_id, o, parent_of(&folders, &o.path), &progress));
        }
        self.run_all(item_id, pending, &progress, already).await
    }

    async fn copy_drive_file(
        &self,
        item_id: u64,
        object: &DriveObject,
        parent: String,
        progress: &Progress,
    ) -> Result<(), CopyError> {
        let name = drive::drive_name(object.path.rsplit('/').next().unwrap_or(&object.path));
        for round in 0..2 {
            let row = self.file_row(item_id, &object.path, object.size).await?;
            if row.completed && row.size_bytes == object.size {
                return Ok(());
            }
            let copied = if FileFacts::is_docs_editors(&object.mime_type) {
                self.copy_keyed(item_id, row.id, object, &name, &parent).await
            } else {
                let file_id = self.drive_id_for(&row).await?;
                self.drive.copy(&object.id, CopyTo::Id(&file_id), &name, &parent).await
            };
            let copy = match copied {
                Ok(copy) => copy,
                // Copied by an earlier run that did not record it: check what is there.
                Err(DriveError::Refused { status: 409, .. }) => {
                    let file_id = self.drive_id_for(&row).await?;
                    match self.drive.file(&file_id).await? {
                        Some(copy) => copy,
                        None => {
                            return Err(SourceError::Read(format!(
                                "{} exists under {file_id} but cannot be read",
                                object.path
                            ))
                            .into());
                        }
                    }
                }
                Err(DriveError::Refused { status: 404, .. }) => {
                    return Err(SourceError::Missing(format!("{} (Drive file {})", object.path, object.id)).into());
                }
                Err(DriveError::Refused { status: 403, reason, .. }) if reason == "cannotCopyFile" => {
                    return Err(SourceError::CopyProtected(vec![object.path.clone()]).into());
                }
                Err(e) => return Err(e.into()),
            };
            if FileFacts::is_docs_editors(&object.mime_type) {
                delivered_files::keep_drive_id(&self.pool, row.id, &copy.id).await?;
            }
            if same_file(object, &copy) {
                self.complete(row.id, copy.md5_checksum.as_deref(), object.size, progress, object.size).await?;
                return Ok(());
            }
            tracing::warn!(
                item_id, path = %object.path, source_md5 = ?object.md5, copy_md5 = ?copy.md5_checksum,
                source_size = object.size, copy_size = ?copy.size, round,
                "the copy differs from the source; deleting and copying again"
            );
            if !self.discard(row.id, &copy.id).await? {
                return Ok(());
            }
        }
        Err(DriveError::Checksum {
            local: object.md5.clone().unwrap_or_else(|| format!("{} bytes", object.size)),
            remote: format!("the copy of {} did not match after a redo", object.path),
        }
        .into())
    }

    /// A Docs Editors file's copy, made under an id of Drive's own and marked with the file's
    /// row: a copy an earlier run made and did not record is found by that mark in the parent
    /// folder before anything is copied again, so a crash between the copy and its record
    /// never leaves two.
    async fn copy_keyed(
        &self,
        item_id: u64,
        row_id: u64,
        object: &DriveObject,
        name: &str,
        parent: &str,
    ) -> Result<FileFacts, DriveError> {
        let mark = format!("{item_id}:{row_id}");
        let earlier = self
            .drive
            .children(parent)
            .await?
            .into_iter()
            .find(|f| f.app_properties.get(COPY_KEY).is_some_and(|v| *v == mark));
        let copy = match earlier {
            Some(copy) => copy,
            None => self.drive.copy(&object.id, CopyTo::Keyed { key: COPY_KEY, value: &mark }, name, parent).await?,
        };
        Ok(copy)
    }

    /// Share mode: the seller's folder is the item's; finalize gives the buyer read access to
    /// it, a refund takes that away. Listed all the same, so a folder emptied by mistake is
    /// never handed to a buyer as their course.
    pub(super) async fn work_share(&self, item_id: u64, folder: &DriveFolder) -> Result<u64, CopyError> {
        let facts = self.drive.file(&folder.id).await?.ok_or_else(|| SourceError::Missing(folder.to_string()))?;
        if !facts.is_folder() {
            return Err(SourceError::BadLocation(format!("{folder} is a file, not a folder")).into());
        }
        if facts.can_share == Some(false) {
            return Err(SourceError::CannotShare(folder.to_string()).into());
        }
        let objects = drive::list_tree(&self.drive, folder, self.settings.shortcuts).await?;
        if objects.is_empty() {
            return Err(SourceError::Read(format!("{folder} holds no files; nothing to deliver")).into());
        }
        let bytes_total: u64 = objects.iter().map(|o| o.size).sum();
        items::set_totals(&self.pool, item_id, objects.len() as u32, bytes_total).await?;
        items::use_folder(&self.pool, item_id, &folder.id, facts.web_view_link.as_deref()).await?;
        let progress = Progress { bytes: AtomicU64::new(bytes_total), files: AtomicU32::new(objects.len() as u32) };
        self.write_progress(item_id, &progress).await?;
        Ok(0)
    }
}
