//! Staff accounts, their one-time sign-in links and sessions, and the audit of what staff did
//! outside any order. Times are the database's (`NOW(3)`), so every function agrees on them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;
use crate::domain::staff::StaffRole;

#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct StaffMember {
    pub id: u64,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: StaffRole,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

const MEMBER: &str = "SELECT id, email, role, created_by, created_at, disabled_at FROM staff";

/// Adds an account, or gives a disabled one back (in the role asked); `None` when the
/// address has an active account already.
pub async fn add(
    pool: &MySqlPool,
    email: &str,
    role: StaffRole,
    actor: &str,
) -> Result<Option<StaffMember>, StoreError> {
    let mut tx = pool.begin().await?;
    let added = sqlx::query("INSERT IGNORE INTO staff (email, role, created_by) VALUES (?, ?, ?)")
        .bind(email)
        .bind(role.as_str())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    let action = if added.rows_affected() == 1 {
        "staff.add"
    } else {
        let back =
            sqlx::query("UPDATE staff SET disabled_at = NULL, role = ? WHERE email = ? AND disabled_at IS NOT NULL")
                .bind(role.as_str())
                .bind(email)
                .execute(&mut *tx)
                .await?;
        if back.rows_affected() == 0 {
            return Ok(None);
        }
        "staff.enable"
    };
    audit(&mut tx, actor, action, Some(email), Some(role.as_str())).await?;
    let member = sqlx::query_as(sqlx::AssertSqlSafe(format!("{MEMBER} WHERE email = ?")))
        .bind(email)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(member))
}

/// Changes an active account's role; `false` when there is none. Its sessions carry on in
/// the new role from their next request.
pub async fn set_role(pool: &MySqlPool, email: &str, role: StaffRole, actor: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let found: Option<(u64,)> =
        sqlx::query_as("SELECT id FROM staff WHERE email = ? AND disabled_at IS NULL FOR UPDATE")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((id,)) = found else { return Ok(false) };
    let changed =
        sqlx::query("UPDATE staff SET role = ? WHERE id = ?").bind(role.as_str()).bind(id).execute(&mut *tx).await?;
    if changed.rows_affected() == 1 {
        audit(&mut tx, actor, "staff.role", Some(email), Some(role.as_str())).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn list(pool: &MySqlPool) -> Result<Vec<StaffMember>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{MEMBER} ORDER BY id"))).fetch_all(pool).await?)
}

/// The account of `email` if it may sign in.
pub async fn active_by_email(pool: &MySqlPool, email: &str) -> Result<Option<StaffMember>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{MEMBER} WHERE email = ? AND disabled_at IS NULL")))
        .bind(email)
        .fetch_optional(pool)
        .await?)
}

/// Disables the account and ends its sessions and unused links in the same transaction;
/// `false` when there is no such active account.
pub async fn disable(pool: &MySqlPool, email: &str, actor: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let Some((id,)): Option<(u64,)> =
        sqlx::query_as("SELECT id FROM staff WHERE email = ? AND disabled_at IS NULL FOR UPDATE")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(false);
    };
    sqlx::query("UPDATE staff SET disabled_at = NOW(3) WHERE id = ?").bind(id).execute(&mut *tx).await?;
    sqlx::query("UPDATE staff_sessions SET revoked_at = NOW(3) WHERE staff_id = ? AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE staff_sign_in_links SET used_at = NOW(3) WHERE staff_id = ? AND used_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit(&mut tx, actor, "staff.disable", Some(email), None).await?;
    tx.commit().await?;
    Ok(true)
}

/// How many links were asked for in the last `window`, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentRequests {
    /// For this address from this client.
    pub for_address_from_client: i64,
    /// For this address from any client.
    pub for_address: i64,
    /// From this client for any address.
    pub from_client: i64,
}

/// Records this request, then counts those of the last `window`, this one included: requests
/// made side by side each see the others, so none slips past a limit by racing it. Refused
/// requests count too, so a client hammering the form is slowed whatever it asks for.
pub async fn record_and_count_request(
    pool: &MySqlPool,
    address_hash: &[u8; 32],
    client_hash: &[u8; 32],
    window: Duration,
) -> Result<RecentRequests, StoreError> {
    sqlx::query("INSERT INTO staff_sign_in_requests (address_hash, client_hash) VALUES (?, ?)")
        .bind(&address_hash[..])
        .bind(&client_hash[..])
        .execute(pool)
        .await?;
    let secs = window.as_secs();
    let (for_address_from_client, for_address, from_client): (i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM staff_sign_in_requests
              WHERE address_hash = ? AND client_hash = ? AND created_at > NOW(3) - INTERVAL ? SECOND),
            (SELECT COUNT(*) FROM staff_sign_in_requests WHERE address_hash = ? AND created_at > NOW(3) - INTERVAL ? SECOND),
            (SELECT COUNT(*) FROM staff_sign_in_requests WHERE client_hash = ? AND created_at > NOW(3) - INTERVAL ? SECOND)",
    )
    .bind(&address_hash[..])
    .bind(&client_hash[..])
    .bind(secs)
    .bind(&address_hash[..])
    .bind(secs)
    .bind(&client_hash[..])
    .bind(secs)
    .fetch_one(pool)
    .await?;
    // What no limit counts any more is not kept.
    sqlx::query("DELETE FROM staff_sign_in_requests WHERE created_at < NOW(3) - INTERVAL 1 DAY LIMIT 500")
        .execute(pool)
        .await?;
    Ok(RecentRequests { for_address_from_client, for_address, from_client })
}

pub async fn insert_link(
    pool: &MySqlPool,
    token_hash: &[u8; 32],
    staff_id: u64,
    ttl: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO staff_sign_in_links (token_hash, staff_id, expires_at)
         VALUES (?, ?, NOW(3) + INTERVAL ? SECOND)",
    )
    .bind(&token_hash[..])
    .bind(staff_id)
    .bind(ttl.as_secs())
    .execute(pool)
    .await?;
    Ok(())
}

/// Uses the link once: the account it signs in, if the link is unused, unexpired and its
/// account active. The check and the use are one statement, so two clicks racing get one
/// session between them.
pub async fn redeem_link(pool: &MySqlPool, token_hash: &[u8; 32]) -> Result<Option<StaffMember>, StoreError> {
    let mut tx = pool.begin().await?;
    let used = sqlx::query(
        "UPDATE staff_sign_in_links SET used_at = NOW(3)
         WHERE token_hash = ? AND used_at IS NULL AND expires_at > NOW(3)",
    )
    .bind(&token_hash[..])
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() == 0 {
        return Ok(None);
    }
    let member = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MEMBER} WHERE disabled_at IS NULL AND id = (SELECT staff_id FROM staff_sign_in_links WHERE token_hash = ?)"
    )))
    .bind(&token_hash[..])
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(member)
}

pub async fn create_session(
    pool: &MySqlPool,
    id_hash: &[u8; 32],
    staff_id: u64,
    csrf_token: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO staff_sessions (id_hash, staff_id, csrf_token) VALUES (?, ?, ?)")
        .bind(&id_hash[..])
        .bind(staff_id)
        .bind(csrf_token)
        .execute(pool)
        .await?;
    Ok(())
}

/// A signed-in session as a request finds it.
#[derive(Debug, Clone, FromRow)]
pub struct LiveSession {
    pub staff_id: u64,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: StaffRole,
    pub csrf_token: String,
}

/// The session, if it is neither revoked, idle longer than `idle`, older than `absolute`, nor
/// its account disabled; marks it seen (at most once a minute, to spare a write per page).
pub async fn live_session(
    pool: &MySqlPool,
    id_hash: &[u8; 32],
    idle: Duration,
    absolute: Duration,
) -> Result<Option<LiveSession>, StoreError> {
    let found: Option<LiveSession> = sqlx::query_as(
        "SELECT s.staff_id, m.email, m.role, s.csrf_token
         FROM staff_sessions s JOIN staff m ON m.id = s.staff_id
         WHERE s.id_hash = ? AND s.revoked_at IS NULL AND m.disabled_at IS NULL
           AND s.last_seen_at > NOW(3) - INTERVAL ? SECOND
           AND s.created_at > NOW(3) - INTERVAL ? SECOND",
    )
    .bind(&id_hash[..])
    .bind(idle.as_secs())
    .bind(absolute.as_secs())
    .fetch_optional(pool)
    .await?;
    if found.is_some() {
        sqlx::query(
            "UPDATE staff_sessions SET last_seen_at = NOW(3)
             WHERE id_hash = ? AND last_seen_at < NOW(3) - INTERVAL 60 SECOND",
        )
        .bind(&id_hash[..])
        .execute(pool)
        .await?;
    }
    Ok(found)
}

pub async fn end_session(pool: &MySqlPool, id_hash: &[u8; 32]) -> Result<(), StoreError> {
    sqlx::query("UPDATE staff_sessions SET revoked_at = NOW(3) WHERE id_hash = ? AND revoked_at IS NULL")
        .bind(&id_hash[..])
        .execute(pool)
        .await?;
    Ok(())
}

/// Records what staff did outside any order.
pub async fn audit(
    conn: &mut MySqlConnection,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO staff_audit (actor, action, subject, detail) VALUES (?, ?, ?, ?)")
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct AuditEntry {
    pub id: u64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn audit_recent(pool: &MySqlPool, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, actor, action, subject, detail, created_at FROM staff_audit ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
