//! `multipart/related` bodies, as Drive's multipart upload sends them.

use axum::body::{Body, Bytes};
use axum::http::Response;

use crate::errors::bad_request;

/// Splits a `multipart/related` body (RFC 2387, as Drive's multipart upload sends it) into
/// its metadata part and its media part.
pub(crate) fn parse_multipart(content_type: Option<&str>, body: &[u8]) -> Result<(Bytes, Bytes), Response<Body>> {
    let bad = |m: &str| bad_request("badContent", m);
    let ct = content_type.ok_or_else(|| bad("Content-Type is required for a multipart upload."))?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/related") {
        return Err(bad("A multipart upload must be multipart/related."));
    }
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(|| bad("The multipart Content-Type has no boundary."))?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let Some(first) = find(rest, delimiter.as_bytes()) else {
        return Err(bad("No multipart boundary in the body."));
    };
    rest = &rest[first + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break; // the closing delimiter
        }
        let Some(next) = find(rest, delimiter.as_bytes()) else {
            return Err(bad("The multipart body is not terminated."));
        };
        let part = &rest[..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        // The CRLF before a delimiter belongs to the delimiter.
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            return Err(bad("A multipart part has no header end."));
        };
        parts.push(Bytes::copy_from_slice(&part[split + 4..]));
        rest = &rest[next + delimiter.len()..];
    }
    match <[Bytes; 2]>::try_from(parts) {
        Ok([metadata, media]) => Ok((metadata, media)),
        Err(_) => Err(bad("A multipart upload has exactly two parts: metadata, then media.")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
