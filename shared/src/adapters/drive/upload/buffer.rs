//! What an upload keeps of its source: the bytes Drive has not confirmed, in 1 MiB segments.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};

use crate::adapters::drive::DriveError;

/// Bytes read from the source that Drive has not confirmed yet, in the order read: what a
/// retried chunk sends again.
#[derive(Default)]
pub(super) struct Unconfirmed {
    segments: std::collections::VecDeque<Bytes>,
}

impl Unconfirmed {
    pub(super) fn push(&mut self, segment: Bytes) {
        self.segments.push_back(segment);
    }

    /// Forgets the first `n` bytes, which Drive now holds.
    pub(super) fn confirm(&mut self, mut n: u64) {
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
    pub(super) fn prefix(&self, n: u64) -> impl Iterator<Item = Bytes> + '_ {
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
pub(super) struct SourceReader<'h, S> {
    pub(super) source: S,
    pub(super) hasher: &'h mut Md5,
    pub(super) unconfirmed: Unconfirmed,
    /// Bytes read but not yet in `unconfirmed` (always empty between calls of `read_until`).
    pub(super) segment: BytesMut,
    /// The file offset of the next byte the source gives.
    pub(super) read_to: u64,
    pub(super) ended: bool,
}

impl<S, E> SourceReader<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads until the file's bytes up to `end` are held, handing each new segment's part below
    /// `end` to `send`. At the file's last byte, the source must end too.
    pub(super) async fn read_until(
        &mut self,
        end: u64,
        total: u64,
        mut send: impl FnMut(Bytes),
    ) -> Result<(), DriveError> {
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
}
