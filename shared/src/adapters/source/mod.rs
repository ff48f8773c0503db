//! The seller's storage: course files under an S3 prefix, listed page by page and read as
//! streams (from an offset, to resume an interrupted upload); or a folder in the seller's own
//! Google Drive, which delivery copies server-side or shares as it is (`drive`).

pub mod drive;

use bytes::Bytes;
use futures_util::Stream;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Ends with `/` unless empty (the whole bucket).
    pub prefix: String,
}

/// Where a course's files are: the catalog's `source` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CourseSource {
    S3(S3Location),
    Drive(DriveFolder),
}

/// A folder in the seller's Drive, by id. Our Drive identity must be able to read it (and,
/// to share it, edit it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveFolder {
    pub id: String,
}

impl DriveFolder {
    /// `drive://<folderId>`, or the folder's address as Drive shows it
    /// (`https://drive.google.com/drive/folders/<id>?usp=sharing`, also with `/u/0/`), which is
    /// what a seller copies from the browser.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let s = s.trim();
        let id = if let Some(rest) = s.strip_prefix("drive://") {
            rest.trim_end_matches('/')
        } else if let Some(rest) =
            s.strip_prefix("https://drive.google.com/").or_else(|| s.strip_prefix("http://drive.google.com/"))
        {
            let path = rest.split(['?', '#']).next().unwrap_or("");
            let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            match segments.iter().position(|p| *p == "folders") {
                Some(i) if i + 1 < segments.len() => segments[i + 1],
                _ => return Err(SourceError::BadLocation(s.into())),
            }
        } else {
            return Err(SourceError::BadLocation(s.into()));
        };
        // Drive ids are URL-safe base64 characters; anything else is a typo or a wrong link.
        let valid =
            (10..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SourceError::BadLocation(s.into()));
        }
        Ok(DriveFolder { id: id.to_string() })
    }
}

impl std::fmt::Display for DriveFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "drive://{}", self.id)
    }
}

impl CourseSource {
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        if s.trim().starts_with("s3://") {
            S3Location::parse(s).map(CourseSource::S3)
        } else {
            DriveFolder::parse(s).map(CourseSource::Drive)
        }
    }
}

impl std::fmt::Display for CourseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CourseSource::S3(at) => at.fmt(f),
            CourseSource::Drive(folder) => folder.fmt(f),
        }
    }
}

pub use crate::domain::course::{DeliveryMode, UnknownDeliveryMode};

impl From<UnknownDeliveryMode> for SourceError {
    fn from(e: UnknownDeliveryMode) -> Self {
        SourceError::BadLocation(e.to_string())
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("{0:?} is not an s3://bucket/prefix/ location or a drive://<folderId> folder")]
    BadLocation(String),
    #[error("source object {0} does not exist")]
    Missing(String),
    #[error("reading the source failed: {0}")]
    Read(String),
    #[error(
        "source objects {first} and {second} would be the same file in Drive (they differ only by empty path segments); rename one"
    )]
    Collision { first: String, second: String },
    /// Drive files our identity may read but not copy: the owner turned on "viewers and
    /// commenters can't download, print or copy" (`copyRequiresWriterPermission`).
    #[error(
        "{} cannot be copied: its owner forbids copying by viewers (copyRequiresWriterPermission). In Drive, open Share, then the settings gear, and tick \"Viewers and commenters can see the option to download, print, and copy\"; or give our Drive identity editor access to the course folder",
        .0.join(", ")
    )]
    CopyProtected(Vec<String>),
    /// A shortcut whose target our identity cannot read.
    #[error(
        "the shortcut {path} points to {target}, which our Drive identity cannot read; share the target with it, or remove the shortcut"
    )]
    BrokenShortcut { path: String, target: String },
    /// The seller's folder can be read but not shared by our identity (share mode).
    #[error(
        "{0} can be read but not shared by our Drive identity; give it editor access to the folder, or deliver by copy"
    )]
    CannotShare(String),
}

/// An object's path under the course prefix, as the buyer's folder tree will have it: empty
/// segments (a leading `/`, a `//`) dropped, so they never become empty-named or duplicate
/// folders. `None` for a folder marker (a key ending in `/`) or a key with no name at all.
pub fn relative_path(key: &str, prefix: &str) -> Option<String> {
    if key.ends_with('/') {
        return None;
    }
    let path = key.strip_prefix(prefix).unwrap_or(key);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (!segments.is_empty()).then(|| segments.join("/"))
}

impl SourceError {
    /// A missing object or a bad location will not fix itself by retrying.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, SourceError::Read(_))
    }
}

impl S3Location {
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let rest = s.trim().strip_prefix("s3://").ok_or_else(|| SourceError::BadLocation(s.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(SourceError::BadLocation(s.into()));
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        Ok(S3Location { bucket: bucket.into(), prefix })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    pub key: String,
    /// The key below the prefix: the path the file gets in the buyer's folder.
    pub path: String,
    pub size: u64,
}

/// S3 moves whole course files: a limit on the whole operation (right for SQS, whose calls
/// are small and must fail fast) would cut large transfers off. Connecting still fails fast.
pub fn s3_timeouts() -> aws_config::timeout::TimeoutConfig {
    // Disabled explicitly: left unset, the shared configuration's limits would still apply.
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .disable_operation_timeout()
        .disable_operation_attempt_timeout()
        .build()
}

#[derive(Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
    page_size: i32,
}

fn read_error<E: std::error::Error + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> SourceError
where
    aws_sdk_s3::error::SdkError<E>: std::error::Error,
{
    SourceError::Read(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
}

impl S3Source {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Source { client, page_size: 1000 }
    }

    /// Listing page size (S3's maximum is 1000); smaller in tests, to exercise paging.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.clamp(1, 1000);
        self
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Makes the bucket unless it exists (for local seeding: demo, bench, tests).
    pub async fn ensure_bucket(&self, bucket: &str, region: &str) -> Result<(), SourceError> {
        if self.client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
            .build();
        match self.client.create_bucket().bucket(bucket).create_bucket_configuration(location).send().await {
            Ok(_) => Ok(()),
            // Made by someone else between our check and our create (two local runs starting
            // at once): it exists, which is all this asks.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you()) => Ok(()),
            Err(e) => Err(read_error(e)),
        }
    }

    /// Every object under the prefix, page by page, in key order. Folder markers (keys ending
    /// in `/`) are skipped: the folder tree comes from the paths.
    pub async fn list(&self, at: &S3Location) -> Result<Vec<SourceObject>, SourceError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&at.bucket)
                .prefix(&at.prefix)
                .max_keys(self.page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(s) if s.is_no_such_bucket() => SourceError::Missing(format!("s3://{}", at.bucket)),
                    _ => read_error(e),
                })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some(path) = relative_path(key, &at.prefix) else { continue };
                objects.push(SourceObject { key: key.to_string(), path, size: o.size().unwrap_or(0).max(0) as u64 });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => {
                    // Two keys that differ only by empty segments ("a//b" and "a/b") would be
                    // one file in Drive: the seller must rename one, so say which.
                    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
                    for o in &objects {
                        if let Some(first) = seen.insert(o.path.as_str(), o.key.as_str()) {
                            return Err(SourceError::Collision { first: first.to_string(), second: o.key.clone() });
                        }
                    }
                    return Ok(objects);
                }
            }
        }
    }

    /// The object's bytes from `from` on, as a stream that never holds more than S3's own
    /// read buffer.
    pub async fn open(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, SourceError>> + Send + Unpin + use<>, SourceError> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if from > 0 {
            request = request.range(format!("bytes={from}-"));
        }
        let object = request.send().await.map_err(|e| match e.as_service_error() {
            Some(s) if s.is_no_such_key() => SourceError::Missing(format!("s3://{bucket}/{key}")),
            _ => read_error(e),
        })?;
        Ok(Box::pin(futures_util::stream::unfold(object.body, |mut body| async move {
            match body.next().await {
                None => None,
                Some(Ok(bytes)) => Some((Ok(bytes), body)),
                Some(Err(e)) => Some((Err(SourceError::Read(e.to_string())), body)),
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            S3Location::parse("s3://seller-bucket/courses/rust-101").unwrap(),
            S3Location { bucket: "seller-bucket".into(), prefix: "courses/rust-101/".into() }
        );
        assert_eq!(S3Location::parse("s3://seller-bucket/").unwrap().prefix, "");
        assert_eq!(S3Location::parse("s3://seller-bucket").unwrap().prefix, "");
        for bad in ["", "https://x/y", "s3://", "s3://UPPER/x", "s3://ab/x"] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_drive_folders_as_ids_or_as_the_browser_shows_them() {
        let id = "1AbC-dEf_0123456789xyz";
        for given in [
            format!("drive://{id}"),
            format!("drive://{id}/"),
            format!("https://drive.google.com/drive/folders/{id}"),
            format!("https://drive.google.com/drive/folders/{id}?usp=sharing"),
            format!("https://drive.google.com/drive/u/0/folders/{id}"),
        ] {
            assert_eq!(
                CourseSource::parse(&given).unwrap(),
                CourseSource::Drive(DriveFolder { id: id.into() }),
                "{given}"
            );
        }
        assert_eq!(CourseSource::parse(&format!("drive://{id}")).unwrap().to_string(), format!("drive://{id}"));
        for bad in ["drive://", "drive://short", "drive://has space in it", "https://drive.google.com/file/d/x/view"] {
            assert!(CourseSource::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DeliveryMode::parse("Share").unwrap(), DeliveryMode::Share);
        assert!(DeliveryMode::parse("link").is_err());
    }
}
