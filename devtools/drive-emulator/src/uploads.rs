//! Uploads: resumable sessions (`uploadType=resumable`, then chunks with `Content-Range`) and
//! `uploadType=multipart` in one request.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;
use md5::{Digest, Md5};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::errors::{bad_request, google_error, not_found};
use crate::fields::{DEFAULT_FILE_FIELDS, select};
use crate::files::{NewFile, create_with_media};
use crate::model::{File, Role, Session, random_id};
use crate::multipart::parse_multipart;
use crate::{CHUNK_GRANULE, Emulator, FOLDER_MIME, ResetConnection};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadQuery {
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

pub(crate) async fn start_upload(
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

pub(crate) async fn upload_chunk(
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
