//! The resumable upload protocol, streamed.
//!
//! `start` opens a session (its URI is what a restarted job needs to resume). `upload` reads
//! the source as a stream, sends chunks of `chunk_size` (a multiple of 256 KiB; the last may
//! be shorter), each body streaming out as the source is read, so reading and sending overlap.
//! It keeps only the bytes Drive has not yet confirmed, in 1 MiB segments: memory stays at
//! about one chunk whatever the file's size, and the source is never read twice. Every `308`
//! is read for what Drive really holds (never assume a whole chunk arrived). After a failed
//! chunk it backs off, asks Drive what it holds (`bytes */total`) and continues from there,
//! sending the unconfirmed bytes again.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};

use std::sync::Arc;

use super::auth::{DriveAuth, HttpsConnector, HubToken, https_connector};
use super::{AccessToken, DriveConfig, DriveError, Failure};

const FIELDS: &str = "id,name,size,md5Checksum,parents";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedFile {
    pub id: String,
    pub name: String,
    /// Drive sends sizes as strings.
    #[serde(default, deserialize_with = "u64_from_string")]
    pub size: u64,
    pub md5_checksum: Option<String>,
    #[serde(default)]
    pub parents: Vec<String>,
}

fn u64_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        N(u64),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// What Drive holds of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Complete(UploadedFile),
    /// The number of bytes held (the next byte to send).
    Offset(u64),
}

/// A request that got no answer (connection refused or reset, timeout): worth another try.
pub(super) fn network(e: reqwest::Error) -> Attempt {
    Attempt::Retry { what: format!("network: {e}"), user_rate_limit: false }
}

/// Drive's error answer, read as worth another try or final.
pub(super) fn classify(failure: Failure) -> Attempt {
    if failure.retryable() {
        Attempt::Retry { user_rate_limit: failure.is_user_rate_limit(), what: failure.to_string() }
    } else {
        Attempt::Fatal(DriveError::Refused { status: failure.status, reason: failure.reason, message: failure.message })
    }
}

/// Reads a non-success answer's body and classifies it.
pub(super) async fn failure(response: reqwest::Response) -> Attempt {
    let status = response.status().as_u16();
    classify(Failure::parse(status, &response.text().await.unwrap_or_default()))
}

/// One try's failure: worth another try, or final.
pub(super) enum Attempt {
    Retry { what: String, user_rate_limit: bool },
    Fatal(DriveError),
}

pub struct DriveClient<T> {
    pub(super) http: reqwest::Client,
    pub(super) hub: google_drive3::DriveHub<HttpsConnector>,
    pub(super) config: DriveConfig,
    token: Arc<T>,
}

/// `Range: bytes=0-N` → N + 1; no header → 0.
fn held_from_range(range: Option<&str>) -> Result<u64, String> {
    match range {
        None => Ok(0),
        Some(r) => r
            .trim()
            .strip_prefix("bytes=0-")
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n + 1)
            .ok_or_else(|| format!("unreadable Range header {r:?}")),
    }
}

impl DriveClient<DriveAuth> {
    /// The client the deliver job and the finalize function build at start:
    /// `DRIVE_API_ROOT` (default Google's), `DRIVE_CHUNK_SIZE` (16 MiB, a multiple of
    /// 256 KiB) and the credentials `DriveAuth::from_vars` reads.
    pub async fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &crate::config::Vars<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let mut config = DriveConfig::new(vars.string_or("DRIVE_API_ROOT", "https://www.googleapis.com"));
        config.chunk_size = vars.parse_or("DRIVE_CHUNK_SIZE", config.chunk_size)?;
        if config.chunk_size == 0 || !config.chunk_size.is_multiple_of(super::CHUNK_GRANULE) {
            return Err(ConfigError::Invalid {
                var: "DRIVE_CHUNK_SIZE",
                reason: "must be a positive multiple of 262144".into(),
            });
        }
        Ok(DriveClient::new(config, DriveAuth::from_vars(vars).await?))
    }
}

impl<T: AccessToken> DriveClient<T> {
    pub fn new(config: DriveConfig, token: T) -> Self {
        assert!(
            config.chunk_size > 0 && config.chunk_size.is_multiple_of(super::CHUNK_GRANULE),
            "chunk size must be a multiple of 256 KiB"
        );
        let http = crate::http::client_builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client with rustls builds");
        let token = Arc::new(token);
        let hyper_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https_connector());
        let mut hub = google_drive3::DriveHub::new(hyper_client, HubToken(token.clone()));
        hub.base_url(format!("{}/drive/v3/", config.api_root));
        hub.root_url(format!("{}/", config.api_root));
        DriveClient { http, hub, config, token }
    }

    pub fn config(&self) -> &DriveConfig {
        &self.config
    }

    /// Runs `op` until it succeeds, fails for good, or retryable failures outlast the attempts.
    /// A `userRateLimitExceeded` that outlasts them is the daily cap.
    pub(super) async fn with_retries<R, F, Fut>(&self, mut op: F) -> Result<R, DriveError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, Attempt>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(r) => return Ok(r),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry { what, user_rate_limit }) => {
                    attempt += 1;
                    if attempt >= self.config.max_attempts {
                        return Err(if user_rate_limit {
                            DriveError::DailyLimit(what)
                        } else {
                            DriveError::Exhausted { attempts: attempt, last: what }
                        });
                    }
                    tracing::debug!(attempt, %what, "Drive call failed; backing off");
                    tokio::time::sleep(self.config.backoff(attempt)).await;
                }
            }
        }
    }

    /// Sends `request` with the bearer token; a failure to get an answer is worth a retry.
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Attempt> {
        let token = self.token.token().await.map_err(Attempt::Fatal)?;
        request.bearer_auth(token).send().await.map_err(network)
    }

    /// Opens a resumable session for `name` in `parent`; returns the session URI. With `id`
    /// (from `generate_ids`) the file gets that id, so a retried create can never make a
    /// second copy: Drive answers 409 instead (`DriveError::Refused { status: 409, .. }`).
    pub async fn start(&self, name: &str, parent: &str, size: u64) -> Result<String, DriveError> {
        self.start_with_id(name, parent, size, None).await
    }

    pub async fn start_with_id(
        &self,
        name: &str,
        parent: &str,
        size: u64,
        id: Option<&str>,
    ) -> Result<String, DriveError> {
        let url = format!(
            "{}/upload/drive/v3/files?uploadType=resumable&supportsAllDrives=true&fields={FIELDS}",
            self.config.api_root
        );
        let mut metadata = serde_json::json!({"name": name, "parents": [parent]});
        if let Some(id) = id {
            metadata["id"] = serde_json::json!(id);
        }
        self.with_retries(|| async {
            let response =
                self.send(self.http.post(&url).header("x-upload-content-length", size).json(&metadata)).await?;
            let status = response.status().as_u16();
            if status == 200 {
                return response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(String::from)
                    .ok_or_else(|| {
                        Attempt::Fatal(DriveError::Refused {
                            status,
                            reason: "noLocation".into(),
                            message: "no session URI in the answer".into(),
                        })
                    });
            }
            Err(failure(response).await)
        })
        .await
    }

    /// Reads an answer to a chunk or a status query.
    async fn read_held(response: reqwest::Response) -> Result<Held, Attempt> {
        let status = response.status().as_u16();
        match status {
            200 | 201 => {
                let text = response.text().await.map_err(network)?;
                serde_json::from_str(&text).map(Held::Complete).map_err(|e| {
                    Attempt::Fatal(DriveError::Refused {
                        status,
                        reason: "badBody".into(),
                        message: format!("{e}: {text:.200}"),
                    })
                })
            }
            308 => {
                let range = response.headers().get(reqwest::header::RANGE).and_then(|r| r.to_str().ok());
                held_from_range(range)
                    .map(Held::Offset)
                    .map_err(|m| Attempt::Fatal(DriveError::Refused { status, reason: "badRange".into(), message: m }))
            }
            404 | 410 => Err(Attempt::Fatal(DriveError::SessionGone(format!("{status}")))),
            _ => {
                let failure = Failure::parse(status, &response.text().await.unwrap_or_default());
                if failure.retryable() {
                    Err(classify(failure))
                } else {
                    // Another 4xx on a session: the documented answer is a new session.
                    Err(Attempt::Fatal(DriveError::SessionGone(failure.to_string())))
                }
            }
        }
    }

    /// Asks Drive how much of the upload it holds.
    pub async fn held(&self, session: &str, total: u64) -> Result<Held, DriveError> {
        self.with_retries(|| async {
            let request = self
                .http
                .put(session)
                .header(reqwest::header::CONTENT_RANGE, format!("bytes */{total}"))
                .header(reqwest::header::CONTENT_LENGTH, 0);
            let response = self.send(request).await?;
            Self::read_held(response).await
        })
        .await
    }

    /// Sends bytes `offset..offset + n` as one chunk whose body is streamed: the bytes Drive
    /// has not confirmed go first, then the source is read as the request goes out, so reading
    /// and sending overlap within the chunk. The outer error is the source's (final); the inner
    /// result is Drive's answer.
    async fn put_streamed<S, E>(
        &self,
        session: &str,
        offset: u64,
        n: u64,
        total: u64,
        reader: &mut SourceReader<'_, S>,
    ) -> Result<Result<Held, Attempt>, DriveError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let end = offset + n;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
        // The channel holds clones of segments the reader keeps anyway: it adds no copy and
        // no memory.
        for segment in reader.unconfirmed.prefix(n) {
            let _ = tx.send(Ok(segment));
        }
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|segment| (segment, rx))
        }));
        let request = self
            .http
            .put(session)
            .header(reqwest::header::CONTENT_RANGE, format!("bytes {offset}-{}/{total}", end - 1))
            .header(reqwest::header::CONTENT_LENGTH, n)
            .body(body);
        let reading = async move {
            let read = reader
                .read_until(end, total, |segment| {
                    let _ = tx.send(Ok(segment));
                })
                .await;
            if let Err(e) = &read {
                // Ends the body early: the request fails rather than sending a short chunk.
                let _ = tx.send(Err(std::io::Error::other(e.to_string())));
            }
            read
        };
        let answer = async {
            let response = self.send(request).await?;
            Self::read_held(response).await
        };
        let (read, answer) = tokio::join!(reading, answer);
        read?;
        Ok(answer)
    }

    /// Streams `source` (which starts at byte `start`, what Drive already holds) into the
    /// session. Every byte read from `source` goes through `hasher` once. `progress` hears the
    /// number of bytes Drive confirms, as it grows.
    ///
    /// Only the bytes Drive has not confirmed are kept: memory stays at about one chunk
    /// whatever the file's size.
    pub async fn upload<S, E>(
        &self,
        session: &str,
        start: u64,
        total: u64,
        source: S,
        hasher: &mut Md5,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<UploadedFile, DriveError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if start > total {
            return Err(DriveError::Source(format!("resuming at {start} of a {total}-byte file")));
        }
        let chunk_size = self.config.chunk_size as u64;
        let mut reader = SourceReader {
            source,
            hasher,
            unconfirmed: Unconfirmed::default(),
            segment: BytesMut::new(),
            read_to: start,
            ended: false,
        };
        let mut offset = start;
        // Attempts in a row that moved nothing. A failed chunk counts once: the status query
        // that follows it reports on the same attempt and adds nothing.
        let mut failures = 0u32;
        loop {
            let n = chunk_size.min(total - offset);
            let sent = if n == 0 {
                // Nothing left to send (an empty file, or a resend after the last byte): the
                // source must be at its end, and the status query completes the upload.
                reader.read_until(total, total, |_| {}).await?;
                self.held(session, total).await.map_err(Attempt::Fatal)
            } else {
                self.put_streamed(session, offset, n, total, &mut reader).await?
            };
            let (held, counted) = match sent {
                Ok(h) => (h, false),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry { what, user_rate_limit }) => {
                    failures += 1;
                    if failures >= self.config.max_attempts {
                        return Err(if user_rate_limit {
                            DriveError::DailyLimit(what)
                        } else {
                            DriveError::Exhausted { attempts: failures, last: what }
                        });
                    }
                    tracing::debug!(failures, %what, offset, "chunk failed; asking Drive what it holds");
                    tokio::time::sleep(self.config.backoff(failures)).await;
                    (self.held(session, total).await?, true)
                }
            };
            match held {
                Held::Complete(file) => {
                    progress(total);
                    return Ok(file);
                }
                Held::Offset(h) => {
                    if h < offset || h > reader.read_to.min(offset + n) {
                        // Drive lost bytes it had confirmed, or claims bytes never sent.
                        return Err(DriveError::SessionGone(format!("Drive holds {h} bytes, expected {offset}..")));
                    }
                    // Whatever Drive did not take of the chunk stays in front, to go first.
                    reader.unconfirmed.confirm(h - offset);
                    if h > offset {
                        failures = 0;
                        offset = h;
                        progress(offset);
                    } else if !counted {
                        // A 308 that took none of the chunk is a failed attempt of its own.
                        failures += 1;
                        if failures >= self.config.max_attempts {
                            return Err(DriveError::Exhausted { attempts: failures, last: "no bytes accepted".into() });
                        }
                    }
                }
            }
        }
    }
}

/// Bytes read from the source that Drive has not confirmed yet, in the order read: what a
/// retried chunk sends again.
#[derive(Default)]
struct Unconfirmed {
    segments: std::collections::VecDeque<Bytes>,
}

impl Unconfirmed {
    fn push(&mut self, segment: Bytes) {
        self.segments.push_back(segment);
    }

    /// Forgets the first `n` bytes, which Drive now holds.
    fn confirm(&mut self, mut n: u64) {
        while n > 0 {
            let Some(front) = self.segments.front_mut() else { return };
            if front.len() as u64 <= n {
                n -= front.len() as u64;
                self.segments.pop_front();
            } else {
                let _ = front.split_to(n as usize);
                n = 0;
            }
        }
    }

    /// The first `n` bytes (or fewer, if fewer are held), sharing the held memory.
    fn prefix(&self, n: u64) -> impl Iterator<Item = Bytes> + '_ {
        let mut left = n;
        self.segments.iter().map_while(move |segment| {
            (left > 0).then(|| {
                let take = (segment.len() as u64).min(left) as usize;
                left -= take as u64;
                segment.slice(..take)
            })
        })
    }
}

/// What the source gives is copied into segments this big before it is kept and sent: a
/// source's frames can be small and can pin buffers far larger than themselves (an HTTP
/// client's read buffer), so keeping them as they come would hold more memory than the bytes
/// and send them in many small writes. One copy buys exact memory and large writes.
const SEGMENT: usize = 1024 * 1024;

/// The source of one upload, read once: each frame is hashed as it arrives, and its bytes are
/// kept until Drive confirms them.
struct SourceReader<'h, S> {
    source: S,
    hasher: &'h mut Md5,
    unconfirmed: Unconfirmed,
    /// Bytes read but not yet in `unconfirmed` (always empty between calls of `read_until`).
    segment: BytesMut,
    /// The file offset of the next byte the source gives.
    read_to: u64,
    ended: bool,
}

impl<S, E> SourceReader<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads until the file's bytes up to `end` are held, handing each new segment's part below
    /// `end` to `send`. At the file's last byte, the source must end too.
    async fn read_until(&mut self, end: u64, total: u64, mut send: impl FnMut(Bytes)) -> Result<(), DriveError> {
        // The segment holding the file's last byte goes out only once the source has ended,
        // so a source longer than announced never completes the file.
        let mut last = None;
        while self.read_to < end || (end == total && !self.ended) {
            match self.source.next().await {
                Some(Ok(frame)) => {
                    if self.read_to + frame.len() as u64 > total {
                        return Err(DriveError::Source(format!("the source holds more than {total} bytes")));
                    }
                    self.hasher.update(&frame);
                    let mut rest = &frame[..];
                    while !rest.is_empty() {
                        if self.segment.capacity() == 0 {
                            self.segment = BytesMut::with_capacity(SEGMENT);
                        }
                        let take = rest.len().min(SEGMENT - self.segment.len());
                        self.segment.extend_from_slice(&rest[..take]);
                        self.read_to += take as u64;
                        rest = &rest[take..];
                        if self.segment.len() == SEGMENT || self.read_to >= end {
                            self.flush(end, total, &mut send, &mut last);
                        }
                    }
                }
                Some(Err(e)) => return Err(DriveError::Source(e.to_string())),
                None => {
                    self.ended = true;
                    if self.read_to < end {
                        return Err(DriveError::Source(format!(
                            "the source ended at {} of {total} bytes",
                            self.read_to
                        )));
                    }
                }
            }
        }
        self.flush(end, total, &mut send, &mut last);
        if let Some(part) = last {
            send(part);
        }
        Ok(())
    }

    /// Moves the segment into `unconfirmed` and sends its part below `end` (or keeps it in
    /// `last` if it holds the file's last byte).
    fn flush(&mut self, end: u64, total: u64, send: &mut impl FnMut(Bytes), last: &mut Option<Bytes>) {
        if self.segment.is_empty() {
            return;
        }
        let segment = std::mem::take(&mut self.segment).freeze();
        let start = self.read_to - segment.len() as u64;
        self.unconfirmed.push(segment.clone());
        let below_end = (segment.len() as u64).min(end.saturating_sub(start)) as usize;
        if below_end > 0 {
            let part = segment.slice(..below_end);
            if self.read_to == total { *last = Some(part) } else { send(part) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_bytes(u: &Unconfirmed, n: u64) -> Vec<u8> {
        u.prefix(n).flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn unconfirmed_segments_are_confirmed_and_resent_across_segment_edges() {
        let mut u = Unconfirmed::default();
        for segment in [&b"abc"[..], b"", b"defgh", b"ij"] {
            u.push(Bytes::copy_from_slice(segment));
        }
        assert_eq!(held_bytes(&u, 4), b"abcd");
        assert_eq!(held_bytes(&u, 99), b"abcdefghij", "a prefix longer than held is what is held");
        u.confirm(4);
        assert_eq!(held_bytes(&u, 99), b"efghij");
        u.confirm(4);
        assert_eq!((held_bytes(&u, 1), held_bytes(&u, 99)), (b"i".to_vec(), b"ij".to_vec()));
        u.confirm(2);
        assert_eq!(u.prefix(5).count(), 0);
    }

    #[test]
    fn reads_range_headers() {
        assert_eq!(held_from_range(None), Ok(0));
        assert_eq!(held_from_range(Some("bytes=0-262143")), Ok(262_144));
        assert!(held_from_range(Some("bytes=5-9")).is_err());
    }

    #[test]
    fn classifies_failures_as_drive_documents() {
        let f = |status, reason: &str| Failure { status, reason: reason.into(), message: String::new() };
        assert!(f(429, "rateLimitExceeded").retryable());
        assert!(f(503, "backendError").retryable());
        assert!(f(403, "rateLimitExceeded").retryable());
        assert!(f(403, "userRateLimitExceeded").retryable() && f(403, "userRateLimitExceeded").is_user_rate_limit());
        assert!(!f(403, "storageQuotaExceeded").retryable(), "never retry a full drive");
        assert!(!f(400, "invalid").retryable());
        let parsed = Failure::parse(
            403,
            r#"{"error":{"code":403,"message":"User rate limit exceeded.","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#,
        );
        assert_eq!(parsed.reason, "userRateLimitExceeded");
        assert_eq!(parsed.message, "User rate limit exceeded.");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = DriveConfig::new("http://x");
        for attempt in 0..30 {
            assert!(c.backoff(attempt) <= c.backoff_max);
        }
    }
}
