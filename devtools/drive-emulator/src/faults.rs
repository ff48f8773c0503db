//! Fault injection: what can be made to go wrong (`Faults`), the generic faults any call may
//! meet, and `POST /emulator/faults`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::Emulator;
use crate::errors::google_error;

/// Rates are probabilities per request, 0.0 to 1.0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub rate_429: f64,
    pub rate_503: f64,
    pub rate_403_rate_limit: f64,
    /// Upload chunks only: keep a prefix of the chunk, then reset the connection.
    pub rate_reset: f64,
    /// Upload chunks only: keep a prefix of the chunk and answer 308 with what is held.
    pub rate_partial: f64,
    /// While true, every upload call answers 403 `userRateLimitExceeded` (the daily cap).
    pub daily_cap_exceeded: bool,
    /// Upload bandwidth of each session, bytes per second (0: as fast as the disk):
    /// a real network's pace, so a run can watch a delivery in progress.
    pub upload_bytes_per_sec: u64,
    /// The next this many upload chunks that carry bytes answer 503 and keep nothing (status
    /// queries are not counted): a run of consecutive failures of an exact length.
    pub fail_next_chunks: u32,
    /// `permissions.create` takes this long before the permission exists (Google's sharing is
    /// not instant): a window in which others list the file's permissions without it.
    pub permission_delay_ms: u64,
    /// Each `files.copy` takes this long (Drive's copies are quick, not instant): a window in
    /// which a job can be stopped mid-course.
    pub copy_delay_ms: u64,
    /// While true, creates and copies answer 403 `teamDriveFileLimitExceeded` (the shared
    /// drive holds its maximum of items).
    pub shared_drive_full: bool,
    /// The next upload chunk is answered only after this long: a connection that stops
    /// answering mid-upload, as a dead link does.
    pub stall_next_chunk_ms: u64,
    /// Lists (files, permissions) answer at most this many a page whatever `pageSize` asked
    /// (0: no cap). Drive documents that a page may hold fewer than asked, and that a
    /// permissions list on a shared drive stops at 100 unless followed by `nextPageToken`.
    pub max_page_size: usize,
}

impl Faults {
    /// The same rate for each kind of fault: `total` split five ways.
    pub fn spread(total: f64) -> Self {
        let r = total / 5.0;
        Faults {
            rate_429: r,
            rate_503: r,
            rate_403_rate_limit: r,
            rate_reset: r,
            rate_partial: r,
            daily_cap_exceeded: false,
            upload_bytes_per_sec: 0,
            fail_next_chunks: 0,
            permission_delay_ms: 0,
            copy_delay_ms: 0,
            shared_drive_full: false,
            stall_next_chunk_ms: 0,
            max_page_size: 0,
        }
    }
}

impl Emulator {
    /// Rolls the dice for the generic faults; `upload` adds the daily cap.
    pub(crate) fn injected(&self, upload: bool) -> Option<Response<Body>> {
        let f = self.0.faults.lock().unwrap().clone();
        if upload && f.daily_cap_exceeded {
            return Some(google_error(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "userRateLimitExceeded",
                "User rate limit exceeded.",
            ));
        }
        let roll: f64 = rand::random();
        if roll < f.rate_429 {
            return Some(google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ));
        }
        if roll < f.rate_429 + f.rate_503 {
            return Some(google_error(StatusCode::SERVICE_UNAVAILABLE, "global", "backendError", "Backend Error"));
        }
        if roll < f.rate_429 + f.rate_503 + f.rate_403_rate_limit {
            return Some(google_error(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ));
        }
        None
    }

    pub(crate) fn guard(&self, headers: &HeaderMap, upload: bool) -> Result<(), Response<Body>> {
        self.authorized(headers)?;
        match self.injected(upload) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }
}

pub(crate) async fn set_faults(State(emu): State<Emulator>, axum::Json(f): axum::Json<Faults>) -> axum::Json<Faults> {
    emu.set_faults(f.clone());
    axum::Json(f)
}

pub(crate) async fn get_faults(State(emu): State<Emulator>) -> axum::Json<Faults> {
    axum::Json(emu.0.faults.lock().unwrap().clone())
}
