//! What the emulated Drive holds in memory: files, their owners and permissions, what our
//! identity may do with them, and the upload sessions under way.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use md5::Md5;
use serde::Serialize;
use serde_json::{Value, json};

use crate::errors::{bad_request, google_error, insufficient, not_found};
use crate::{Emulator, FOLDER_MIME};

#[derive(Debug, Clone)]
pub(crate) struct File {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mime_type: String,
    pub(crate) parents: Vec<String>,
    pub(crate) size: u64,
    pub(crate) md5: Option<String>,
    pub(crate) created: chrono::DateTime<chrono::Utc>,
    pub(crate) permissions: Vec<Permission>,
    pub(crate) owner: String,
    pub(crate) copy_requires_writer_permission: bool,
    /// A shortcut's target: its id and type.
    pub(crate) shortcut_target: Option<(String, String)>,
    /// `appProperties`: the creating app's own keys, as set by create or copy.
    pub(crate) app_properties: std::collections::BTreeMap<String, String>,
}

/// What a caller may do with a file: the best of its owner status and every permission on the
/// file or a folder above it (Drive's inheritance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Reader,
    Writer,
    Owner,
}

fn role_named(role: &str) -> Role {
    match role {
        "owner" => Role::Owner,
        "organizer" | "fileOrganizer" | "writer" => Role::Writer,
        _ => Role::Reader,
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Permission {
    pub(crate) kind: &'static str,
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind_of: String,
    pub(crate) role: String,
    pub(crate) email_address: Option<String>,
}

#[derive(Default)]
pub(crate) struct Meta {
    pub(crate) files: HashMap<String, File>,
    pub(crate) order: Vec<String>,
    pub(crate) generated: HashSet<String>,
    pub(crate) tokens: HashSet<String>,
    /// What the token endpoint granted: the grant type and, for a JWT, its claims.
    pub(crate) grants: Vec<Value>,
    pub(crate) sessions: HashMap<String, Arc<tokio::sync::Mutex<Session>>>,
}

impl Meta {
    /// File `id` to change the sharing of, when `who` may (a writer or better), else Drive's
    /// answer: not found when `who` cannot see it, insufficient permissions when only reading.
    pub(crate) fn writable(&mut self, id: &str, who: &str) -> Result<&mut File, Response<Body>> {
        match self.role(id, who) {
            None => return Err(not_found(id)),
            Some(role) if role < Role::Writer => return Err(insufficient(id)),
            Some(_) => {}
        }
        self.files.get_mut(id).ok_or_else(|| not_found(id))
    }

    pub(crate) fn role(&self, id: &str, who: &str) -> Option<Role> {
        let mut best = None;
        let mut todo = vec![id.to_string()];
        let mut seen = HashSet::new();
        while let Some(i) = todo.pop() {
            if !seen.insert(i.clone()) {
                continue;
            }
            let Some(f) = self.files.get(&i) else { continue };
            if f.owner == who {
                return Some(Role::Owner);
            }
            for p in &f.permissions {
                if p.kind_of == "anyone" || p.email_address.as_deref() == Some(who) {
                    best = best.max(Some(role_named(&p.role)));
                }
            }
            todo.extend(f.parents.iter().cloned());
        }
        best
    }

    /// The file's JSON as `who` sees it (capabilities depend on the caller).
    pub(crate) fn json_for(&self, file: &File, who: &str) -> Value {
        file.json(self.role(&file.id, who).unwrap_or(Role::Reader))
    }
}

pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

impl File {
    pub(crate) fn json(&self, role: Role) -> Value {
        let folder = self.mime_type == FOLDER_MIME;
        let mut v = json!({
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": self.parents,
            "trashed": false,
            "createdTime": self.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "webViewLink": if folder {
                format!("https://drive.google.com/drive/folders/{}", self.id)
            } else {
                format!("https://drive.google.com/file/d/{}/view?usp=drivesdk", self.id)
            },
        });
        v["owners"] = json!([{"kind": "drive#user", "emailAddress": self.owner, "me": role == Role::Owner}]);
        v["copyRequiresWriterPermission"] = json!(self.copy_requires_writer_permission);
        v["capabilities"] = json!({
            "canCopy": !folder && (!self.copy_requires_writer_permission || role >= Role::Writer),
            "canShare": role >= Role::Writer,
            "canEdit": role >= Role::Writer,
            "canAddChildren": folder && role >= Role::Writer,
            "canListChildren": folder,
            "canDelete": role == Role::Owner,
        });
        if let Some((id, mime)) = &self.shortcut_target {
            v["shortcutDetails"] = json!({"targetId": id, "targetMimeType": mime});
        }
        if !self.app_properties.is_empty() {
            v["appProperties"] = json!(self.app_properties);
        }
        // Folders and shortcuts have no size; Google-native files (Docs…) have one but no MD5.
        if !folder && self.shortcut_target.is_none() {
            // Drive reports sizes as strings (int64 in JSON).
            v["size"] = json!(self.size.to_string());
            if let Some(md5) = &self.md5 {
                v["md5Checksum"] = json!(md5);
            }
        }
        v
    }
}

impl Emulator {
    /// Every parent must be a folder we can write to; one we cannot see is not found.
    pub(crate) fn check_parents(&self, parents: &[String]) -> Result<(), Response<Body>> {
        let meta = self.0.meta.lock().unwrap();
        let me = &self.0.config.identity;
        for p in parents {
            match (meta.files.get(p), meta.role(p, me)) {
                (Some(_), None) | (None, _) => return Err(not_found(p)),
                (Some(f), _) if f.mime_type != FOLDER_MIME => {
                    return Err(bad_request("invalidParent", &format!("The parent {p} is not a folder.")));
                }
                (Some(_), Some(role)) if role < Role::Writer => return Err(insufficient(p)),
                _ => {}
            }
        }
        if self.0.faults.lock().unwrap().shared_drive_full {
            return Err(google_error(
                StatusCode::FORBIDDEN,
                "global",
                "teamDriveFileLimitExceeded",
                "The file limit for this shared drive has been exceeded.",
            ));
        }
        Ok(())
    }

    pub(crate) fn identity(&self) -> &str {
        &self.0.config.identity
    }

    /// The file, if our identity can see it, and what it may do with it.
    pub(crate) fn visible(&self, id: &str) -> Option<(File, Role)> {
        let meta = self.0.meta.lock().unwrap();
        let role = meta.role(id, self.identity())?;
        meta.files.get(id).cloned().map(|f| (f, role))
    }

    /// Takes an id for a new file: the one asked for (it must come from generateIds and be
    /// unused), or a fresh one.
    pub(crate) fn take_id(&self, wanted: Option<&str>) -> Result<String, Response<Body>> {
        let meta = self.0.meta.lock().unwrap();
        match wanted {
            None => Ok(random_id(33)),
            Some(id) if meta.files.contains_key(id) => Err(google_error(
                StatusCode::CONFLICT,
                "global",
                "duplicate",
                "A file already exists with the provided ID.",
            )),
            Some(id) if !meta.generated.contains(id) => {
                Err(bad_request("invalid", "The provided file ID is not usable."))
            }
            Some(id) => Ok(id.to_string()),
        }
    }

    pub(crate) fn insert(&self, file: File) -> Result<Value, Response<Body>> {
        let mut meta = self.0.meta.lock().unwrap();
        if meta.files.contains_key(&file.id) {
            // Two creates raced for one generated id: the second loses, as on Drive.
            return Err(google_error(
                StatusCode::CONFLICT,
                "global",
                "duplicate",
                "A file already exists with the provided ID.",
            ));
        }
        let v = file.json(Role::Owner);
        meta.order.push(file.id.clone());
        meta.files.insert(file.id.clone(), file);
        Ok(v)
    }
}

/// A resumable upload in progress: what it will create, and what it has received so far.
pub(crate) struct Session {
    pub(crate) name: String,
    pub(crate) parents: Vec<String>,
    pub(crate) mime_type: String,
    pub(crate) file_id: String,
    pub(crate) total: Option<u64>,
    pub(crate) received: u64,
    pub(crate) hasher: Md5,
    pub(crate) path: PathBuf,
    pub(crate) done: Option<String>,
    pub(crate) fields: Option<String>,
}
