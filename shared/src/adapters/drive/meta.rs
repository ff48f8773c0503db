//! Drive metadata through google-drive3: ids, folders, listing, file facts, deletes and
//! permissions. Every call goes through the same retry loop and failure classifier as the
//! uploader, so a 429 or a 403 rate limit here is handled exactly as during an upload.

use std::time::Duration;

use google_drive3::api;

use super::upload::{Attempt, DriveClient, classify, failure, network};
use super::{AccessToken, DriveError, Failure};

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
pub const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// Docs, Sheets, Slides, Forms and the other Google-native types: no bytes, no `md5Checksum`.
pub const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";
/// The hub has no time limit of its own; a call that hangs longer than this is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub id: String,
    pub name: String,
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    pub md5_checksum: Option<String>,
    pub web_view_link: Option<String>,
    /// A shortcut's target: its id and type.
    pub shortcut_target: Option<(String, Option<String>)>,
    /// Whether the caller may copy it (false for a reader when the owner set
    /// `copyRequiresWriterPermission`), and share it.
    pub can_copy: Option<bool>,
    pub can_share: Option<bool>,
    /// Keys we set on files we make (`appProperties`): a copy made without a reserved id is
    /// found again by its key.
    pub app_properties: std::collections::HashMap<String, String>,
}

impl FileFacts {
    fn from_api(f: api::File) -> Self {
        let capabilities = f.capabilities.unwrap_or_default();
        FileFacts {
            id: f.id.unwrap_or_default(),
            name: f.name.unwrap_or_default(),
            mime_type: f.mime_type,
            size: f.size.and_then(|s| u64::try_from(s).ok()),
            md5_checksum: f.md5_checksum,
            web_view_link: f.web_view_link,
            shortcut_target: f.shortcut_details.and_then(|d| d.target_id.map(|id| (id, d.target_mime_type))),
            can_copy: capabilities.can_copy,
            can_share: capabilities.can_share,
            app_properties: f.app_properties.unwrap_or_default(),
        }
    }

    pub fn is_folder(&self) -> bool {
        self.mime_type.as_deref() == Some(FOLDER_MIME)
    }

    pub fn is_shortcut(&self) -> bool {
        self.mime_type.as_deref() == Some(SHORTCUT_MIME)
    }

    /// A Docs Editors file (Docs, Sheets, Slides, Drawings, Forms): copied under an id of
    /// Drive's own.
    pub fn is_docs_editors(mime_type: &str) -> bool {
        DOCS_EDITORS_MIMES.contains(&mime_type)
    }

    /// A Google-native file (Docs, Sheets, Slides…): copied like any file, but Drive keeps no
    /// MD5 of it, so a copy is checked by size and type.
    pub fn is_google_native(&self) -> bool {
        self.mime_type.as_deref().is_some_and(|m| m.starts_with(GOOGLE_APPS_PREFIX))
            && !self.is_folder()
            && !self.is_shortcut()
    }
}

/// How a copy is made once (see [`DriveClient::copy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyTo<'a> {
    Id(&'a str),
    Keyed { key: &'a str, value: &'a str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub email_address: Option<String>,
    pub role: String,
}

impl Permission {
    fn from_api(p: api::Permission) -> Self {
        Permission { id: p.id.unwrap_or_default(), email_address: p.email_address, role: p.role.unwrap_or_default() }
    }
}

const FILE_FIELDS: &str = "id,name,mimeType,size,md5Checksum,webViewLink,shortcutDetails(targetId,targetMimeType),capabilities(canCopy,canShare),appProperties";

/// The Docs Editors types (Docs, Sheets, Slides, Drawings, Forms): Drive refuses a reserved id
/// for them (`generatedIdNotSupported`; Google's create-file guide), so their copies get ids
/// of Drive's own.
pub const DOCS_EDITORS_MIMES: &[&str] = &[
    "application/vnd.google-apps.document",
    "application/vnd.google-apps.spreadsheet",
    "application/vnd.google-apps.presentation",
    "application/vnd.google-apps.drawing",
    "application/vnd.google-apps.form",
];

/// A hub call's error, read as worth another try or final. Drive's JSON error arrives as
/// `BadRequest` whatever its status; `Failure` is a non-JSON answer.
fn hub_failure(e: google_drive3::Error) -> Attempt {
    use google_drive3::Error as E;
    match e {
        E::HttpError(e) => Attempt::Retry { what: format!("network: {e}"), user_rate_limit: false },
        E::Io(e) => Attempt::Retry { what: format!("network: {e}"), user_rate_limit: false },
        E::BadRequest(value) => classify(Failure::from_value(&value)),
        E::Failure(response) => {
            classify(Failure { status: response.status().as_u16(), reason: String::new(), message: String::new() })
        }
        E::MissingToken(e) => Attempt::Fatal(DriveError::Auth(e.to_string())),
        other => Attempt::Fatal(DriveError::Refused {
            status: 0,
            reason: "client".into(),
            message: other.to_string().trim().to_string(),
        }),
    }
}

/// Runs one hub call with a time limit; `Err` is already classified.
async fn call<R>(fut: impl Future<Output = google_drive3::Result<R>>) -> Result<R, Attempt> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(hub_failure),
        Err(_) => Err(Attempt::Retry { what: format!("no answer in {CALL_TIMEOUT:?}"), user_rate_limit: false }),
    }
}

/// The status of a refused call, when it is `status` (a 404 that means "absent", say).
fn refused_with(e: &DriveError, status: u16) -> bool {
    matches!(e, DriveError::Refused { status: s, .. } if *s == status)
}

impl<T: AccessToken> DriveClient<T> {
    /// Ids for files not created yet: storing one before creating makes the create safe to
    /// repeat (a second create with it gets 409, not a duplicate).
    pub async fn generate_ids(&self, count: usize) -> Result<Vec<String>, DriveError> {
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        self.with_retries(|| async {
            let (_, ids) = call(self.hub.files().generate_ids().count(count).space("drive").doit()).await?;
            Ok(ids.ids.unwrap_or_default())
        })
        .await
    }

    /// Creates the folder with this id; an existing one (a repeated create) is success.
    ///
    /// Google documents folder creation as a metadata-only `files.create`: `POST
    /// /drive/v3/files` with a JSON body whose mimeType is the folder type. google-drive3 7 has
    /// no metadata-only create (its `create` always uploads media), and whether Drive accepts
    /// a folder through an upload is not documented, so this is our own request, with the
    /// hub's token and the same retry loop.
    pub async fn create_folder(&self, id: &str, name: &str, parent: &str) -> Result<FileFacts, DriveError> {
        let url = format!("{}/drive/v3/files?supportsAllDrives=true&fields={FILE_FIELDS}", self.config.api_root);
        let metadata = serde_json::json!({"id": id, "name": name, "mimeType": FOLDER_MIME, "parents": [parent]});
        match self.post_for_file(&url, &metadata).await {
            Err(e) if refused_with(&e, 409) => self.file(id).await?.ok_or_else(|| DriveError::Refused {
                status: 409,
                reason: "duplicate".into(),
                message: format!("{id} exists but cannot be read"),
            }),
            other => other,
        }
    }

    /// Copies a file server-side (`files.copy`): no bytes pass through us, whatever its size.
    /// `to` is how the copy is made exactly once: a reserved id (from `generate_ids`, stored
    /// first, so a repeated copy gets 409, `Refused { status: 409 }`, instead of a second
    /// file), or for a Docs Editors file, which Drive copies only under an id of its own, an
    /// app property to find the copy by before copying again.
    pub async fn copy(
        &self,
        source_id: &str,
        to: CopyTo<'_>,
        name: &str,
        parent: &str,
    ) -> Result<FileFacts, DriveError> {
        let url = format!(
            "{}/drive/v3/files/{}/copy?supportsAllDrives=true&fields={FILE_FIELDS}",
            self.config.api_root,
            crate::adapters::sepay::url_encode(source_id)
        );
        let metadata = match to {
            CopyTo::Id(id) => serde_json::json!({"id": id, "name": name, "parents": [parent]}),
            CopyTo::Keyed { key, value } => {
                serde_json::json!({"name": name, "parents": [parent], "appProperties": {key: value}})
            }
        };
        self.post_for_file(&url, &metadata).await
    }

    /// `POST url` with a JSON body, answered by a file resource: our own requests for what
    /// the hub lacks or does not do as documented, in the same retry loop.
    async fn post_for_file(&self, url: &str, body: &serde_json::Value) -> Result<FileFacts, DriveError> {
        self.with_retries(|| async {
            let response = self.send(self.http.post(url).json(body)).await?;
            let status = response.status().as_u16();
            if !response.status().is_success() {
                return Err(failure(response).await);
            }
            let text = response.text().await.map_err(network)?;
            serde_json::from_str::<api::File>(&text).map(FileFacts::from_api).map_err(|e| {
                Attempt::Fatal(DriveError::Refused {
                    status,
                    reason: "badBody".into(),
                    message: format!("{e}: {text:.200}"),
                })
            })
        })
        .await
    }

    /// A file's facts, or `None` when it does not exist.
    pub async fn file(&self, id: &str) -> Result<Option<FileFacts>, DriveError> {
        let got = self
            .with_retries(|| async {
                let get = self.hub.files().get(id).supports_all_drives(true).param("fields", FILE_FIELDS).doit();
                call(get).await.map(|(_, f)| FileFacts::from_api(f))
            })
            .await;
        match got {
            Ok(facts) => Ok(Some(facts)),
            Err(e) if refused_with(&e, 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every page of a list, following `nextPageToken` to the end (a page may hold fewer than
    /// asked): `fetch(token)` is one page's call, retried as any other, answering its items
    /// and the next token.
    async fn every_page<Item, F, Fut>(&self, mut fetch: F) -> Result<Vec<Item>, DriveError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<(Vec<Item>, Option<String>), Attempt>>,
    {
        let mut all = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let (items, next) = self.with_retries(|| fetch(page.clone())).await?;
            all.extend(items);
            match next {
                Some(next) if !next.is_empty() => page = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// What a folder holds (not trashed), every page of it, in name order.
    pub async fn children(&self, folder_id: &str) -> Result<Vec<FileFacts>, DriveError> {
        let q = format!("'{}' in parents and trashed = false", folder_id.replace('\'', "\\'"));
        let fields = format!("nextPageToken,files({FILE_FIELDS})");
        let (q, fields) = (&q, &fields);
        self.every_page(|page| async move {
            let mut list = self
                .hub
                .files()
                .list()
                .q(q)
                .order_by("name")
                .page_size(1000)
                .supports_all_drives(true)
                .include_items_from_all_drives(true)
                .param("fields", fields);
            if let Some(token) = &page {
                list = list.page_token(token);
            }
            let (_, l) = call(list.doit()).await?;
            Ok((l.files.unwrap_or_default().into_iter().map(FileFacts::from_api).collect(), l.next_page_token))
        })
        .await
    }

    /// Deletes a file (or a folder and what it holds); a missing one is success.
    pub async fn delete(&self, id: &str) -> Result<(), DriveError> {
        let deleted = self
            .with_retries(|| async { call(self.hub.files().delete(id).supports_all_drives(true).doit()).await })
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if refused_with(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every permission of a file, every page of it (a shared drive's list stops at 100
    /// without the next page's token).
    pub async fn permissions(&self, file_id: &str) -> Result<Vec<Permission>, DriveError> {
        self.every_page(|page| async move {
            let mut list = self
                .hub
                .permissions()
                .list(file_id)
                .page_size(100)
                .supports_all_drives(true)
                .param("fields", "nextPageToken,permissions(id,emailAddress,role)");
            if let Some(token) = &page {
                list = list.page_token(token);
            }
            let (_, l) = call(list.doit()).await?;
            Ok((l.permissions.unwrap_or_default().into_iter().map(Permission::from_api).collect(), l.next_page_token))
        })
        .await
    }

    /// Gives `email` read access. `notify` is Drive's own notification email: off by default
    /// (we send ours), on for addresses with no Google account, where a silent share fails.
    pub async fn share_reader(&self, file_id: &str, email: &str, notify: bool) -> Result<Permission, DriveError> {
        let permission = api::Permission {
            role: Some("reader".into()),
            type_: Some("user".into()),
            email_address: Some(email.to_string()),
            ..Default::default()
        };
        self.with_retries(|| async {
            let create = self
                .hub
                .permissions()
                .create(permission.clone(), file_id)
                .supports_all_drives(true)
                .send_notification_email(notify)
                .param("fields", "id,emailAddress,role")
                .doit();
            call(create).await.map(|(_, p)| Permission::from_api(p))
        })
        .await
    }

    /// Removes a permission; one already gone is success.
    pub async fn unshare(&self, file_id: &str, permission_id: &str) -> Result<(), DriveError> {
        let deleted = self
            .with_retries(|| async {
                call(self.hub.permissions().delete(file_id, permission_id).supports_all_drives(true).doit()).await
            })
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if refused_with(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
