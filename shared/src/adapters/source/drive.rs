//! A course kept in the seller's own Google Drive: the folder tree as our Drive identity sees
//! it, walked once per delivery. Nothing is downloaded: delivery copies each file server-side
//! (`files.copy`) or shares the folder itself.

use std::collections::HashSet;

use thiserror::Error;

use super::{DriveFolder, SourceError};
use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};

/// What a shortcut in the course folder becomes (`DRIVE_SHORTCUTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shortcuts {
    /// Delivered as its target (a file, or a folder's whole tree), under the shortcut's name.
    #[default]
    Follow,
    /// Left out, with a warning.
    Skip,
}

impl std::str::FromStr for Shortcuts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "follow" => Ok(Shortcuts::Follow),
            "skip" => Ok(Shortcuts::Skip),
            other => Err(format!("{other:?}: follow or skip")),
        }
    }
}

/// One file of the course, as delivery copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveObject {
    /// The file to copy: a followed shortcut's target.
    pub id: String,
    /// Its path in the buyer's folder (names as the seller sees them).
    pub path: String,
    /// Drive's size; Google-native files (Docs…) report theirs too, folders and shortcuts none.
    pub size: u64,
    /// `None` for Google-native files: Drive keeps no MD5 of them.
    pub md5: Option<String>,
    pub mime_type: String,
    /// False when the owner forbids copying by readers (`copyRequiresWriterPermission`).
    pub can_copy: bool,
}

#[derive(Debug, Error)]
pub enum TreeError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Drive(#[from] DriveError),
}

/// A name as a path segment: Drive allows `/` in names, our paths use it as the separator.
fn segment(name: &str) -> String {
    let cleaned = name.replace('/', "\u{2215}");
    if cleaned.trim().is_empty() { "untitled".into() } else { cleaned }
}

/// The name a path segment stands for in Drive: a `/` the seller put in a name is written
/// `∕` (U+2215) inside our paths, and is a `/` again in the buyer's copy. (A name that really
/// holds a `∕` is delivered with a `/`: the one thing the round trip changes.)
pub fn drive_name(segment: &str) -> String {
    segment.replace('\u{2215}', "/")
}

/// `name`, or `name (2).ext` when the folder already has one of that name: Drive allows two
/// files of one name in a folder, a path can't.
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name.as_str(), String::new()),
    };
    (2..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| taken.insert(candidate.clone()))
        .expect("an unused name")
}

/// Every file under the folder, depth first, paths sorted; shortcuts followed or skipped as
/// `shortcuts` says. A folder reached twice (a shortcut to an ancestor) is walked once.
pub async fn list_tree<T: AccessToken>(
    drive: &DriveClient<T>,
    root: &DriveFolder,
    shortcuts: Shortcuts,
) -> Result<Vec<DriveObject>, TreeError> {
    let top = drive.file(&root.id).await?.ok_or_else(|| SourceError::Missing(root.to_string()))?;
    if !top.is_folder() {
        return Err(SourceError::BadLocation(format!("{root} is a file, not a folder")).into());
    }
    let mut out = Vec::new();
    let mut walked = HashSet::from([root.id.clone()]);
    let mut todo = vec![(root.id.clone(), String::new())];
    while let Some((folder, prefix)) = todo.pop() {
        let mut children = drive.children(&folder).await?;
        // Drive orders by name; ties by id, so a renamed duplicate keeps its name next time.
        children.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        let mut taken = HashSet::new();
        for child in children {
            let name = segment(&child.name);
            let facts = if child.is_shortcut() {
                let path = format!("{prefix}{name}");
                let Some((target, _)) = child.shortcut_target.clone() else {
                    tracing::warn!(%path, "a shortcut without a target; skipped");
                    continue;
                };
                if shortcuts == Shortcuts::Skip {
                    tracing::warn!(%path, %target, "shortcut skipped (DRIVE_SHORTCUTS=skip)");
                    continue;
                }
                match drive.file(&target).await? {
                    Some(t) if !t.is_shortcut() => t,
                    _ => return Err(SourceError::BrokenShortcut { path, target }.into()),
                }
            } else {
                child
            };
            let path = format!("{prefix}{}", unique(name, &mut taken));
            if facts.is_folder() {
                if walked.insert(facts.id.clone()) {
                    todo.push((facts.id, format!("{path}/")));
                } else {
                    tracing::warn!(%path, "a folder reached twice (a shortcut to it); delivered once");
                }
                continue;
            }
            out.push(DriveObject {
                size: facts.size.unwrap_or(0),
                md5: facts.md5_checksum.clone(),
                mime_type: facts.mime_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                can_copy: facts.can_copy.unwrap_or(true),
                id: facts.id,
                path,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The files copying would be refused for, as one error naming them all.
pub fn refuse_copy_protected(objects: &[DriveObject]) -> Result<(), SourceError> {
    let protected: Vec<String> = objects.iter().filter(|o| !o.can_copy).map(|o| o.path.clone()).collect();
    if protected.is_empty() { Ok(()) } else { Err(SourceError::CopyProtected(protected)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_get_numbered_and_slashes_stay_in_the_name() {
        let mut taken = HashSet::new();
        assert_eq!(unique("bai-1 (2).mp4".into(), &mut taken), "bai-1 (2).mp4");
        assert_eq!(unique("bai-1.mp4".into(), &mut taken), "bai-1.mp4");
        assert_eq!(unique("bai-1.mp4".into(), &mut taken), "bai-1 (3).mp4");
        assert_eq!(unique("bai-1.mp4".into(), &mut taken), "bai-1 (4).mp4");
        assert_eq!(unique("notes".into(), &mut taken), "notes");
        assert_eq!(unique("notes".into(), &mut taken), "notes (2)");
        assert_eq!(segment("a/b"), "a\u{2215}b");
        assert_eq!(drive_name(&segment("Bài 1/2: mở đầu")), "Bài 1/2: mở đầu");
        assert_eq!(segment("  "), "untitled");
        assert_eq!("skip".parse::<Shortcuts>(), Ok(Shortcuts::Skip));
        assert!("maybe".parse::<Shortcuts>().is_err());
    }
}
