//! Drive metadata calls the delivery and finalize stages need: ids, folders, file facts,
//! deletes. (Interim: plain HTTP with the uploader's retries; google-drive3 is to take these
//! over, pointed at the same `api_root`.)

use serde::Deserialize;
use serde_json::json;

use serde::de::DeserializeOwned;

use super::upload::{Attempt, DriveClient, failure, network};
use super::{AccessToken, DriveError};

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacts {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub md5_checksum: Option<String>,
    #[serde(default)]
    pub web_view_link: Option<String>,
}

/// A success's JSON body, or the classified failure.
async fn json_or_failure<R: DeserializeOwned>(response: reqwest::Response) -> Result<R, Attempt> {
    if response.status().is_success() {
        response.json::<R>().await.map_err(network)
    } else {
        Err(failure(response).await)
    }
}

impl<T: AccessToken> DriveClient<T> {
    /// Ids for files not created yet: storing one before creating makes the create safe to
    /// repeat (a second create with it gets 409, not a duplicate).
    pub async fn generate_ids(&self, count: usize) -> Result<Vec<String>, DriveError> {
        #[derive(Deserialize)]
        struct Ids {
            ids: Vec<String>,
        }
        let url = format!("{}/drive/v3/files/generateIds?count={count}&space=drive", self.config.api_root);
        self.with_retries(|| async {
            json_or_failure::<Ids>(self.send(self.http.get(&url)).await?).await.map(|i| i.ids)
        })
        .await
    }

    /// Creates the folder with this id; an existing one (a repeated create) is success.
    pub async fn create_folder(&self, id: &str, name: &str, parent: &str) -> Result<FileFacts, DriveError> {
        let url = format!("{}/drive/v3/files?supportsAllDrives=true&fields=id,name,webViewLink", self.config.api_root);
        let body = json!({"id": id, "name": name, "mimeType": FOLDER_MIME, "parents": [parent]});
        let created = self
            .with_retries(|| async {
                let response = self.send(self.http.post(&url).json(&body)).await?;
                match response.status().as_u16() {
                    200 => response.json::<FileFacts>().await.map(Some).map_err(network),
                    409 => Ok(None),
                    _ => Err(failure(response).await),
                }
            })
            .await?;
        match created {
            Some(facts) => Ok(facts),
            None => self.file(id).await?.ok_or_else(|| DriveError::Refused {
                status: 409,
                reason: "duplicate".into(),
                message: format!("{id} exists but cannot be read"),
            }),
        }
    }

    /// A file's facts, or `None` when it does not exist.
    pub async fn file(&self, id: &str) -> Result<Option<FileFacts>, DriveError> {
        let url = format!(
            "{}/drive/v3/files/{id}?supportsAllDrives=true&fields=id,name,md5Checksum,webViewLink",
            self.config.api_root
        );
        self.with_retries(|| async {
            let response = self.send(self.http.get(&url)).await?;
            match response.status().as_u16() {
                200 => response.json::<FileFacts>().await.map(Some).map_err(network),
                404 => Ok(None),
                _ => Err(failure(response).await),
            }
        })
        .await
    }

    /// Deletes a file (or a folder and what it holds); a missing one is success.
    pub async fn delete(&self, id: &str) -> Result<(), DriveError> {
        self.delete_at(format!("{}/drive/v3/files/{id}?supportsAllDrives=true", self.config.api_root)).await
    }

    /// DELETE, where something already gone is success.
    async fn delete_at(&self, url: String) -> Result<(), DriveError> {
        self.with_retries(|| async {
            let response = self.send(self.http.delete(&url)).await?;
            match response.status().as_u16() {
                200 | 204 | 404 => Ok(()),
                _ => Err(failure(response).await),
            }
        })
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub id: String,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub role: String,
}

impl<T: AccessToken> DriveClient<T> {
    pub async fn permissions(&self, file_id: &str) -> Result<Vec<Permission>, DriveError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            permissions: Vec<Permission>,
        }
        let url = format!(
            "{}/drive/v3/files/{file_id}/permissions?supportsAllDrives=true&fields=permissions(id,emailAddress,role)",
            self.config.api_root
        );
        self.with_retries(|| async {
            json_or_failure::<List>(self.send(self.http.get(&url)).await?).await.map(|l| l.permissions)
        })
        .await
    }

    /// Gives `email` read access. `notify` is Drive's own notification email: off by default
    /// (we send ours), on for addresses with no Google account, where a silent share fails.
    pub async fn share_reader(&self, file_id: &str, email: &str, notify: bool) -> Result<Permission, DriveError> {
        let url = format!(
            "{}/drive/v3/files/{file_id}/permissions?supportsAllDrives=true&sendNotificationEmail={notify}&fields=id,emailAddress,role",
            self.config.api_root
        );
        let body = json!({"role": "reader", "type": "user", "emailAddress": email});
        self.with_retries(|| async { json_or_failure(self.send(self.http.post(&url).json(&body)).await?).await }).await
    }

    pub async fn unshare(&self, file_id: &str, permission_id: &str) -> Result<(), DriveError> {
        self.delete_at(format!(
            "{}/drive/v3/files/{file_id}/permissions/{permission_id}?supportsAllDrives=true",
            self.config.api_root
        ))
        .await
    }
}
