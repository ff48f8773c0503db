//! A local emulator of the Google Drive v3 API, for the subset coursedrop uses, faithful to
//! Google's documented behaviour where it is awkward:
//!
//! - `files.create`, metadata only or `uploadType=multipart` (folders, or with an id from
//!   `files.generateIds`; a second create with the same id gets 409), `files.get` (also `alt=media`), `files.list` with `q`
//!   and paging, `files.delete` (recursive), `fields` selection, sizes as strings;
//! - resumable uploads: `POST /upload/drive/v3/files?uploadType=resumable` → `Location`;
//!   `PUT` chunks with `Content-Range`; a non-final chunk must be a multiple of 256 KiB; `308`
//!   with `Range` (none when nothing is held); status queries with `bytes */total`; unknown
//!   session → 404; the final answer carries `id, name, size, md5Checksum, parents`;
//! - `files.copy` (server-side: bytes, size and MD5 carried over; an id from generateIds, 409
//!   when it is taken; 404 for a source our identity cannot read; 403 `cannotCopyFile` for a
//!   reader when the owner set `copyRequiresWriterPermission`; Google-native files without
//!   MD5; shortcuts; the daily cap), counted against the same daily cap as uploads;
//! - owners and access: files seeded as another user's (`Emulator::seed`, `POST
//!   /emulator/seed`) are visible only through a permission for our identity on them or a
//!   folder above them; reading needs any role, creating in a folder, sharing or changing
//!   needs writer, deleting needs owner (`capabilities` reports the same);
//! - `permissions.create/list/delete`, including `invalidSharingRequest` for a silent share to
//!   an address with no Google account;
//! - bearer tokens, and `POST /token` for the refresh-token and service-account JWT flows;
//! - fault injection (rates of 429, 503, 403 `rateLimitExceeded`, a connection reset in the
//!   middle of a chunk, a 308 that keeps only part of a chunk; and the daily upload cap),
//!   set at start or at run time with `POST /emulator/faults`.
//!
//! Bytes live on disk under the data directory; metadata lives in memory.

// Helpers return the ready HTTP error as their `Err`: one per request, sent as it is, so
// boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod query;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use base64::Engine;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
pub const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
pub const DOCS_MIME: &str = "application/vnd.google-apps.document";
/// The Docs Editors types: Drive makes their copies under ids of its own only.
pub const DOCS_EDITORS_MIMES: &[&str] = &[
    DOCS_MIME,
    "application/vnd.google-apps.spreadsheet",
    "application/vnd.google-apps.presentation",
    "application/vnd.google-apps.drawing",
    "application/vnd.google-apps.form",
];
/// Who owns seeded files unless told otherwise.
pub const SELLER: &str = "seller@example.com";
/// Our Drive identity, as the emulator's tokens act.
pub const IDENTITY: &str = "coursedrop@coursedrop-emulator.iam.gserviceaccount.com";
/// Every chunk of a resumable upload but the last must be a multiple of this.
pub const CHUNK_GRANULE: usize = 256 * 1024;

/// Rates are probabilities per request, 0.0 to 1.0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub rate_429: f64,
    pub rate_503: f64,
    pub rate_403_rate_limit: f64,
    /// Upload chunks only: keep a prefix of the chunk, then reset the connection.
    pub rate_reset: f64,
    /// Upload chunks only: keep a prefix of the chunk and answer 308 with what is held.
    pub rate_partial: f64,
    /// While true, every upload call answers 403 `userRateLimitExceeded` (the daily cap).
    pub daily_cap_exceeded: bool,
    /// Upload bandwidth of each session, bytes per second (0: as fast as the disk):
    /// a real network's pace, so a run can watch a delivery in progress.
    pub upload_bytes_per_sec: u64,
    /// The next this many upload chunks that carry bytes answer 503 and keep nothing (status
    /// queries are not counted): a run of consecutive failures of an exact length.
    pub fail_next_chunks: u32,
    /// `permissions.create` takes this long before the permission exists (Google's sharing is
    /// not instant): a window in which others list the file's permissions without it.
    pub permission_delay_ms: u64,
    /// Each `files.copy` takes this long (Drive's copies are quick, not instant): a window in
    /// which a job can be stopped mid-course.
    pub copy_delay_ms: u64,
    /// While true, creates and copies answer 403 `teamDriveFileLimitExceeded` (the shared
    /// drive holds its maximum of items).
    pub shared_drive_full: bool,
    /// The next upload chunk is answered only after this long: a connection that stops
    /// answering mid-upload, as a dead link does.
    pub stall_next_chunk_ms: u64,
    /// Lists (files, permissions) answer at most this many a page whatever `pageSize` asked
    /// (0: no cap). Drive documents that a page may hold fewer than asked, and that a
    /// permissions list on a shared drive stops at 100 unless followed by `nextPageToken`.
    pub max_page_size: usize,
}

impl Faults {
    /// The same rate for each kind of fault: `total` split five ways.
    pub fn spread(total: f64) -> Self {
        let r = total / 5.0;
        Faults {
            rate_429: r,
            rate_503: r,
            rate_403_rate_limit: r,
            rate_reset: r,
            rate_partial: r,
            daily_cap_exceeded: false,
            upload_bytes_per_sec: 0,
            fail_next_chunks: 0,
            permission_delay_ms: 0,
            copy_delay_ms: 0,
            shared_drive_full: false,
            stall_next_chunk_ms: 0,
            max_page_size: 0,
        }
    }
}

/// A file or folder of someone else's, for `Emulator::seed`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Seed {
    /// The owner (`seller@example.com` when empty).
    pub owner: String,
    pub parent: Option<String>,
    pub name: String,
    /// `application/octet-stream` unless given; FOLDER_MIME for a folder, DOCS_MIME for a Doc.
    pub mime_type: Option<String>,
    /// Content as text, or as bytes (Rust callers), or this many zero bytes.
    pub text: Option<String>,
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
    pub zeros: Option<u64>,
    /// A Google-native file's reported size.
    pub size: Option<u64>,
    pub share_with: Vec<SeedShare>,
    pub copy_requires_writer_permission: bool,
    /// Makes a shortcut to this id.
    pub shortcut_target: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedShare {
    pub email_address: String,
    /// reader, commenter, writer…
    pub role: String,
}

impl SeedShare {
    pub fn new(email_address: &str, role: &str) -> Self {
        SeedShare { email_address: email_address.into(), role: role.into() }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub faults: Faults,
    /// Bearer tokens accepted without the token endpoint (for `make dev`).
    pub static_tokens: Vec<String>,
    /// Refresh tokens the token endpoint accepts.
    pub refresh_tokens: Vec<String>,
    /// Addresses or `@domains` that have no Google account: a silent share to them fails.
    pub no_google_account: Vec<String>,
    /// Who every accepted token acts as: the owner of what it creates.
    pub identity: String,
}

impl Config {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Config {
            dir: dir.into(),
            faults: Faults::default(),
            static_tokens: vec!["emulator-token".into()],
            refresh_tokens: vec!["emulator-refresh-token".into()],
            no_google_account: vec!["@no-google.example".into()],
            identity: IDENTITY.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct File {
    id: String,
    name: String,
    mime_type: String,
    parents: Vec<String>,
    size: u64,
    md5: Option<String>,
    created: chrono::DateTime<chrono::Utc>,
    permissions: Vec<Permission>,
    owner: String,
    copy_requires_writer_permission: bool,
    /// A shortcut's target: its id and type.
    shortcut_target: Option<(String, String)>,
    /// `appProperties`: the creating app's own keys, as set by create or copy.
    app_properties: std::collections::BTreeMap<String, String>,
}

/// What a caller may do with a file: the best of its owner status and every permission on the
/// file or a folder above it (Drive's inheritance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
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

fn insufficient(id: &str) -> Response<Body> {
    google_error(
        StatusCode::FORBIDDEN,
        "global",
        "insufficientFilePermissions",
        &format!("The user does not have sufficient permissions for file {id}."),
    )
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Permission {
    kind: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind_of: String,
    role: String,
    email_address: Option<String>,
}

struct Session {
    name: String,
    parents: Vec<String>,
    mime_type: String,
    file_id: String,
    total: Option<u64>,
    received: u64,
    hasher: Md5,
    path: PathBuf,
    done: Option<String>,
    fields: Option<String>,
}

#[derive(Default)]
struct Meta {
    files: HashMap<String, File>,
    order: Vec<String>,
    generated: HashSet<String>,
    tokens: HashSet<String>,
    /// What the token endpoint granted: the grant type and, for a JWT, its claims.
    grants: Vec<Value>,
    sessions: HashMap<String, Arc<tokio::sync::Mutex<Session>>>,
}

impl Meta {
    fn role(&self, id: &str, who: &str) -> Option<Role> {
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
    fn json_for(&self, file: &File, who: &str) -> Value {
        file.json(self.role(&file.id, who).unwrap_or(Role::Reader))
    }
}

struct Inner {
    config: Config,
    faults: Mutex<Faults>,
    meta: Mutex<Meta>,
    /// Bytes written by uploads, all sessions together: a resumed upload adds only what was
    /// missing, a restarted one adds the file again.
    written: std::sync::atomic::AtomicU64,
    /// Server-side copies made (`files.copy`), and the bytes they stand for.
    copies: std::sync::atomic::AtomicU64,
    copied_bytes: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Emulator(Arc<Inner>);

/// Marks a response after which the connection must be dropped without an answer.
#[derive(Clone, Copy)]
struct ResetConnection;

fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`.
fn google_error(status: StatusCode, domain: &str, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"domain": domain, "reason": reason, "message": message}],
    }});
    (status, [(header::CONTENT_TYPE, "application/json; charset=UTF-8")], body.to_string()).into_response()
}

fn not_found(id: &str) -> Response<Body> {
    google_error(StatusCode::NOT_FOUND, "global", "notFound", &format!("File not found: {id}."))
}

fn bad_request(reason: &str, message: &str) -> Response<Body> {
    google_error(StatusCode::BAD_REQUEST, "global", reason, message)
}

/// Keeps only the requested fields: `id,name,files(id,name),nextPageToken`; `*` keeps all.
fn select(value: &Value, fields: &str) -> Value {
    let fields = fields.trim();
    if fields.is_empty() || fields == "*" {
        return value.clone();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in fields.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&fields[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&fields[start..]);
    let mut out = Map::new();
    for part in parts {
        let part = part.trim();
        let (name, sub) = match part.find('(') {
            Some(i) if part.ends_with(')') => (&part[..i], Some(&part[i + 1..part.len() - 1])),
            _ => (part, None),
        };
        if let Some(v) = value.get(name) {
            let v = match (sub, v) {
                (Some(sub), Value::Array(items)) => Value::Array(items.iter().map(|i| select(i, sub)).collect()),
                (Some(sub), other) => select(other, sub),
                (None, other) => other.clone(),
            };
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

impl File {
    fn json(&self, role: Role) -> Value {
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

const DEFAULT_FILE_FIELDS: &str = "kind,id,name,mimeType";

#[derive(Deserialize)]
struct FieldsQuery {
    fields: Option<String>,
}

impl Emulator {
    pub fn new(config: Config) -> std::io::Result<Self> {
        std::fs::create_dir_all(config.dir.join("blobs"))?;
        std::fs::create_dir_all(config.dir.join("sessions"))?;
        let faults = Mutex::new(config.faults.clone());
        let mut meta = Meta::default();
        meta.tokens.extend(config.static_tokens.iter().cloned());
        let root = File {
            id: "root".into(),
            name: "My Drive".into(),
            mime_type: FOLDER_MIME.into(),
            parents: vec![],
            size: 0,
            md5: None,
            created: chrono::Utc::now(),
            permissions: vec![],
            owner: config.identity.clone(),
            copy_requires_writer_permission: false,
            shortcut_target: None,
            app_properties: Default::default(),
        };
        meta.files.insert("root".into(), root);
        Ok(Emulator(Arc::new(Inner {
            config,
            faults,
            meta: Mutex::new(meta),
            written: Default::default(),
            copies: Default::default(),
            copied_bytes: Default::default(),
        })))
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.0.faults.lock().unwrap() = faults;
    }

    /// Upload bytes written so far, all sessions together.
    pub fn bytes_written(&self) -> u64 {
        self.0.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Server-side copies so far, and the bytes they stand for (none of which passed through
    /// the client).
    pub fn copies(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.0.copies.load(Relaxed), self.0.copied_bytes.load(Relaxed))
    }

    /// Puts a file or folder in the emulated Drive as someone else's (a seller's course), with
    /// the permissions given; answers its id. Not a Drive API: the seller made these by hand.
    pub fn seed(&self, seed: Seed) -> std::io::Result<String> {
        let id = random_id(33);
        let shortcut_target = match &seed.shortcut_target {
            None => None,
            Some(target) => {
                let meta = self.0.meta.lock().unwrap();
                let mime = meta.files.get(target).map(|f| f.mime_type.clone()).unwrap_or_else(|| FOLDER_MIME.into());
                Some((target.clone(), mime))
            }
        };
        let mime_type = match (&seed.mime_type, &shortcut_target) {
            (_, Some(_)) => SHORTCUT_MIME.to_string(),
            (Some(m), None) => m.clone(),
            (None, None) => "application/octet-stream".into(),
        };
        let folder = mime_type == FOLDER_MIME;
        let native = mime_type.starts_with("application/vnd.google-apps.") && !folder && shortcut_target.is_none();
        let blob = self.blob_path(&id);
        let (size, md5) = if folder || shortcut_target.is_some() {
            (0, None)
        } else if native {
            std::fs::write(&blob, b"")?;
            (seed.size.unwrap_or(4096), None)
        } else if let Some(n) = seed.zeros {
            // Sparse on disk: a 2 GB course file costs no disk, and its MD5 is still real.
            std::fs::File::create(&blob)?.set_len(n)?;
            let zeros = vec![0u8; 1 << 20];
            let mut hasher = Md5::new();
            let mut left = n;
            while left > 0 {
                let take = left.min(zeros.len() as u64) as usize;
                hasher.update(&zeros[..take]);
                left -= take as u64;
            }
            (n, Some(hex::encode(hasher.finalize())))
        } else {
            let bytes = seed.bytes.clone().unwrap_or_else(|| seed.text.clone().unwrap_or_default().into_bytes());
            std::fs::write(&blob, &bytes)?;
            (bytes.len() as u64, Some(hex::encode(Md5::digest(&bytes))))
        };
        let permissions = seed
            .share_with
            .iter()
            .map(|s| Permission {
                kind: "drive#permission",
                id: format!("{:020}", rand::random_range(0..u64::MAX)),
                kind_of: "user".into(),
                role: s.role.clone(),
                email_address: Some(s.email_address.to_lowercase()),
            })
            .collect();
        let file = File {
            id: id.clone(),
            name: seed.name.clone(),
            mime_type,
            parents: seed.parent.clone().into_iter().collect(),
            size,
            md5,
            created: chrono::Utc::now(),
            permissions,
            owner: if seed.owner.is_empty() { SELLER.into() } else { seed.owner.clone() },
            copy_requires_writer_permission: seed.copy_requires_writer_permission,
            shortcut_target,
            app_properties: Default::default(),
        };
        let mut meta = self.0.meta.lock().unwrap();
        meta.order.push(id.clone());
        meta.files.insert(id.clone(), file);
        Ok(id)
    }

    /// The token endpoint's grants so far (`{"grant_type", "claims"?}`), oldest first.
    pub fn token_grants(&self) -> Vec<Value> {
        self.0.meta.lock().unwrap().grants.clone()
    }

    /// A file's bytes on disk, for checks from tests.
    pub fn blob_path(&self, id: &str) -> PathBuf {
        self.0.config.dir.join("blobs").join(id)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/token", post(token))
            .route("/emulator/faults", post(set_faults).get(get_faults))
            .route("/drive/v3/files", post(create_file).get(list_files))
            .route("/drive/v3/files/generateIds", get(generate_ids))
            .route("/drive/v3/files/{id}", get(get_file).delete(delete_file))
            .route("/drive/v3/files/{id}/copy", post(copy_file))
            .route("/emulator/seed", post(seed_file))
            .route("/drive/v3/files/{id}/permissions", post(create_permission).get(list_permissions))
            .route("/drive/v3/files/{id}/permissions/{pid}", delete(delete_permission))
            .route("/upload/drive/v3/files", post(start_upload).put(upload_chunk))
            // Chunks are up to the client's chunk size (16 MiB by default); allow room.
            .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(self.clone())
    }

    /// Serves on `addr` until the process ends. Uses its own accept loop so that a handler can
    /// drop a connection mid-request, as a network fault would.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        let router = self.router();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let router = router.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let response = tower::ServiceExt::oneshot(router, req.map(Body::new))
                            .await
                            .unwrap_or_else(|e: Infallible| match e {});
                        if response.extensions().get::<ResetConnection>().is_some() {
                            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"));
                        }
                        Ok(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    }

    /// Binds 127.0.0.1:`port` (0 for any) and serves in the background; returns the base URL.
    pub async fn spawn(self, port: u16) -> std::io::Result<(String, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(self.serve(listener));
        Ok((format!("http://{addr}"), addr))
    }

    fn authorized(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) if self.0.meta.lock().unwrap().tokens.contains(t) => Ok(()),
            _ => Err(google_error(
                StatusCode::UNAUTHORIZED,
                "global",
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )),
        }
    }

    /// Rolls the dice for the generic faults; `upload` adds the daily cap.
    fn injected(&self, upload: bool) -> Option<Response<Body>> {
        let f = self.0.faults.lock().unwrap().clone();
        if upload && f.daily_cap_exceeded {
            return Some(google_error(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "userRateLimitExceeded",
                "User rate limit exceeded.",
            ));
        }
        let roll: f64 = rand::random();
        if roll < f.rate_429 {
            return Some(google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ));
        }
        if roll < f.rate_429 + f.rate_503 {
            return Some(google_error(StatusCode::SERVICE_UNAVAILABLE, "global", "backendError", "Backend Error"));
        }
        if roll < f.rate_429 + f.rate_503 + f.rate_403_rate_limit {
            return Some(google_error(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ));
        }
        None
    }

    fn guard(&self, headers: &HeaderMap, upload: bool) -> Result<(), Response<Body>> {
        self.authorized(headers)?;
        match self.injected(upload) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// Every parent must be a folder we can write to; one we cannot see is not found.
    fn check_parents(&self, parents: &[String]) -> Result<(), Response<Body>> {
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

    fn identity(&self) -> &str {
        &self.0.config.identity
    }

    /// The file, if our identity can see it, and what it may do with it.
    fn visible(&self, id: &str) -> Option<(File, Role)> {
        let meta = self.0.meta.lock().unwrap();
        let role = meta.role(id, self.identity())?;
        meta.files.get(id).cloned().map(|f| (f, role))
    }

    /// Takes an id for a new file: the one asked for (it must come from generateIds and be
    /// unused), or a fresh one.
    fn take_id(&self, wanted: Option<&str>) -> Result<String, Response<Body>> {
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

    /// What creating a file or starting an upload share: the metadata, its parents (My Drive
    /// when none), and the id it will have.
    fn new_file(&self, body: &Bytes) -> Result<(NewFile, Vec<String>, String), Response<Body>> {
        let new = parse_metadata(body)?;
        let parents = if new.parents.is_empty() { vec!["root".to_string()] } else { new.parents.clone() };
        self.check_parents(&parents)?;
        let id = self.take_id(new.id.as_deref())?;
        Ok((new, parents, id))
    }

    fn insert(&self, file: File) -> Result<Value, Response<Body>> {
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

/// An emulator on 127.0.0.1 (any free port) with its bytes in a fresh temporary directory,
/// removed when this is dropped: what a test needs. Keep it alive as long as the test uses it.
pub struct TempEmulator {
    pub emu: Emulator,
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    dir: PathBuf,
}

impl TempEmulator {
    /// `label` names the directory, to tell which test left one behind after a crash.
    pub async fn start(label: &str) -> std::io::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("{label}-{}-{}", std::process::id(), rand::random_range(0..u64::MAX)));
        let emu = Emulator::new(Config::new(&dir))?;
        let (base, _) = emu.clone().spawn(0).await?;
        Ok(TempEmulator { emu, base, dir })
    }
}

impl Drop for TempEmulator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ token endpoint

async fn token(State(emu): State<Emulator>, Form(form): Form<HashMap<String, String>>) -> Response<Body> {
    let err = |e: &str, d: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e, "error_description": d}))).into_response()
    };
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let ok = form.get("refresh_token").is_some_and(|t| emu.0.config.refresh_tokens.contains(t));
            if !ok {
                return err("invalid_grant", "Token has been expired or revoked.");
            }
            if form.get("client_id").is_none_or(String::is_empty) {
                return err("invalid_request", "Could not determine client ID from request.");
            }
            json!({"grant_type": "refresh_token", "client_id": form["client_id"]})
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            // The signature is not checked (there is no key to check it against); the claims are.
            let claims = form
                .get("assertion")
                .and_then(|a| a.split('.').nth(1))
                .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let Some(claims) = claims else {
                return err("invalid_grant", "Invalid JWT: cannot decode the assertion.");
            };
            let now = chrono::Utc::now().timestamp();
            if claims["iss"].as_str().is_none() || claims["scope"].as_str().is_none() {
                return err("invalid_grant", "Invalid JWT: iss and scope are required.");
            }
            if claims["exp"].as_i64().is_none_or(|exp| exp < now) {
                return err(
                    "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
                );
            }
            json!({"grant_type": "jwt-bearer", "claims": claims})
        }
        _ => return err("unsupported_grant_type", "Invalid grant_type."),
    };
    let access = format!("ya29.emu-{}", random_id(40));
    let mut meta = emu.0.meta.lock().unwrap();
    meta.tokens.insert(access.clone());
    meta.grants.push(grant);
    drop(meta);
    axum::Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

async fn set_faults(State(emu): State<Emulator>, axum::Json(f): axum::Json<Faults>) -> axum::Json<Faults> {
    emu.set_faults(f.clone());
    axum::Json(f)
}

async fn get_faults(State(emu): State<Emulator>) -> axum::Json<Faults> {
    axum::Json(emu.0.faults.lock().unwrap().clone())
}

// ------------------------------------------------------------------ files

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewFile {
    id: Option<String>,
    name: Option<String>,
    mime_type: Option<String>,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    app_properties: std::collections::BTreeMap<String, String>,
}

fn parse_metadata(body: &Bytes) -> Result<NewFile, Response<Body>> {
    if body.is_empty() {
        return Ok(NewFile {
            id: None,
            name: None,
            mime_type: None,
            parents: vec![],
            app_properties: Default::default(),
        });
    }
    serde_json::from_slice(body).map_err(|e| bad_request("parseError", &format!("Parse Error: {e}")))
}

async fn create_file(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Query(q): Query<FieldsQuery>,
    body: Bytes,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let (new, parents, id) = match emu.new_file(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    create_with_media(&emu, new, parents, id, &[], q.fields.as_deref()).await
}

/// Stores a file (or folder) created in one request, metadata only or multipart.
async fn create_with_media(
    emu: &Emulator,
    new: NewFile,
    parents: Vec<String>,
    id: String,
    media: &[u8],
    fields: Option<&str>,
) -> Response<Body> {
    let mime_type = new.mime_type.unwrap_or_else(|| "application/octet-stream".into());
    let is_folder = mime_type == FOLDER_MIME;
    if is_folder && !media.is_empty() {
        return bad_request("invalidContent", "A folder cannot have content.");
    }
    let file = File {
        id: id.clone(),
        name: new.name.unwrap_or_else(|| "Untitled".into()),
        md5: (!is_folder).then(|| hex::encode(Md5::digest(media))),
        mime_type,
        parents,
        size: media.len() as u64,
        created: chrono::Utc::now(),
        permissions: vec![],
        owner: emu.0.config.identity.clone(),
        copy_requires_writer_permission: false,
        shortcut_target: None,
        app_properties: new.app_properties,
    };
    if !is_folder && let Err(e) = tokio::fs::write(emu.blob_path(&id), media).await {
        return google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string());
    }
    match emu.insert(file) {
        Ok(v) => axum::Json(select(&v, fields.unwrap_or(DEFAULT_FILE_FIELDS))).into_response(),
        Err(r) => r,
    }
}

/// Splits a `multipart/related` body (RFC 2387, as Drive's multipart upload sends it) into
/// its metadata part and its media part.
fn parse_multipart(content_type: Option<&str>, body: &[u8]) -> Result<(Bytes, Bytes), Response<Body>> {
    let bad = |m: &str| bad_request("badContent", m);
    let ct = content_type.ok_or_else(|| bad("Content-Type is required for a multipart upload."))?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/related") {
        return Err(bad("A multipart upload must be multipart/related."));
    }
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(|| bad("The multipart Content-Type has no boundary."))?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let Some(first) = find(rest, delimiter.as_bytes()) else {
        return Err(bad("No multipart boundary in the body."));
    };
    rest = &rest[first + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break; // the closing delimiter
        }
        let Some(next) = find(rest, delimiter.as_bytes()) else {
            return Err(bad("The multipart body is not terminated."));
        };
        let part = &rest[..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        // The CRLF before a delimiter belongs to the delimiter.
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            return Err(bad("A multipart part has no header end."));
        };
        parts.push(Bytes::copy_from_slice(&part[split + 4..]));
        rest = &rest[next + delimiter.len()..];
    }
    match <[Bytes; 2]>::try_from(parts) {
        Ok([metadata, media]) => Ok((metadata, media)),
        Err(_) => Err(bad("A multipart upload has exactly two parts: metadata, then media.")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Deserialize)]
struct GenerateIds {
    count: Option<usize>,
}

async fn generate_ids(State(emu): State<Emulator>, headers: HeaderMap, Query(q): Query<GenerateIds>) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let count = q.count.unwrap_or(10);
    if !(1..=1000).contains(&count) {
        return bad_request("invalid", "Invalid value for count: must be between 1 and 1000.");
    }
    let ids: Vec<String> = (0..count).map(|_| random_id(33)).collect();
    emu.0.meta.lock().unwrap().generated.extend(ids.iter().cloned());
    axum::Json(json!({"kind": "drive#generatedIds", "space": "drive", "ids": ids})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetQuery {
    fields: Option<String>,
    alt: Option<String>,
}

async fn get_file(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let Some((file, role)) = emu.visible(&id) else {
        return not_found(&id);
    };
    if q.alt.as_deref() == Some("media") {
        if file.mime_type == FOLDER_MIME {
            return google_error(
                StatusCode::FORBIDDEN,
                "global",
                "fileNotDownloadable",
                "Only files with binary content can be downloaded.",
            );
        }
        return match tokio::fs::File::open(emu.blob_path(&id)).await {
            // Streamed from disk, so a large download never sits in memory.
            Ok(f) => Body::from_stream(tokio_util::io::ReaderStream::new(f)).into_response(),
            Err(_) => not_found(&id),
        };
    }
    axum::Json(select(&file.json(role), q.fields.as_deref().unwrap_or(DEFAULT_FILE_FIELDS))).into_response()
}

async fn delete_file(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let removed = {
        let mut meta = emu.0.meta.lock().unwrap();
        let role = meta.role(&id, emu.identity());
        if !meta.files.contains_key(&id) || id == "root" || role.is_none() {
            return not_found(&id);
        }
        // In My Drive only the owner deletes (a writer may only remove it from a folder).
        if role < Some(Role::Owner) {
            return insufficient(&id);
        }
        // Deleting a folder deletes everything under it, as on Drive.
        let mut doomed = vec![id.clone()];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i].clone();
            doomed.extend(meta.files.values().filter(|f| f.parents.contains(&parent)).map(|f| f.id.clone()));
            i += 1;
        }
        for d in &doomed {
            meta.files.remove(d);
        }
        meta.order.retain(|o| !doomed.contains(o));
        doomed
    };
    for d in removed {
        let _ = tokio::fs::remove_file(emu.blob_path(&d)).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    q: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
    fields: Option<String>,
}

async fn list_files(State(emu): State<Emulator>, headers: HeaderMap, Query(lq): Query<ListQuery>) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let terms = match lq.q.as_deref().map(query::parse).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => return bad_request("invalid", &e.0),
    };
    let (page_size, offset) = match page_of(&emu, lq.page_size.unwrap_or(100).clamp(1, 1000), lq.page_token.as_deref())
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let meta = emu.0.meta.lock().unwrap();
    let matching: Vec<&File> = meta
        .order
        .iter()
        .filter_map(|id| meta.files.get(id))
        .filter(|f| f.id != "root")
        .filter(|f| meta.role(&f.id, emu.identity()).is_some())
        .filter(|f| {
            terms.iter().all(|t| match t {
                query::Term::Name { equal, value } => (&f.name == value) == *equal,
                query::Term::MimeType { equal, value } => (&f.mime_type == value) == *equal,
                query::Term::InParents(p) => f.parents.contains(p),
                // Deleted files are gone, nothing is ever in the trash here.
                query::Term::Trashed(t) => !*t,
            })
        })
        .collect();
    let page: Vec<Value> =
        matching.iter().skip(offset).take(page_size).map(|f| meta.json_for(f, emu.identity())).collect();
    let mut body = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": page});
    if offset + page_size < matching.len() {
        body["nextPageToken"] = json!(format!("emu-{}", offset + page_size));
    }
    let fields = lq.fields.unwrap_or_else(|| "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)".into());
    axum::Json(select(&body, &fields)).into_response()
}

/// A list's page size (capped by `Faults::max_page_size`) and where a page token starts it.
fn page_of(emu: &Emulator, asked: usize, token: Option<&str>) -> Result<(usize, usize), Response<Body>> {
    let cap = emu.0.faults.lock().unwrap().max_page_size;
    let size = if cap > 0 { asked.min(cap) } else { asked };
    let offset = match token {
        None => 0,
        Some(t) => match t.strip_prefix("emu-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return Err(bad_request("invalid", "Invalid Value: pageToken")),
        },
    };
    Ok((size, offset))
}

async fn seed_file(State(emu): State<Emulator>, axum::Json(seed): axum::Json<Seed>) -> Response<Body> {
    match emu.seed(seed) {
        Ok(id) => axum::Json(json!({"id": id})).into_response(),
        Err(e) => google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string()),
    }
}

/// `files.copy`: a new file with the source's bytes, size, type and MD5, made server-side.
async fn copy_file(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<FieldsQuery>,
    body: Bytes,
) -> Response<Body> {
    // Copies count against the daily upload-and-copy cap, as uploads do.
    if let Err(r) = emu.guard(&headers, true) {
        return r;
    }
    let delay = emu.0.faults.lock().unwrap().copy_delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let new = match parse_metadata(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some((source, role)) = emu.visible(&id) else {
        return not_found(&id);
    };
    if source.mime_type == FOLDER_MIME {
        // Documented ("Folders cannot be copied"); the exact error Drive sends is not.
        return google_error(StatusCode::FORBIDDEN, "global", "cannotCopyFile", "Folders cannot be copied.");
    }
    if source.copy_requires_writer_permission && role < Role::Writer {
        return google_error(
            StatusCode::FORBIDDEN,
            "global",
            "cannotCopyFile",
            "This file cannot be copied by the user.",
        );
    }
    // Google's create-file guide: reserved ids are not supported for Docs Editors files
    // (Docs, Sheets, Slides, Drawings, Forms); Drive refuses the copy outright.
    if new.id.is_some() && DOCS_EDITORS_MIMES.contains(&source.mime_type.as_str()) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "global",
            "generatedIdNotSupported",
            "Generated IDs are not supported for this file type.",
        );
    }
    // Without parents the copy goes where the source is (the source's parents we can see).
    let parents = if new.parents.is_empty() { source.parents.clone() } else { new.parents.clone() };
    if let Err(r) = emu.check_parents(&parents) {
        return r;
    }
    let new_id = match emu.take_id(new.id.as_deref()) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let from = emu.blob_path(&id);
    let to = emu.blob_path(&new_id);
    // The bytes are shared, as Drive shares them: a hard link, whatever the size.
    if from.exists()
        && let Err(e) = std::fs::hard_link(&from, &to)
    {
        return google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string());
    }
    let file = File {
        id: new_id,
        name: new.name.unwrap_or_else(|| source.name.clone()),
        mime_type: source.mime_type.clone(),
        parents,
        size: source.size,
        md5: source.md5.clone(),
        created: chrono::Utc::now(),
        permissions: vec![],
        owner: emu.identity().to_string(),
        copy_requires_writer_permission: false,
        shortcut_target: source.shortcut_target.clone(),
        app_properties: new.app_properties,
    };
    match emu.insert(file) {
        Ok(v) => {
            use std::sync::atomic::Ordering::Relaxed;
            emu.0.copies.fetch_add(1, Relaxed);
            emu.0.copied_bytes.fetch_add(source.size, Relaxed);
            axum::Json(select(&v, q.fields.as_deref().unwrap_or(DEFAULT_FILE_FIELDS))).into_response()
        }
        Err(r) => {
            let _ = std::fs::remove_file(&to);
            r
        }
    }
}

// ------------------------------------------------------------------ permissions

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionQuery {
    send_notification_email: Option<bool>,
    fields: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewPermission {
    role: String,
    #[serde(rename = "type")]
    kind_of: String,
    email_address: Option<String>,
}

async fn create_permission(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PermissionQuery>,
    body: Bytes,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let delay = emu.0.faults.lock().unwrap().permission_delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let new: NewPermission = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request("parseError", &format!("Parse Error: {e}")),
    };
    if !["owner", "organizer", "fileOrganizer", "writer", "commenter", "reader"].contains(&new.role.as_str()) {
        return bad_request("invalid", &format!("Invalid value for role: {}", new.role));
    }
    // Drive lists the account's own address, which need not be the one shared with: a
    // googlemail.com address is a gmail.com account.
    let given = new.email_address.clone().unwrap_or_default().to_lowercase();
    let email = match given.strip_suffix("@googlemail.com") {
        Some(local) => format!("{local}@gmail.com"),
        None => given,
    };
    if new.kind_of == "user" && email.is_empty() {
        return bad_request("required", "Required: emailAddress");
    }
    let notify = q.send_notification_email.unwrap_or(true);
    let no_account = emu
        .0
        .config
        .no_google_account
        .iter()
        .any(|a| if a.starts_with('@') { email.ends_with(a.as_str()) } else { &email == a });
    if new.kind_of == "user" && no_account && !notify {
        let message = format!(
            "Bad Request. User message: \"You are trying to invite {email}. Since there is no Google account associated with this email address, you must check the 'Notify people' box to invite this recipient.\""
        );
        return bad_request("invalidSharingRequest", &message);
    }
    let mut meta = emu.0.meta.lock().unwrap();
    match meta.role(&id, emu.identity()) {
        None => return not_found(&id),
        Some(role) if role < Role::Writer => return insufficient(&id),
        Some(_) => {}
    }
    let Some(file) = meta.files.get_mut(&id) else {
        return not_found(&id);
    };
    let permission = match file.permissions.iter_mut().find(|p| p.email_address.as_deref() == Some(email.as_str())) {
        Some(existing) => {
            existing.role = new.role;
            existing.clone()
        }
        None => {
            let p = Permission {
                kind: "drive#permission",
                id: format!("{:020}", rand::random_range(0..u64::MAX)),
                kind_of: new.kind_of,
                role: new.role,
                email_address: (!email.is_empty()).then_some(email),
            };
            file.permissions.push(p.clone());
            p
        }
    };
    let v = serde_json::to_value(&permission).unwrap();
    axum::Json(select(&v, q.fields.as_deref().unwrap_or("kind,id,type,role"))).into_response()
}

/// `permissions.list`: `pageSize` 1–100 (Drive refuses more); without it the whole list on a
/// My Drive file, as Drive answers, unless `max_page_size` caps the page.
async fn list_permissions(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    if q.page_size.is_some_and(|n| !(1..=100).contains(&n)) {
        return bad_request("invalid", "Invalid Value: pageSize");
    }
    let (page_size, offset) = match page_of(&emu, q.page_size.unwrap_or(usize::MAX), q.page_token.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let meta = emu.0.meta.lock().unwrap();
    let (Some(file), Some(_)) = (meta.files.get(&id), meta.role(&id, emu.identity())) else {
        return not_found(&id);
    };
    let page: Vec<&Permission> = file.permissions.iter().skip(offset).take(page_size).collect();
    let mut body = json!({"kind": "drive#permissionList", "permissions": page});
    if offset.saturating_add(page_size) < file.permissions.len() {
        body["nextPageToken"] = json!(format!("emu-{}", offset + page_size));
    }
    axum::Json(select(&body, q.fields.as_deref().unwrap_or("kind,permissions(kind,id,type,role)"))).into_response()
}

async fn delete_permission(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path((id, pid)): Path<(String, String)>,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let mut meta = emu.0.meta.lock().unwrap();
    match meta.role(&id, emu.identity()) {
        None => return not_found(&id),
        Some(role) if role < Role::Writer => return insufficient(&id),
        Some(_) => {}
    }
    let Some(file) = meta.files.get_mut(&id) else {
        return not_found(&id);
    };
    let before = file.permissions.len();
    file.permissions.retain(|p| p.id != pid);
    if file.permissions.len() == before {
        return google_error(StatusCode::NOT_FOUND, "global", "notFound", &format!("Permission not found: {pid}."));
    }
    StatusCode::NO_CONTENT.into_response()
}

// ------------------------------------------------------------------ resumable uploads

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadQuery {
    upload_type: Option<String>,
    // The session URI spells this one with an underscore.
    #[serde(rename = "upload_id")]
    upload_id: Option<String>,
    fields: Option<String>,
}

/// Google documents folders as made by a metadata-only `files.create` and says nothing of a
/// folder sent through an upload endpoint; this emulator refuses it rather than accept what
/// Drive may not.
fn folder_through_upload(new: &NewFile) -> Option<Response<Body>> {
    (new.mime_type.as_deref() == Some(FOLDER_MIME)).then(|| {
        bad_request(
            "badContent",
            "A folder is created with a metadata-only files.create (POST /drive/v3/files), not through an upload.",
        )
    })
}

async fn start_upload(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, true) {
        return r;
    }
    match q.upload_type.as_deref() {
        Some("resumable") => {}
        Some("multipart") => {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let (metadata, media) = match parse_multipart(content_type, &body) {
                Ok(parts) => parts,
                Err(r) => return r,
            };
            let (new, parents, id) = match emu.new_file(&metadata) {
                Ok(n) => n,
                Err(r) => return r,
            };
            if let Some(r) = folder_through_upload(&new) {
                return r;
            }
            return create_with_media(&emu, new, parents, id, &media, q.fields.as_deref()).await;
        }
        _ => return bad_request("invalid", "uploadType must be resumable or multipart."),
    }
    let (new, parents, file_id) = match emu.new_file(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Some(r) = folder_through_upload(&new) {
        return r;
    }
    let total = headers.get("x-upload-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let upload_id = random_id(40);
    let path = emu.0.config.dir.join("sessions").join(&upload_id);
    if let Err(e) = tokio::fs::write(&path, b"").await {
        return google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string());
    }
    let session = Session {
        name: new.name.unwrap_or_else(|| "Untitled".into()),
        parents,
        mime_type: new.mime_type.unwrap_or_else(|| "application/octet-stream".into()),
        file_id,
        total,
        received: 0,
        hasher: Md5::new(),
        path,
        done: None,
        fields: q.fields,
    };
    emu.0.meta.lock().unwrap().sessions.insert(upload_id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let location = format!("http://{host}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}");
    (StatusCode::OK, [(header::LOCATION, location)]).into_response()
}

enum ContentRange {
    /// `bytes */total`: how much do you hold?
    Status { total: Option<u64> },
    /// `bytes a-b/total` (total `*` while unknown).
    Chunk { first: u64, last: u64, total: Option<u64> },
}

fn parse_content_range(v: Option<&str>) -> Option<ContentRange> {
    let spec = v?.trim().strip_prefix("bytes ")?.trim();
    let (range, total) = spec.split_once('/')?;
    let total = if total == "*" { None } else { Some(total.parse().ok()?) };
    if range == "*" {
        return Some(ContentRange::Status { total });
    }
    let (a, b) = range.split_once('-')?;
    let (first, last) = (a.parse().ok()?, b.parse().ok()?);
    (first <= last).then_some(ContentRange::Chunk { first, last, total })
}

/// 308 Resume Incomplete, with `Range` only once something is held.
fn resume_incomplete(received: u64) -> Response<Body> {
    let mut r = Response::builder().status(308);
    if received > 0 {
        r = r.header(header::RANGE, format!("bytes=0-{}", received - 1));
    }
    r.body(Body::empty()).unwrap()
}

async fn upload_chunk(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Response<Body> {
    if let Err(r) = emu.authorized(&headers) {
        return r;
    }
    let Some(upload_id) = q.upload_id.clone() else {
        return bad_request("invalid", "Missing upload_id.");
    };
    // Before the session's lock: the client's status query after giving up must get through.
    let stall = std::mem::take(&mut emu.0.faults.lock().unwrap().stall_next_chunk_ms);
    if stall > 0 && !body.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(stall)).await;
    }
    let session = emu.0.meta.lock().unwrap().sessions.get(&upload_id).cloned();
    let Some(session) = session else {
        return google_error(StatusCode::NOT_FOUND, "global", "notFound", "Not Found");
    };
    // Chunks of one session are taken one at a time.
    let mut s = session.lock().await;
    let fields = q.fields.clone().or(s.fields.clone()).unwrap_or_else(|| DEFAULT_FILE_FIELDS.into());
    if let Some(done) = &s.done {
        let file = emu.0.meta.lock().unwrap().files.get(done).cloned();
        return match file {
            Some(f) => axum::Json(select(&f.json(Role::Owner), &fields)).into_response(),
            None => not_found(done),
        };
    }
    if let Some(r) = emu.injected(true) {
        return r;
    }
    let range = match parse_content_range(headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok())) {
        Some(r) => r,
        None if body.is_empty() => ContentRange::Status { total: None },
        None => return bad_request("badContentRange", "Failed to parse Content-Range header."),
    };
    let (first, last, total) = match range {
        ContentRange::Status { total } => {
            if let (Some(t), None) = (total, s.total) {
                s.total = Some(t);
            }
            if s.total.is_some_and(|t| t == s.received) && s.total.is_some() {
                return complete(&emu, &mut s, &fields).await;
            }
            return resume_incomplete(s.received);
        }
        ContentRange::Chunk { first, last, total } => (first, last, total),
    };
    if body.len() as u64 != last - first + 1 {
        return bad_request("badContentRange", "The Content-Range does not match the length of the body.");
    }
    if let (Some(known), Some(given)) = (s.total, total)
        && known != given
    {
        return bad_request("badContentRange", "The total size does not match the size given before.");
    }
    if let Some(t) = total {
        if last >= t {
            return bad_request("badContentRange", "The Content-Range ends beyond the total size.");
        }
        s.total = Some(t);
    }
    if first > s.received {
        return bad_request(
            "badContentRange",
            &format!("Content-Range starts at {first} but only {} bytes were received.", s.received),
        );
    }
    let is_final = s.total.is_some_and(|t| last + 1 == t);
    if !is_final && !body.len().is_multiple_of(CHUNK_GRANULE) {
        return bad_request(
            "invalid",
            "Invalid request. The number of bytes uploaded is required to be equal or greater than 262144, except for the final request (it's recommended to be the exact multiple of 262144). The received request contained 0 bytes, which does not meet this requirement.",
        );
    }
    {
        let mut f = emu.0.faults.lock().unwrap();
        if f.fail_next_chunks > 0 && !body.is_empty() {
            f.fail_next_chunks -= 1;
            return google_error(StatusCode::SERVICE_UNAVAILABLE, "global", "backendError", "Backend Error");
        }
    }
    // Bytes the server already holds from an earlier attempt are skipped, not written twice.
    let fresh = body.slice((s.received - first) as usize..);

    let (reset, partial, pace) = {
        let f = emu.0.faults.lock().unwrap();
        let roll: f64 = rand::random();
        (roll < f.rate_reset, roll >= f.rate_reset && roll < f.rate_reset + f.rate_partial, f.upload_bytes_per_sec)
    };
    if pace > 0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(fresh.len() as f64 / pace as f64)).await;
    }
    let keep = if (reset || partial) && !fresh.is_empty() {
        // A prefix, in whole 256 KiB units, strictly shorter than what was sent.
        let units = fresh.len().div_ceil(CHUNK_GRANULE);
        rand::random_range(0..units) * CHUNK_GRANULE
    } else {
        fresh.len()
    };
    emu.0.written.fetch_add(keep as u64, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = append(&mut s, &fresh[..keep]).await {
        return google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string());
    }
    if reset {
        let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        r.extensions_mut().insert(ResetConnection);
        return r;
    }
    if !partial && s.total.is_some_and(|t| t == s.received) {
        return complete(&emu, &mut s, &fields).await;
    }
    resume_incomplete(s.received)
}

/// Writes at the session's offset, not at the end of the file: if a cancelled request left
/// stray bytes behind (a client that hung up mid-write), they are overwritten or trimmed,
/// as Drive commits a chunk whole or not at all.
async fn append(s: &mut Session, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncSeekExt;
    if bytes.is_empty() {
        return Ok(());
    }
    let mut f = tokio::fs::OpenOptions::new().write(true).open(&s.path).await?;
    f.seek(std::io::SeekFrom::Start(s.received)).await?;
    f.write_all(bytes).await?;
    f.set_len(s.received + bytes.len() as u64).await?;
    f.flush().await?;
    s.hasher.update(bytes);
    s.received += bytes.len() as u64;
    Ok(())
}

async fn complete(emu: &Emulator, s: &mut Session, fields: &str) -> Response<Body> {
    let trimmed = async {
        tokio::fs::OpenOptions::new().write(true).open(&s.path).await?.set_len(s.received).await?;
        tokio::fs::rename(&s.path, emu.blob_path(&s.file_id)).await
    };
    if let Err(e) = trimmed.await {
        return google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string());
    }
    let file = File {
        id: s.file_id.clone(),
        name: s.name.clone(),
        mime_type: s.mime_type.clone(),
        parents: s.parents.clone(),
        size: s.received,
        md5: Some(hex::encode(s.hasher.clone().finalize())),
        created: chrono::Utc::now(),
        permissions: vec![],
        owner: emu.0.config.identity.clone(),
        copy_requires_writer_permission: false,
        shortcut_target: None,
        app_properties: Default::default(),
    };
    match emu.insert(file) {
        Ok(v) => {
            s.done = Some(s.file_id.clone());
            axum::Json(select(&v, fields)).into_response()
        }
        Err(r) => r,
    }
}
