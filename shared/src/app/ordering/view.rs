//! What the buyer's status page shows of an order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use super::OrderSettings;
use super::place::instructions;
use crate::domain::{ItemStatus, OrderCode, OrderStatus, ViewToken};
use crate::store::{StoreError, items, orders};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub files_done: u32,
    pub files_total: Option<u32>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemView {
    pub course: String,
    pub title: String,
    pub status: ItemStatus,
    pub progress: Progress,
    pub drive_link: Option<String>,
}

/// What a buyer sees of an order: never the email or the phone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderView {
    pub code: String,
    pub status: OrderStatus,
    pub amount_vnd: i64,
    pub paid_vnd: i64,
    pub discount_vnd: i64,
    pub coupon: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<ItemView>,
}

/// The order, if `token` is its view token; `None` for an unknown order and for a wrong token
/// alike, so a guess learns nothing, not even that the code exists.
pub async fn order_view(pool: &MySqlPool, code: &OrderCode, token: &str) -> Result<Option<OrderView>, StoreError> {
    let mut conn = pool.acquire().await?;
    let Some(head) = orders::head_by_code(&mut conn, code.as_str()).await? else {
        return Ok(None);
    };
    if !ViewToken::matches(head.view_token.as_deref(), token) {
        return Ok(None);
    }
    let rows = items::progress_of_order_in(&mut conn, head.id).await?;
    Ok(Some(OrderView {
        code: head.code,
        status: head.status,
        amount_vnd: head.total_vnd,
        paid_vnd: head.paid_vnd,
        discount_vnd: head.discount_vnd,
        coupon: head.coupon,
        expires_at: head.expires_at,
        items: rows
            .into_iter()
            .map(|r| ItemView {
                // The link is the buyer's only once the folder is shared with them.
                drive_link: if r.status == ItemStatus::Completed { r.drive_link } else { None },
                course: r.slug,
                title: r.title,
                status: r.status,
                progress: Progress {
                    files_done: r.files_done,
                    files_total: r.files_total,
                    bytes_done: r.bytes_done,
                    bytes_total: r.bytes_total,
                },
            })
            .collect(),
    }))
}

/// The VietQR payload of an order, for its QR image: into its own virtual account when it
/// has one, else into the seller's account with its code; with `payos`, payOS's QR for its
/// link (`None` when it has no open link).
pub async fn order_vietqr(
    pool: &MySqlPool,
    settings: &OrderSettings,
    code: &OrderCode,
    token: &str,
    payos: bool,
) -> Result<Option<String>, StoreError> {
    let mut conn = pool.acquire().await?;
    let Some(head) = orders::head_by_code(&mut conn, code.as_str()).await? else {
        return Ok(None);
    };
    if !ViewToken::matches(head.view_token.as_deref(), token) {
        return Ok(None);
    }
    let routes = crate::app::routes::of_order(&mut conn, head.id).await?;
    let payment = instructions(&settings.bank, &head.code, head.total_vnd, &routes)
        .map_err(|e| StoreError::Corrupt(format!("VietQR for {}: {e}", head.code)))?;
    Ok(if payos { payment.payos.and_then(|p| p.qr_code) } else { Some(payment.vietqr) })
}
