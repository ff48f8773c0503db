//! `permissions.create`, `permissions.list` and `permissions.delete`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::Emulator;
use crate::errors::{bad_request, google_error, not_found};
use crate::fields::select;
use crate::files::{ListQuery, page_of};
use crate::model::Permission;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PermissionQuery {
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

pub(crate) async fn create_permission(
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
    let file = match meta.writable(&id, emu.identity()) {
        Ok(file) => file,
        Err(refused) => return refused,
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
pub(crate) async fn list_permissions(
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

pub(crate) async fn delete_permission(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path((id, pid)): Path<(String, String)>,
) -> Response<Body> {
    if let Err(r) = emu.guard(&headers, false) {
        return r;
    }
    let mut meta = emu.0.meta.lock().unwrap();
    let file = match meta.writable(&id, emu.identity()) {
        Ok(file) => file,
        Err(refused) => return refused,
    };
    let before = file.permissions.len();
    file.permissions.retain(|p| p.id != pid);
    if file.permissions.len() == before {
        return google_error(StatusCode::NOT_FOUND, "global", "notFound", &format!("Permission not found: {pid}."));
    }
    StatusCode::NO_CONTENT.into_response()
}
