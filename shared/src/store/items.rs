//! Order items: one course in one order, moved through its states by compare-and-set.

use crate::domain::EventKind;
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool};

use super::StoreError;
use super::events::{self, NewEvent};
use super::outbox::{self, OutboxMessage};
use crate::domain::{ItemStatus, Stage, Status};

/// One requested change of an item's status.
#[derive(Debug, Clone)]
pub struct ItemChange<'a> {
    pub item_id: u64,
    pub from: ItemStatus,
    pub to: ItemStatus,
    /// Who or what asks: a function name, a worker id, `operator:<name>`.
    pub actor: &'a str,
    /// Why, in words, for the audit trail (and, into `failed`, the item's last error).
    pub reason: Option<&'a str>,
    /// Required exactly when `to` is `failed`.
    pub failed_stage: Option<Stage>,
    /// When set, the change happens only while this worker holds the item's lease.
    pub lease_owner: Option<&'a str>,
}

impl<'a> ItemChange<'a> {
    pub fn new(item_id: u64, from: ItemStatus, to: ItemStatus, actor: &'a str) -> Self {
        ItemChange { item_id, from, to, actor, reason: None, failed_stage: None, lease_owner: None }
    }

    /// Only while `owner` holds the item's lease: a worker that lost its lease changes nothing.
    pub fn held_by(mut self, owner: &'a str) -> Self {
        self.lease_owner = Some(owner);
        self
    }

    pub fn because(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// A change into `failed` at `stage`, with the reason kept on the item.
    pub fn failure(item_id: u64, from: ItemStatus, stage: Stage, reason: &'a str, actor: &'a str) -> Self {
        ItemChange {
            item_id,
            from,
            to: ItemStatus::Failed,
            actor,
            reason: Some(reason),
            failed_stage: Some(stage),
            lease_owner: None,
        }
    }
}

/// What a successful transition produced: the outbox row to publish after commit, if the
/// new status starts a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transitioned {
    pub order_id: u64,
    pub outbox: Option<OutboxMessage>,
}

/// Performs the change inside the caller's transaction. On any error the caller must roll
/// back (dropping the transaction does); nothing is written unless every step succeeds.
pub async fn transition_in(conn: &mut MySqlConnection, change: &ItemChange<'_>) -> Result<Transitioned, StoreError> {
    if !change.from.can_become(change.to) {
        return Err(StoreError::IllegalItemTransition { from: change.from, to: change.to });
    }
    let into_failed = change.to == ItemStatus::Failed;
    if into_failed != change.failed_stage.is_some() || (into_failed && change.reason.is_none()) {
        return Err(StoreError::FailureDetail);
    }

    // The status-specific columns come from a closed match over our own enums, never from
    // input, so building this text is safe.
    let mut set = String::from("status = ?, updated_at = NOW(3)");
    if let Some(column) = change.to.timestamp_column() {
        set.push_str(&format!(", {column} = NOW(3)"));
    }
    if into_failed {
        set.push_str(", failed_stage = ?, last_error = ?");
    } else if change.from == ItemStatus::Failed {
        // An operator's retry starts the stage afresh.
        set.push_str(", failed_stage = NULL, last_error = NULL, attempts = 0");
    }
    // A claim (the enroll function's, the deliver job's) ends with the state it claimed.
    if matches!(change.from, ItemStatus::Enrolling | ItemStatus::Delivering) {
        set.push_str(", lease_owner = NULL, lease_until = NULL");
    }
    let held = if change.lease_owner.is_some() { " AND lease_owner = ?" } else { "" };
    let sql = format!("UPDATE order_items SET {set} WHERE id = ? AND status = ?{held}");
    let mut update = sqlx::query(AssertSqlSafe(sql)).bind(change.to.as_str());
    if into_failed {
        update = update.bind(change.failed_stage.map(|s| s.as_str())).bind(change.reason);
    }
    update = update.bind(change.item_id).bind(change.from.as_str());
    if let Some(owner) = change.lease_owner {
        update = update.bind(owner);
    }
    let done = update.execute(&mut *conn).await?;

    if done.rows_affected() == 0 {
        return Err(match status(conn, change.item_id).await? {
            None => StoreError::NotFound { kind: "item", id: change.item_id.to_string() },
            Some(actual) => StoreError::ItemConflict { expected: change.from, actual },
        });
    }

    let order_id: u64 = sqlx::query_scalar("SELECT order_id FROM order_items WHERE id = ?")
        .bind(change.item_id)
        .fetch_one(&mut *conn)
        .await?;
    events::record(
        conn,
        &NewEvent {
            order_id,
            item_id: Some(change.item_id),
            kind: EventKind::ItemStatus,
            from_status: Some(change.from.as_str()),
            to_status: Some(change.to.as_str()),
            actor: change.actor,
            detail: change.reason,
        },
    )
    .await?;
    // Counted when written: a transaction rolled back after this (a deadlock retried) counts
    // the change again, which a stage-entry rate can bear.
    crate::metrics::emit(crate::metrics::Metric::ItemEntered { status: change.to.as_str() });
    if let Some(stage) = change.failed_stage {
        crate::metrics::emit(crate::metrics::Metric::ItemFailed { stage: stage.as_str() });
    }
    // Leaving the status a queue's message serves is that message arriving.
    if let Some(queue) = change.from.served_by() {
        outbox::mark_consumed(conn, change.item_id, queue).await?;
    }
    let outbox = match change.to.starts_queue() {
        Some(queue) => Some(outbox::enqueue(conn, queue, change.item_id).await?),
        None => None,
    };
    Ok(Transitioned { order_id, outbox })
}

/// All of an order's items in `from`, to move to `to` together.
#[derive(Debug, Clone)]
pub struct MoveAll<'a> {
    pub order_id: u64,
    /// The order's items in `from`, known to the caller, which holds the order's lock.
    pub item_ids: &'a [u64],
    pub from: ItemStatus,
    pub to: ItemStatus,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
}

/// Moves all of an order's items in `from` to `to` in one statement, in the caller's
/// transaction. Their events are added to `events` for the caller to write with its own in
/// one insert; their outbox rows are written in one insert and returned.
pub async fn move_all_in<'a>(
    conn: &mut MySqlConnection,
    m: &MoveAll<'a>,
    events: &mut Vec<NewEvent<'a>>,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let MoveAll { order_id, item_ids, from, to, actor, reason } = *m;
    if !from.can_become(to) || to == ItemStatus::Failed {
        return Err(StoreError::IllegalItemTransition { from, to });
    }
    if item_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The column comes from a closed match over our own enum, never from input.
    let stamp = to.timestamp_column().map(|c| format!(", {c} = NOW(3)")).unwrap_or_default();
    let sql =
        format!("UPDATE order_items SET status = ?, updated_at = NOW(3){stamp} WHERE order_id = ? AND status = ?");
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(to.as_str())
        .bind(order_id)
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != item_ids.len() as u64 {
        // The caller's lock should make this impossible; never write half a change.
        return Err(StoreError::PartialChange {
            what: "moving an order's items",
            expected: item_ids.len() as u64,
            changed: done.rows_affected(),
        });
    }
    for &item_id in item_ids {
        events.push(NewEvent {
            order_id,
            item_id: Some(item_id),
            kind: EventKind::ItemStatus,
            from_status: Some(from.as_str()),
            to_status: Some(to.as_str()),
            actor,
            detail: reason,
        });
        crate::metrics::emit(crate::metrics::Metric::ItemEntered { status: to.as_str() });
    }
    if let Some(queue) = from.served_by() {
        for &item_id in item_ids {
            outbox::mark_consumed(conn, item_id, queue).await?;
        }
    }
    match to.starts_queue() {
        Some(queue) => outbox::enqueue_all(conn, queue, item_ids).await,
        None => Ok(Vec::new()),
    }
}

/// Performs the change in a transaction of its own.
pub async fn transition(pool: &MySqlPool, change: &ItemChange<'_>) -> Result<Transitioned, StoreError> {
    super::retry_deadlocks(|| async {
        let mut tx = pool.begin().await?;
        let out = transition_in(&mut tx, change).await?;
        tx.commit().await?;
        Ok(out)
    })
    .await
}

/// Performs the change, or, when the item has already moved on (the compare-and-set lost),
/// says where it is now: `Ok(Err(status))`. For workers whose message may be stale.
pub async fn transition_unless_moved(
    pool: &MySqlPool,
    change: &ItemChange<'_>,
) -> Result<Result<Transitioned, ItemStatus>, StoreError> {
    match transition(pool, change).await {
        Ok(t) => Ok(Ok(t)),
        Err(StoreError::ItemConflict { actual, .. }) => Ok(Err(actual)),
        Err(e) => Err(e),
    }
}

/// An operator's retry of a failed item: back to the status its failed stage starts from,
/// with the stage's outbox row.
pub async fn retry_failed(pool: &MySqlPool, item_id: u64, actor: &str) -> Result<Transitioned, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, failed_stage FROM order_items WHERE id = ? FOR UPDATE")
            .bind(item_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, stage)) = row else {
        return Err(StoreError::NotFound { kind: "item", id: item_id.to_string() });
    };
    let status = ItemStatus::parse(&status)?;
    if status != ItemStatus::Failed {
        return Err(StoreError::ItemConflict { expected: ItemStatus::Failed, actual: status });
    }
    let stage = Stage::parse(stage.as_deref().unwrap_or_default())?;
    let change = ItemChange::new(item_id, ItemStatus::Failed, stage.retry_status(), actor).because("operator retry");
    let out = transition_in(&mut tx, &change).await?;
    tx.commit().await?;
    Ok(out)
}

pub async fn status(conn: &mut MySqlConnection, item_id: u64) -> Result<Option<ItemStatus>, StoreError> {
    let s: Option<String> =
        sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?").bind(item_id).fetch_optional(conn).await?;
    Ok(s.map(|s| ItemStatus::parse(&s)).transpose()?)
}
