//! Streaming a byte range of a local file without blocking the async runtime.
//!
//! Each chunk is one `spawn_blocking` job that reads up to [`READ_CHUNK`] bytes; the next job is
//! started as soon as a chunk is handed out, so disk (or page cache) reads overlap with whatever
//! the consumer does with the previous chunk. No thread is held between chunks, so a slow client
//! costs memory for two chunks and no blocking-pool thread.

use std::fs::File;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Bytes per read: large enough that per-job overhead is noise next to the copy.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

type ReadJob = JoinHandle<(File, io::Result<Bytes>)>;

/// Yields `remaining` bytes of `file` from its current position, in chunks of [`READ_CHUNK`].
pub(crate) struct FileRangeStream {
    /// The file when no job holds it.
    file: Option<File>,
    /// Bytes still to be read by jobs not yet started.
    remaining: u64,
    in_flight: Option<ReadJob>,
}

impl FileRangeStream {
    /// Streams `len` bytes of `file`, which must already be positioned at the first one.
    pub(crate) fn new(file: File, len: u64) -> Self {
        FileRangeStream { file: Some(file), remaining: len, in_flight: None }
    }

    /// Starts reading the next chunk if anything is left to read.
    fn start_next_read(&mut self) {
        if self.remaining == 0 {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let want = self.remaining.min(READ_CHUNK as u64);
        self.remaining -= want;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = read_exact_chunk(&mut file, want);
            (file, result)
        }));
    }
}

/// Reads exactly `want` bytes into a fresh buffer; `read_to_end` fills the spare capacity without
/// zeroing it first.
fn read_exact_chunk(file: &mut File, want: u64) -> io::Result<Bytes> {
    let capacity = usize::try_from(want).expect("a chunk is at most READ_CHUNK bytes");
    let mut buf = Vec::with_capacity(capacity);
    file.take(want).read_to_end(&mut buf)?;
    if buf.len() != capacity {
        // Blobs are immutable, so a short read means the file was truncated under us.
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob file shorter than its size"));
    }
    Ok(Bytes::from(buf))
}

impl Stream for FileRangeStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.in_flight.is_none() {
            this.start_next_read();
        }
        let Some(job) = this.in_flight.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = ready!(Pin::new(job).poll(cx));
        this.in_flight = None;
        match outcome {
            Ok((file, Ok(bytes))) => {
                this.file = Some(file);
                // Prefetch: the next chunk is read while the consumer sends this one.
                this.start_next_read();
                Poll::Ready(Some(Ok(bytes)))
            }
            Ok((_, Err(error))) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(error)))
            }
            Err(join_error) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(io::Error::other(format!("blob read job failed: {join_error}")))))
            }
        }
    }
}
