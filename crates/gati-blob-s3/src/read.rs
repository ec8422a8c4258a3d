//! Reading committed blobs: one (ranged) `GetObject`, streamed out as a [`ByteStream`].
//!
//! The response body is passed through chunk by chunk as the network delivers it, so a read holds
//! a bounded amount of memory whatever the blob size. Range semantics are the contract's
//! (`resolve_read_range`); the service's `Content-Range` is checked against them, and a body that
//! ends early is an error rather than a silently short blob.

use std::io;

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use gati_blob::{BlobError, BlobErrorKind, BlobRead, ByteStream, Result, resolve_read_range};
use gati_core::Digest;

use crate::error::Failure;
use crate::shared::Shared;

/// Opens blob `digest`, optionally only the inclusive range `range`.
pub(crate) async fn read_blob(shared: &Shared, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobRead> {
    let key = shared.keys.blob(digest);
    let not_found = || BlobError::new(BlobErrorKind::NotFound, format!("blob {digest}"));
    if let Some((start, end)) = range
        && start > end
    {
        // Services ignore an inverted Range header and send everything; answer from the size.
        let size = shared.bucket.head(&key).await.map_err(|f| f.into_blob())?.ok_or_else(not_found)?.0;
        return Err(resolve_read_range(size, range).expect_err("an inverted range is never satisfiable"));
    }
    let read = match shared.bucket.get(&key, range).await {
        Ok(read) => read,
        Err(failure) if failure.failure == Failure::NoSuchKey => return Err(not_found()),
        Err(failure) if failure.failure == Failure::InvalidRange => {
            let size = shared.bucket.head(&key).await.map_err(|f| f.into_blob())?.ok_or_else(not_found)?.0;
            return Err(BlobError::new(
                BlobErrorKind::RangeNotSatisfiable,
                format!("range {range:?} of the {size}-byte blob {digest}"),
            ));
        }
        Err(failure) => return Err(failure.into_blob()),
    };
    let size_total = read.size_total;
    let resolved = resolve_read_range(size_total, range)?;
    // A whole-object answer to a range covering the whole object is the same bytes.
    let served = read.range.or(resolved.filter(|&(start, end)| start == 0 && end + 1 == size_total));
    if served != resolved {
        return Err(BlobError::new(
            BlobErrorKind::Io,
            format!("asked for {resolved:?} of blob {digest} but the service sent {:?}", read.range),
        ));
    }
    let len = resolved.map_or(size_total, |(start, end)| end - start + 1);
    Ok(BlobRead { size_total, range: resolved, stream: sdk_body_stream(read.body, len, key) })
}

/// Adapts an SDK response body to a [`ByteStream`] that fails if it yields other than
/// `expected_len` bytes, and ends after its first error.
pub(crate) fn sdk_body_stream(body: SdkByteStream, expected_len: u64, key: String) -> ByteStream {
    struct State {
        body: SdkByteStream,
        seen: u64,
        expected_len: u64,
        key: String,
    }
    let state = State { body, seen: 0, expected_len, key };
    Box::pin(futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.body.try_next().await {
            Ok(Some(chunk)) => {
                state.seen += chunk.len() as u64;
                if state.seen > state.expected_len {
                    let message = format!("{} is longer than its {} bytes", state.key, state.expected_len);
                    return Some((Err(io::Error::new(io::ErrorKind::InvalidData, message)), None));
                }
                Some((Ok(chunk), Some(state)))
            }
            Ok(None) if state.seen == state.expected_len => None,
            Ok(None) => {
                let message = format!("{} ended after {} of {} bytes", state.key, state.seen, state.expected_len);
                Some((Err(io::Error::new(io::ErrorKind::UnexpectedEof, message)), None))
            }
            Err(e) => Some((Err(io::Error::other(e)), None)),
        }
    }))
}
