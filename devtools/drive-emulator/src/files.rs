//! `files.create` (metadata only; multipart in `uploads`), `files.generateIds`, `files.get`,
//! `files.delete` and `files.list`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{bad_request, google_error, insufficient, not_found};
use crate::fields::{DEFAULT_FILE_FIELDS, FieldsQuery, select};
use crate::model::{File, Role, random_id};
use crate::{Emulator, FOLDER_MIME, query};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewFile {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) mime_type: Option<String>,
    #[serde(default)]
    pub(crate) parents: Vec<String>,
    #[serde(default)]
    pub(crate) app_properties: std::collections::BTreeMap<String, String>,
}

pub(crate) fn parse_metadata(body: &Bytes) -> Result<NewFile, Response<Body>> {
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

impl Emulator {
    /// What creating a file or starting an upload share: the metadata, its parents (My Drive
    /// when none), and the id it will have.
    pub(crate) fn new_file(&self, body: &Bytes) -> Result<(NewFile, Vec<String>, String), Response<Body>> {
        let new = parse_metadata(body)?;
        let parents = if new.parents.is_empty() { vec!["root".to_string()] } else { new.parents.clone() };
        self.check_parents(&parents)?;
        let id = self.take_id(new.id.as_deref())?;
        Ok((new, parents, id))
    }
}

pub(crate) async fn create_file(
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
pub(crate) async fn create_with_media(
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

#[derive(Deserialize)]
pub(crate) struct GenerateIds {
    count: Option<usize>,
}

pub(crate) async fn generate_ids(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Query(q): Query<GenerateIds>,
) -> Response<Body> {
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
pub(crate) struct GetQuery {
    fields: Option<String>,
    alt: Option<String>,
}

pub(crate) async fn get_file(
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

pub(crate) async fn delete_file(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response<Body> {
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
pub(crate) struct ListQuery {
    q: Option<String>,
    pub(crate) page_size: Option<usize>,
    pub(crate) page_token: Option<String>,
    pub(crate) fields: Option<String>,
}

pub(crate) async fn list_files(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Query(lq): Query<ListQuery>,
) -> Response<Body> {
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
pub(crate) fn page_of(emu: &Emulator, asked: usize, token: Option<&str>) -> Result<(usize, usize), Response<Body>> {
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
