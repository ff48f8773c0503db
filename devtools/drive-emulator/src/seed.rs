//! Files of someone else's (a seller's course, made by hand): `Emulator::seed` and
//! `POST /emulator/seed`. Not a Drive API.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::json;

use crate::errors::google_error;
use crate::model::{File, Permission, random_id};
use crate::{Emulator, FOLDER_MIME, SELLER, SHORTCUT_MIME};

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

impl Emulator {
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
}

pub(crate) async fn seed_file(State(emu): State<Emulator>, axum::Json(seed): axum::Json<Seed>) -> Response<Body> {
    match emu.seed(seed) {
        Ok(id) => axum::Json(json!({"id": id})).into_response(),
        Err(e) => google_error(StatusCode::INTERNAL_SERVER_ERROR, "global", "internalError", &e.to_string()),
    }
}
