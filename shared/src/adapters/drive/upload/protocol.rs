//! The resumable upload protocol: sessions, streamed chunks, what Drive holds.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use md5::Md5;
use serde::{Deserialize, Deserializer};

use super::buffer::{SourceReader, Unconfirmed};
use super::{Attempt, DriveClient, classify, failure, gave_up, network};
use crate::adapters::drive::{AccessToken, DriveError, Failure};

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

impl<T: AccessToken> DriveClient<T> {
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
        let mut waits = backon::BackoffBuilder::build(self.config.backoff());
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
                        return Err(gave_up(failures, what, user_rate_limit));
                    }
                    tracing::debug!(failures, %what, offset, "chunk failed; asking Drive what it holds");
                    tokio::time::sleep(waits.next().unwrap_or(self.config.backoff_max)).await;
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
                        waits = backon::BackoffBuilder::build(self.config.backoff());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_range_headers() {
        assert_eq!(held_from_range(None), Ok(0));
        assert_eq!(held_from_range(Some("bytes=0-262143")), Ok(262_144));
        assert!(held_from_range(Some("bytes=5-9")).is_err());
    }
}
