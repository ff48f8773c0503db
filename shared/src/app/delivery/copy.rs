//! Copying one file into Drive, resumably, with its MD5 checked.

use std::sync::atomic::Ordering;

use crate::adapters::drive::upload::Held;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::adapters::queue::Publisher;
use crate::adapters::source::{S3Location, SourceError, SourceObject};
use crate::store::delivered_files;
use futures_util::StreamExt;

use super::{CopyError, Deliverer, Progress};
use md5::{Digest, Md5};

impl<T: AccessToken, P: Publisher> Deliverer<T, P> {
    /// MD5 of the object's first `len` bytes, read from the source.
    pub(super) async fn hash_prefix(
        &self,
        at: &S3Location,
        key: &str,
        len: u64,
        hasher: &mut Md5,
    ) -> Result<(), CopyError> {
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

    pub(super) async fn copy_file(
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
                            self.complete(row.id, Some(&local), object.size, progress, object.size).await?;
                            return Ok(());
                        }
                        // A partial or wrong file under our id: removed before the redo, or the
                        // folder would end with two files of this name.
                        tracing::warn!(item_id, path = %object.path, local, ?remote, "the existing file differs; deleting and redoing it");
                        if !self.discard(row.id, &file_id).await? {
                            return Ok(());
                        }
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
                self.complete(row.id, Some(&local), object.size, progress, object.size - counted.min(object.size))
                    .await?;
                return Ok(());
            }
            progress.bytes.fetch_sub(counted, Ordering::Relaxed);
            tracing::warn!(item_id, path = %object.path, local, remote = ?uploaded.md5_checksum, round, "MD5 mismatch; deleting and redoing the file");
            if !self.discard(row.id, &uploaded.id).await? {
                return Ok(());
            }
        }
        Err(DriveError::Checksum {
            local: "(twice)".into(),
            remote: format!("{} did not match after a redo", object.path),
        }
        .into())
    }

    /// Deletes a bad copy and forgets it, so the next round starts the file afresh. Never a
    /// file whose row another worker has completed meanwhile: then nothing is touched and the
    /// answer is `false` (the file is done).
    pub(super) async fn discard(&self, row_id: u64, drive_id: &str) -> Result<bool, CopyError> {
        if delivered_files::is_completed(&self.pool, row_id).await? {
            return Ok(false);
        }
        self.drive.delete(drive_id).await?;
        Ok(delivered_files::redo(&self.pool, row_id).await?)
    }

    pub(super) async fn complete(
        &self,
        row_id: u64,
        md5: Option<&str>,
        size: u64,
        progress: &Progress,
        uncounted: u64,
    ) -> Result<(), CopyError> {
        delivered_files::complete(&self.pool, row_id, md5, size).await?;
        progress.bytes.fetch_add(uncounted, Ordering::Relaxed);
        progress.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
