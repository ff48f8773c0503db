//! The store: every read and write of coursedrop's MySQL database.
//!
//! State changes are compare-and-set (`UPDATE … WHERE id = ? AND status = ?`) inside a
//! transaction that also appends an `order_events` row and, when the change starts the next
//! stage, an `outbox` row. Functions that must compose take `&mut MySqlConnection` (pass
//! `&mut *tx`); the ones that stand alone take the pool and run their own transaction.

pub mod access;
pub mod catalog;
pub mod console;
pub mod coupons;
pub mod delivered_files;
pub mod events;
pub mod grants;
pub mod items;
pub mod kept;
pub mod leases;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod reconcile;
pub mod reminders;
pub mod reports;
pub mod routes;
pub mod script;
pub mod staff;
pub mod users;

use std::time::Duration;

use sqlx::MySqlPool;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use thiserror::Error;

use crate::domain::{ItemStatus, OrderStatus, UnknownStatus};

/// The schema, embedded in every binary so a deploy never runs code against an older schema
/// without noticing.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("an item cannot go from {from} to {to}")]
    IllegalItemTransition { from: ItemStatus, to: ItemStatus },
    #[error("an order cannot go from {from} to {to}")]
    IllegalOrderTransition { from: OrderStatus, to: OrderStatus },
    /// The item's compare-and-set lost: someone else changed it first.
    #[error("expected item status {expected} but found {actual}")]
    ItemConflict { expected: ItemStatus, actual: ItemStatus },
    /// The order's compare-and-set lost: someone else changed it first.
    #[error("expected order status {expected} but found {actual}")]
    OrderConflict { expected: OrderStatus, actual: OrderStatus },
    /// A set-based change touched other rows than the caller's lock promised; nothing of it
    /// is kept (the caller rolls back).
    #[error("{what}: {changed} rows changed, {expected} expected")]
    PartialChange { what: &'static str, expected: u64, changed: u64 },
    #[error("a change into failed needs the stage and the reason; other changes must not have them")]
    FailureDetail,
    #[error("a sum of money would overflow")]
    Overflow,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<UnknownStatus> for StoreError {
    fn from(e: UnknownStatus) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl StoreError {
    /// Whether retrying the same call later could succeed (the database was unreachable,
    /// a deadlock, a timeout), as opposed to a verdict about the data.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(e) if !matches!(e, sqlx::Error::RowNotFound))
    }
}

/// Whether the transaction lost to a deadlock (1213) or a lock wait timeout (1205): InnoDB
/// rolled it back, and running it again is the documented remedy.
pub fn is_deadlock(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| matches!(m.number(), 1213 | 1205))
        }
        _ => false,
    }
}

/// The waits before running a deadlock victim's transaction again: up to four, short and
/// jittered so the two sides of the deadlock do not meet again.
fn deadlock_waits() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(2))
        .with_max_delay(Duration::from_millis(20))
        .with_max_times(4)
        .with_jitter()
}

/// Runs a whole transaction again when InnoDB picks it as a deadlock victim (up to five
/// tries, with short jittered waits).
pub async fn retry_deadlocks<T, F, Fut>(run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    use backon::Retryable;
    run.retry(deadlock_waits())
        .sleep(tokio::time::sleep)
        .when(is_deadlock)
        .notify(|_, wait| tracing::debug!(wait_ms = wait.as_millis() as u64, "deadlock; running the transaction again"))
        .await
}

/// [`retry_deadlocks`]'s rule, for a loop that must pass its transaction a borrowed
/// connection (which a closure's future cannot hold).
#[derive(Debug)]
pub struct DeadlockRetry {
    waits: backon::ExponentialBackoff,
}

impl Default for DeadlockRetry {
    fn default() -> Self {
        DeadlockRetry { waits: backon::BackoffBuilder::build(deadlock_waits()) }
    }
}

impl DeadlockRetry {
    /// Whether to run the transaction again after `result`; waits first when so.
    pub async fn again<T>(&mut self, result: &Result<T, StoreError>) -> bool {
        match result {
            Err(e) if is_deadlock(e) => match self.waits.next() {
                Some(wait) => {
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "deadlock; running the transaction again");
                    tokio::time::sleep(wait).await;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
}

/// Whether `e` is MySQL's "duplicate entry" (error 1062) on the named unique key.
pub fn is_duplicate_key(e: &sqlx::Error, key: &str) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == 1062)
                && d.message().contains(key)
        }
        _ => false,
    }
}

/// Stores `fresh` in `column` of the `table` row `id` unless the row holds a value already,
/// and answers the value it holds: a value fixed once (a Drive id, a Message-ID), whoever
/// races to fix it. `table` and `column` are our own names, never input.
async fn keep_first(
    pool: &MySqlPool,
    table: &'static str,
    column: &'static str,
    id: u64,
    fresh: &str,
) -> Result<String, StoreError> {
    let update = format!("UPDATE {table} SET {column} = COALESCE({column}, ?) WHERE id = ?");
    sqlx::query(sqlx::AssertSqlSafe(update)).bind(fresh).bind(id).execute(pool).await?;
    let read = format!("SELECT {column} FROM {table} WHERE id = ?");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(read)).bind(id).fetch_one(pool).await?)
}

/// A pooled connection idle at least this long is pinged before it is handed out: the server
/// (a restart, `wait_timeout`), a NAT or a Lambda frozen between invocations may have dropped
/// it. One used more recently was answering a moment ago. Half a second is HikariCP's
/// `aliveBypassWindowMs`: a database restart takes longer, so every connection from before it
/// is checked when it is next taken.
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_millis(500);

/// Connects a pool with settings suited to a Lambda (few connections, fail fast).
///
/// sqlx pings every connection before handing it out unless told otherwise: a round trip
/// on every acquire, as costly as the statement it precedes. Only a connection that has been
/// idle for [`PING_IF_IDLE_FOR`] is checked.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<MySqlPool, sqlx::Error> {
    connect_with(database_url.parse()?, max_connections).await
}

/// [`connect`] with options already parsed (another user, say).
pub async fn connect_with(options: MySqlConnectOptions, max_connections: u32) -> Result<MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options.charset("utf8mb4"))
        .await
}

/// The database a pool's connections use.
pub async fn current_database(pool: &MySqlPool) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT DATABASE()").fetch_one(pool).await?)
}

/// Applies any migration not yet applied. Safe to run repeatedly and concurrently: sqlx
/// takes an advisory lock.
pub async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
