//! Giving a buyer's address read access to an item's Drive folder, and taking back what we
//! gave: the one place finalize, moves and refunds touch Drive permissions.
//!
//! Every permission is recorded per item before Drive is asked (`store::grants`), so nothing
//! we made is ever forgotten, even by a run that died halfway. We remove only permissions we
//! made: an address that could already read (or edit) the folder keeps what it had, and a
//! permission another item still holds (the same buyer's second order of a course shared
//! from the seller's folder) stays until that item lets go too. One address's access to one
//! folder is changed by one run at a time, and that run's reads and writes go on the
//! connection holding the lock: one connection per run, so runs never starve the pool.

use sqlx::MySqlPool;

use crate::adapters::drive::upload::DriveClient;
use crate::adapters::drive::{AccessToken, DriveError};
use crate::store::{StoreError, grants};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("Google Drive: {0}")]
    Drive(#[from] DriveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccessError {
    fn from(e: sqlx::Error) -> Self {
        AccessError::Store(e.into())
    }
}

/// Makes sure `email` can read `folder` for item `item_id`, and answers the permission's id.
/// An address that has access already keeps it as it is (recorded as not ours unless we
/// made it); otherwise we share, silently, or with Drive's own invitation for an address
/// with no Google account (which a silent share cannot reach).
pub async fn grant<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    item_id: u64,
    folder: &str,
    email: &str,
) -> Result<String, AccessError> {
    let mut lock = grants::lock_address(pool, folder, email).await?;
    let existing = drive
        .permissions(folder)
        .await?
        .into_iter()
        .find(|p| p.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(email)));
    let id = match existing {
        Some(p) => {
            let ours = grants::is_ours(lock.conn(), folder, &p.id, email).await?;
            grants::record(lock.conn(), item_id, folder, email, Some(&p.id), ours).await?;
            p.id
        }
        None => {
            // Written before Drive is asked: a crash after Drive made it still leaves a record.
            grants::record(lock.conn(), item_id, folder, email, None, true).await?;
            let made = match drive.share_reader(folder, email, false).await {
                Err(DriveError::Refused { reason, .. }) if reason == "invalidSharingRequest" => {
                    drive.share_reader(folder, email, true).await
                }
                other => other,
            }?;
            grants::record(lock.conn(), item_id, folder, email, Some(&made.id), true).await?;
            made.id
        }
    };
    lock.release().await?;
    Ok(id)
}

/// Takes back every permission item `item_id` holds, but `keep` (the permission an access
/// move just gave): each removed from Drive if we made it and no other item holds it, and
/// let go in any case. Answers how many were removed from Drive. Safe to repeat: a run that
/// failed halfway is finished by the next.
pub async fn take_back<T: AccessToken>(
    pool: &MySqlPool,
    drive: &DriveClient<T>,
    item_id: u64,
    keep: Option<&str>,
) -> Result<usize, AccessError> {
    let mut removed = 0;
    for g in grants::live_for_item(pool, item_id).await? {
        if keep.is_some() && g.permission_id.as_deref() == keep {
            continue;
        }
        let mut lock = grants::lock_address(pool, &g.folder_id, &g.email).await?;
        if g.created_by_us {
            // A grant still waiting for its id: Drive may have made it; find it by address.
            let permission = match &g.permission_id {
                Some(id) => Some(id.clone()),
                None => drive
                    .permissions(&g.folder_id)
                    .await?
                    .into_iter()
                    .find(|p| p.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&g.email)))
                    .map(|p| p.id),
            };
            if let Some(permission) = permission
                && Some(permission.as_str()) != keep
                && !grants::held_by_another(lock.conn(), item_id, &g.folder_id, &permission, &g.email).await?
            {
                drive.unshare(&g.folder_id, &permission).await?;
                removed += 1;
            }
        }
        grants::mark_removed(lock.conn(), g.id).await?;
        lock.release().await?;
    }
    Ok(removed)
}
