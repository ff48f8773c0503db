//! Payment routes of an order's own (`payment_routes`): payOS links and virtual accounts,
//! with an event on the order for each that opens, fails to open or closes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::StoreError;
use super::events::{self, NewEvent};
use crate::domain::EventKind;
use crate::domain::payment_route::{OpenedRoute, RouteKind, RouteRef, RouteState};

#[derive(Debug, Clone, FromRow)]
struct Row {
    id: u64,
    order_id: u64,
    kind: String,
    state: String,
    number: Option<String>,
    external_id: Option<String>,
    amount_vnd: i64,
    checkout_url: Option<String>,
    qr_code: Option<String>,
    account_name: Option<String>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// A route as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRoute {
    pub id: u64,
    pub order_id: u64,
    pub kind: RouteKind,
    pub state: RouteState,
    pub number: Option<String>,
    pub external_id: Option<String>,
    pub amount_vnd: i64,
    pub checkout_url: Option<String>,
    pub qr_code: Option<String>,
    pub account_name: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl StoredRoute {
    /// What the provider needs to act on it; `None` for a route that never opened.
    pub fn reference(&self) -> Option<RouteRef> {
        Some(RouteRef { kind: self.kind, number: self.number.clone()?, external_id: self.external_id.clone()? })
    }
}

impl TryFrom<Row> for StoredRoute {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(StoredRoute {
            id: r.id,
            order_id: r.order_id,
            kind: RouteKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("payment route {}: kind {:?}", r.id, r.kind)))?,
            state: RouteState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("payment route {}: state {:?}", r.id, r.state)))?,
            number: r.number,
            external_id: r.external_id,
            amount_vnd: r.amount_vnd,
            checkout_url: r.checkout_url,
            qr_code: r.qr_code,
            account_name: r.account_name,
            reason: r.reason,
            created_at: r.created_at,
            closed_at: r.closed_at,
        })
    }
}

const COLUMNS: &str = "r.id, r.order_id, r.kind, r.state, r.number, r.external_id, r.amount_vnd, r.checkout_url, \
                       r.qr_code, r.account_name, r.reason, r.created_at, r.closed_at";

fn rows(rows: Vec<Row>) -> Result<Vec<StoredRoute>, StoreError> {
    rows.into_iter().map(StoredRoute::try_from).collect()
}

/// Keeps a route the provider opened, with its event; `false` when the order has one of this
/// kind already (a retry of the same order), which stays.
pub async fn record_opened(
    conn: &mut MySqlConnection,
    order_id: u64,
    amount_vnd: i64,
    route: &OpenedRoute,
    actor: &str,
) -> Result<bool, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let inserted = sqlx::query(
        "INSERT IGNORE INTO payment_routes
             (order_id, kind, state, number, external_id, amount_vnd, checkout_url, qr_code, account_name, raw_answer)
         VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(route.kind.as_str())
    .bind(&route.number)
    .bind(&route.external_id)
    .bind(amount_vnd)
    .bind(&route.checkout_url)
    .bind(&route.qr_code)
    .bind(&route.account_name)
    .bind(&route.raw)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let detail = format!("{} opened: {} ({})", route.kind.provider(), route.number, route.external_id);
        events::record(&mut tx, &route_event(order_id, actor, &detail)).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Keeps why a route could not be opened: the order is paid into the main account instead.
pub async fn record_failed(
    conn: &mut MySqlConnection,
    order_id: u64,
    amount_vnd: i64,
    kind: RouteKind,
    reason: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let inserted = sqlx::query(
        "INSERT IGNORE INTO payment_routes (order_id, kind, state, amount_vnd, reason) VALUES (?, ?, 'failed', ?, ?)",
    )
    .bind(order_id)
    .bind(kind.as_str())
    .bind(amount_vnd)
    .bind(clip(reason))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let detail =
            format!("{} could not be opened ({reason}); the order is paid into the main account", kind.provider());
        events::record(&mut tx, &route_event(order_id, actor, &detail)).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn route_event<'a>(order_id: u64, actor: &'a str, detail: &'a str) -> NewEvent<'a> {
    NewEvent {
        order_id,
        item_id: None,
        kind: EventKind::PaymentRoute,
        from_status: None,
        to_status: None,
        actor,
        detail: Some(detail),
    }
}

fn clip(reason: &str) -> &str {
    let mut end = reason.len().min(500);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// An order's routes, oldest first.
pub async fn of_order(conn: &mut MySqlConnection, order_id: u64) -> Result<Vec<StoredRoute>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM payment_routes r WHERE r.order_id = ? ORDER BY r.id"));
    rows(sqlx::query_as::<_, Row>(sql).bind(order_id).fetch_all(conn).await?)
}

/// The order a virtual account belongs to, by its number: (code, amount the account takes).
pub async fn order_of_virtual_account(
    conn: &mut MySqlConnection,
    number: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "SELECT o.code, r.amount_vnd FROM payment_routes r JOIN orders o ON o.id = r.order_id
         WHERE r.kind = 'virtual_account' AND r.number = ?",
    )
    .bind(number)
    .fetch_optional(conn)
    .await?)
}

/// Open routes of `kind` whose orders still wait for payment, least recently asked about
/// first: what reconciliation asks the provider about.
pub async fn open_of_pending_orders(
    pool: &MySqlPool,
    kind: RouteKind,
    limit: u32,
) -> Result<Vec<StoredRoute>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payment_routes r JOIN orders o ON o.id = r.order_id
         WHERE r.state = 'open' AND r.kind = ? AND o.status = 'pending'
         ORDER BY r.checked_at IS NOT NULL, r.checked_at, r.id LIMIT ?"
    ));
    rows(sqlx::query_as::<_, Row>(sql).bind(kind.as_str()).bind(limit).fetch_all(pool).await?)
}

pub async fn mark_checked(pool: &MySqlPool, route_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE payment_routes SET checked_at = NOW(3) WHERE id = ?").bind(route_id).execute(pool).await?;
    Ok(())
}

/// Open routes whose orders no longer wait for payment (paid, expired, cancelled, refunded):
/// they must stop taking money.
pub async fn open_of_finished_orders(pool: &MySqlPool, limit: u32) -> Result<Vec<StoredRoute>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payment_routes r JOIN orders o ON o.id = r.order_id
         WHERE r.state = 'open' AND o.status <> 'pending' ORDER BY r.id LIMIT ?"
    ));
    rows(sqlx::query_as::<_, Row>(sql).bind(limit).fetch_all(pool).await?)
}

/// The route is closed at the provider: kept closed, with its event.
pub async fn mark_closed(pool: &MySqlPool, route: &StoredRoute, why: &str, actor: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE payment_routes SET state = 'closed', closed_at = NOW(3), reason = NULL WHERE id = ? AND state = 'open'",
    )
    .bind(route.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 1 {
        let detail = format!("{} {} closed: {why}", route.kind.provider(), route.number.as_deref().unwrap_or_default());
        events::record(&mut tx, &route_event(route.order_id, actor, &detail)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Closing failed this time: why, for the operator; the next pass tries again.
pub async fn note_close_failed(pool: &MySqlPool, route_id: u64, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE payment_routes SET reason = ? WHERE id = ?")
        .bind(clip(reason))
        .bind(route_id)
        .execute(pool)
        .await?;
    Ok(())
}
