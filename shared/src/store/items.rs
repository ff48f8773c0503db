//! Order items: one course in one order, moved through its states by compare-and-set.

use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool};

use super::StoreError;
use super::events::{self, NewEvent};
use super::outbox::{self, OutboxMessage};
use crate::domain::{EventKind, ItemStatus, Queue, Stage, Status};

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
    // A claim (the enroll function's, the deliver job's, finalize's) ends with the state it claimed.
    if matches!(change.from, ItemStatus::Enrolling | ItemStatus::Delivering | ItemStatus::Delivered) {
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
    crate::support::metrics::emit(crate::support::metrics::Metric::ItemEntered { status: change.to.as_str() });
    if let Some(stage) = change.failed_stage {
        crate::support::metrics::emit(crate::support::metrics::Metric::ItemFailed { stage: stage.as_str() });
    }
    // Leaving the status a queue's message serves is that message arriving.
    if let Some(queue) = change.from.served_by() {
        outbox::mark_consumed(conn, queue, &[change.item_id]).await?;
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
    let MoveAll { order_id, item_ids, from, to, .. } = *m;
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
    moved_in(conn, m, events).await
}

/// What follows a move of all of an order's items once their rows have changed: their
/// events added to `events`, the rows of the queue they leave consumed, and the outbox rows
/// of the queue they enter, each in one statement. (Paying writes the same in its script:
/// `store::payments::push_payment`.)
async fn moved_in<'a>(
    conn: &mut MySqlConnection,
    m: &MoveAll<'a>,
    events: &mut Vec<NewEvent<'a>>,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let MoveAll { order_id, item_ids, from, to, actor, reason } = *m;
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
        crate::support::metrics::emit(crate::support::metrics::Metric::ItemEntered { status: to.as_str() });
    }
    if let Some(queue) = from.served_by() {
        outbox::mark_consumed(conn, queue, item_ids).await?;
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

/// What delivering an item needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryFacts {
    pub order_code: String,
    pub title: String,
    pub source: String,
    pub delivery_mode: String,
    pub drive_folder_id: Option<String>,
}

pub async fn delivery_facts(pool: &MySqlPool, item_id: u64) -> Result<DeliveryFacts, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.code AS order_code, c.title, c.source, c.delivery_mode, i.drive_folder_id
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id WHERE i.id = ?",
    )
    .bind(item_id)
    .fetch_one(pool)
    .await?)
}

/// Stores `fresh` as the item's Drive folder id unless it has one; answers the id it has.
pub async fn keep_folder_id(pool: &MySqlPool, item_id: u64, fresh: &str) -> Result<String, StoreError> {
    super::keep_first(pool, "order_items", "drive_folder_id", item_id, fresh).await
}

/// A shared course: the item's folder is the seller's own, whatever was stored before.
pub async fn use_folder(pool: &MySqlPool, item_id: u64, folder_id: &str, link: Option<&str>) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET drive_folder_id = ?, drive_link = ? WHERE id = ?")
        .bind(folder_id)
        .bind(link)
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_drive_link(pool: &MySqlPool, item_id: u64, link: Option<&str>) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET drive_link = ? WHERE id = ?").bind(link).bind(item_id).execute(pool).await?;
    Ok(())
}

/// The size of the delivery, once its source is listed.
pub async fn set_totals(pool: &MySqlPool, item_id: u64, files: u32, bytes: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET files_total = ?, bytes_total = ? WHERE id = ?")
        .bind(files)
        .bind(bytes)
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// How far the delivery is.
pub async fn set_progress(pool: &MySqlPool, item_id: u64, bytes: u64, files: u32) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET bytes_done = ?, files_done = ? WHERE id = ?")
        .bind(bytes)
        .bind(files)
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// What finalizing an item needs to know of it and its order.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FinalizeFacts {
    #[sqlx(try_from = "String")]
    pub status: crate::domain::ItemStatus,
    pub order_id: u64,
    #[sqlx(try_from = "String")]
    pub order_status: crate::domain::OrderStatus,
    pub email: String,
    pub lang: String,
    pub code: String,
    pub title: String,
    pub drive_folder_id: Option<String>,
    pub drive_link: Option<String>,
    pub email_message_id: Option<String>,
    pub sent: bool,
}

pub async fn finalize_facts(pool: &MySqlPool, item_id: u64) -> Result<Option<FinalizeFacts>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.status, o.id AS order_id, o.status AS order_status, o.email, o.lang, o.code, c.title,
                i.drive_folder_id, i.drive_link, i.email_message_id, i.email_sent_at IS NOT NULL AS sent
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id WHERE i.id = ?",
    )
    .bind(item_id)
    .fetch_optional(pool)
    .await?)
}

/// Fixes the item's delivery email `Message-ID` (`fresh` unless one is fixed already) before
/// the first send; answers the one fixed, which every later send reuses.
pub async fn keep_email_message_id(pool: &MySqlPool, item_id: u64, fresh: &str) -> Result<String, StoreError> {
    super::keep_first(pool, "order_items", "email_message_id", item_id, fresh).await
}

pub async fn mark_email_sent_in(conn: &mut MySqlConnection, item_id: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET email_sent_at = NOW(3) WHERE id = ? AND email_sent_at IS NULL")
        .bind(item_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps the Drive permission that gives the buyer the item's folder.
pub async fn set_permission_id(pool: &MySqlPool, item_id: u64, permission_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET drive_permission_id = ? WHERE id = ?")
        .bind(permission_id)
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The item's status by a locking read, in the caller's transaction: a refund's revoke of
/// this item waits for the transaction, or has already happened and is seen.
pub async fn status_for_update_in(conn: &mut MySqlConnection, item_id: u64) -> Result<Option<ItemStatus>, StoreError> {
    let s: Option<String> = sqlx::query_scalar("SELECT status FROM order_items WHERE id = ? FOR UPDATE")
        .bind(item_id)
        .fetch_optional(conn)
        .await?;
    Ok(s.map(|s| ItemStatus::parse(&s)).transpose()?)
}

/// Items of the order not completed, by a locking read: the latest committed rows, not the
/// transaction's snapshot.
pub async fn open_in_order_in(conn: &mut MySqlConnection, order_id: u64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_items WHERE order_id = ? AND status <> 'completed' LOCK IN SHARE MODE",
    )
    .bind(order_id)
    .fetch_one(conn)
    .await?)
}

/// The order's items and their statuses, locked, in the caller's transaction.
pub async fn lock_all_of_order_in(
    conn: &mut MySqlConnection,
    order_id: u64,
) -> Result<Vec<(u64, ItemStatus)>, StoreError> {
    let rows: Vec<(u64, String)> = sqlx::query_as("SELECT id, status FROM order_items WHERE order_id = ? FOR UPDATE")
        .bind(order_id)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(|(id, s)| Ok((id, ItemStatus::parse(&s)?))).collect()
}

/// The order's courses with the price each was ordered at: (slug, title, price).
pub async fn priced_courses_in(
    conn: &mut MySqlConnection,
    order_id: u64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.slug, c.title, i.price_vnd FROM order_items i JOIN courses c ON c.id = i.course_id
         WHERE i.order_id = ? ORDER BY i.id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// An item as the buyer's status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemProgress {
    pub slug: String,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: crate::domain::ItemStatus,
    pub files_done: u32,
    pub files_total: Option<u32>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub drive_link: Option<String>,
}

pub async fn progress_of_order_in(conn: &mut MySqlConnection, order_id: u64) -> Result<Vec<ItemProgress>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.slug, c.title, i.status, i.files_done, i.files_total, i.bytes_done, i.bytes_total, i.drive_link
         FROM order_items i JOIN courses c ON c.id = i.course_id WHERE i.order_id = ? ORDER BY i.id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// Who is enrolled in what.
pub use crate::domain::lms::Enrollee;

pub async fn enrollee(pool: &MySqlPool, item_id: u64) -> Result<Option<Enrollee>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.id AS item_id, o.code AS order_code, o.email, o.phone, c.slug AS course_slug, c.lms_course_id
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id WHERE i.id = ?",
    )
    .bind(item_id)
    .fetch_optional(pool)
    .await?)
}

// ------------------------------------------------------------------ unenrollment after a refund

/// Asks for the buyer to be taken out of the seller's LMS, in the caller's transaction (the
/// refund's, or an enroller's that finished after the refund), with the enroll queue's outbox
/// row. Only a revoked item; its attempts count afresh for this.
pub async fn request_unenroll_in(
    conn: &mut MySqlConnection,
    item_id: u64,
) -> Result<Option<OutboxMessage>, StoreError> {
    let done = sqlx::query(
        "UPDATE order_items SET unenroll_pending = TRUE, unenrolled_at = NULL, attempts = 0 WHERE id = ? AND status = ?",
    )
    .bind(item_id)
    .bind(ItemStatus::Revoked.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some(outbox::enqueue(conn, Queue::Enroll, item_id).await?))
}

/// The attempts spent so far when the item is revoked and waits to be unenrolled.
pub async fn unenroll_pending(pool: &MySqlPool, item_id: u64) -> Result<Option<u32>, StoreError> {
    Ok(sqlx::query_scalar("SELECT attempts FROM order_items WHERE id = ? AND status = ? AND unenroll_pending")
        .bind(item_id)
        .bind(ItemStatus::Revoked.as_str())
        .fetch_optional(pool)
        .await?)
}

/// A transient failure to unenroll: counted, with its reason; answers the attempts so far.
pub async fn unenroll_attempt_failed(pool: &MySqlPool, item_id: u64, reason: &str) -> Result<u32, StoreError> {
    sqlx::query("UPDATE order_items SET attempts = attempts + 1, last_error = ? WHERE id = ? AND unenroll_pending")
        .bind(reason)
        .bind(item_id)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT attempts FROM order_items WHERE id = ?").bind(item_id).fetch_one(pool).await?)
}

/// Ends an unenrollment: done (`flag` `None`: `unenrolled_at` set, an `unenrolled` event), or
/// given up (`flag`: the order flagged for an operator, a `needs_attention` event). Either way
/// the enroll queue's row is consumed. `false` when another worker ended it first.
pub async fn finish_unenroll(
    pool: &MySqlPool,
    item_id: u64,
    actor: &str,
    detail: &str,
    flag: Option<&str>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE order_items SET unenroll_pending = FALSE, unenrolled_at = IF(?, NOW(3), NULL) WHERE id = ? AND unenroll_pending",
    )
    .bind(flag.is_none())
    .bind(item_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let order_id: u64 =
        sqlx::query_scalar("SELECT order_id FROM order_items WHERE id = ?").bind(item_id).fetch_one(&mut *tx).await?;
    if let Some(flag) = flag {
        sqlx::query("UPDATE orders SET attention = ? WHERE id = ?").bind(flag).bind(order_id).execute(&mut *tx).await?;
    }
    events::record(
        &mut tx,
        &NewEvent {
            order_id,
            item_id: Some(item_id),
            kind: if flag.is_some() { EventKind::NeedsAttention } else { EventKind::Unenrolled },
            from_status: None,
            to_status: None,
            actor,
            detail: Some(flag.unwrap_or(detail)),
        },
    )
    .await?;
    outbox::mark_consumed(&mut tx, Queue::Enroll, &[item_id]).await?;
    tx.commit().await?;
    Ok(true)
}
