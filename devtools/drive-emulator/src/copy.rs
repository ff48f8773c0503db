//! Server-side copies.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;

use crate::errors::{google_error, not_found};
use crate::fields::{DEFAULT_FILE_FIELDS, FieldsQuery, select};
use crate::files::parse_metadata;
use crate::model::{File, Role};
use crate::{DOCS_EDITORS_MIMES, Emulator, FOLDER_MIME};

/// `files.copy`: a new file with the source's bytes, size, type and MD5, made server-side.
pub(crate) async fn copy_file(
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
