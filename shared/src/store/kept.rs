//! Connections a busy path keeps between uses instead of handing them back to the pool.
//!
//! sqlx pings every connection it takes back, whatever the pool's settings: one more round
//! trip, on both sides, per use. For the webhook that is a fifth of its database round trips;
//! on Lambda, whose process is frozen as soon as it answers, that ping usually runs when the
//! next invocation thaws it, and that invocation's acquire waits for it.
//!
//! A connection is kept only when its user says its work ended cleanly ([`Kept::keep`]). One
//! dropped otherwise (an error, a cancelled request) goes back to sqlx, which tests it or
//! closes it. At most `keep` connections are out through here at once, one fewer than the
//! pool holds, so the pool's other users (the relay recording a failed publish) always find
//! one; callers beyond that wait their turn in order (a semaphore), since a kept connection
//! never wakes a waiter of the pool's. None is kept past [`KEEP_AT_MOST`], so the pool's own
//! renewal (a failover, a rotated password) still applies. A pool of one keeps nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, MySql, MySqlPool};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::PING_IF_IDLE_FOR;

/// How long one connection is kept in all, from its acquire.
pub const KEEP_AT_MOST: Duration = Duration::from_secs(10 * 60);

struct Idle {
    conn: PoolConnection<MySql>,
    acquired: Instant,
    since: Instant,
}

pub struct KeptConnections {
    pool: MySqlPool,
    /// A turn to use a connection through here; `None`: nothing is kept (a pool of one).
    turns: Option<Semaphore>,
    idle: Mutex<Vec<Idle>>,
}

/// A connection in use; derefs to the pool's connection.
pub struct Kept<'a> {
    conn: Option<PoolConnection<MySql>>,
    acquired: Instant,
    home: &'a KeptConnections,
    _turn: Option<SemaphorePermit<'a>>,
}

impl KeptConnections {
    /// Keeps up to one connection fewer than the pool holds.
    pub fn new(pool: MySqlPool) -> Self {
        let keep = pool.options().get_max_connections().saturating_sub(1) as usize;
        let turns = (keep > 0).then(|| Semaphore::new(keep));
        KeptConnections { pool, turns, idle: Mutex::new(Vec::new()) }
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// A kept connection (pinged first if it has been idle long), else one from the pool.
    pub async fn get(&self) -> Result<Kept<'_>, sqlx::Error> {
        let turn = match &self.turns {
            Some(turns) => Some(turns.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?),
            None => None,
        };
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut idle) = idle else { break };
            if idle.acquired.elapsed() >= KEEP_AT_MOST {
                continue; // dropped: back to the pool
            }
            if idle.since.elapsed() >= PING_IF_IDLE_FOR && idle.conn.ping().await.is_err() {
                idle.conn.close_on_drop();
                continue;
            }
            return Ok(Kept { conn: Some(idle.conn), acquired: idle.acquired, home: self, _turn: turn });
        }
        let conn = self.pool.acquire().await?;
        Ok(Kept { conn: Some(conn), acquired: Instant::now(), home: self, _turn: turn })
    }
}

impl Kept<'_> {
    /// The work ended cleanly: the connection is kept for the next use (in a pool of one,
    /// it goes back to the pool).
    pub fn keep(mut self) {
        let conn = self.conn.take().expect("a connection until kept");
        if self.home.turns.is_some() {
            let idle = Idle { conn, acquired: self.acquired, since: Instant::now() };
            self.home.idle.lock().unwrap_or_else(|e| e.into_inner()).push(idle);
        }
    }
}

impl std::ops::Deref for Kept<'_> {
    type Target = PoolConnection<MySql>;
    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("a connection until kept")
    }
}

impl std::ops::DerefMut for Kept<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_mut().expect("a connection until kept")
    }
}
