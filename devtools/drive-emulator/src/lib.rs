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

mod copy;
mod errors;
mod faults;
mod fields;
mod files;
mod model;
mod multipart;
mod permissions;
pub mod query;
mod seed;
mod token;
mod uploads;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{delete, get, post};
use serde_json::Value;

pub use faults::Faults;
pub use seed::{Seed, SeedShare};

use model::{File, Meta};

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
            .route("/token", post(token::token))
            .route("/emulator/faults", post(faults::set_faults).get(faults::get_faults))
            .route("/drive/v3/files", post(files::create_file).get(files::list_files))
            .route("/drive/v3/files/generateIds", get(files::generate_ids))
            .route("/drive/v3/files/{id}", get(files::get_file).delete(files::delete_file))
            .route("/drive/v3/files/{id}/copy", post(copy::copy_file))
            .route("/emulator/seed", post(seed::seed_file))
            .route(
                "/drive/v3/files/{id}/permissions",
                post(permissions::create_permission).get(permissions::list_permissions),
            )
            .route("/drive/v3/files/{id}/permissions/{pid}", delete(permissions::delete_permission))
            .route("/upload/drive/v3/files", post(uploads::start_upload).put(uploads::upload_chunk))
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
