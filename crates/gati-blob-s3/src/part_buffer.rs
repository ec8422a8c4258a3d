//! [`PartBuffer`]: the bytes of the part being assembled, kept as the chunks they arrived in.
//!
//! Chunks are reference-counted `Bytes`, so accepting one copies nothing; bytes are copied once,
//! into one contiguous buffer, when a part or tail segment is sent (the SDK needs a contiguous,
//! re-sendable body to retry). Pure data structure, no IO.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// The chunks of the part being assembled, in order.
#[derive(Debug, Default)]
pub(crate) struct PartBuffer {
    chunks: VecDeque<Bytes>,
    len: u64,
}

impl PartBuffer {
    /// Returns a buffer starting with `chunks` (a resumed session's tail segments).
    pub(crate) fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let mut buffer = PartBuffer::default();
        chunks.into_iter().for_each(|chunk| buffer.push(chunk));
        buffer
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len() as u64;
            self.chunks.push_back(chunk);
        }
    }

    /// Removes and returns the first `n` bytes (at most the whole buffer), splitting a chunk if
    /// the boundary falls inside it.
    pub(crate) fn take_front(&mut self, n: u64) -> Vec<Bytes> {
        let mut taken = Vec::new();
        let mut wanted = n.min(self.len);
        self.len -= wanted;
        while wanted > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else { break };
            if chunk.len() as u64 > wanted {
                let rest = chunk.split_off(wanted as usize);
                self.chunks.push_front(rest);
            }
            wanted -= chunk.len() as u64;
            taken.push(chunk);
        }
        taken
    }

    /// Returns bytes `start..` as chunks sharing this buffer's memory (nothing is copied).
    pub(crate) fn slice_from(&self, start: u64) -> Vec<Bytes> {
        let mut skip = start;
        let mut out = Vec::new();
        for chunk in &self.chunks {
            let len = chunk.len() as u64;
            if skip >= len {
                skip -= len;
                continue;
            }
            out.push(chunk.slice(skip as usize..));
            skip = 0;
        }
        out
    }

    /// Returns the chunks, in order.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.chunks.iter()
    }
}

/// Joins chunks into one contiguous buffer; a single chunk is returned as is, without a copy.
pub(crate) fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    chunks.iter().for_each(|chunk| out.extend_from_slice(chunk));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Taking fronts and copying suffixes always yields the bytes pushed, in order.
        #[test]
        fn takes_and_copies_exact_bytes(
            chunk_lens in proptest::collection::vec(0usize..50, 0..20),
            cut in 0u64..600,
            from in 0u64..600,
        ) {
            let mut all = Vec::new();
            let mut buffer = PartBuffer::default();
            for (i, len) in chunk_lens.iter().enumerate() {
                let chunk: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
                all.extend_from_slice(&chunk);
                buffer.push(Bytes::from(chunk));
            }
            prop_assert_eq!(buffer.len(), all.len() as u64);
            let from_clamped = from.min(all.len() as u64) as usize;
            prop_assert_eq!(&concat(buffer.slice_from(from))[..], &all[from_clamped..]);
            let front = concat(buffer.take_front(cut));
            let cut = cut.min(all.len() as u64) as usize;
            prop_assert_eq!(&front[..], &all[..cut]);
            prop_assert_eq!(buffer.len(), (all.len() - cut) as u64);
            prop_assert_eq!(&concat(buffer.slice_from(0))[..], &all[cut..]);
            let rest: Vec<u8> = buffer.chunks().flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(&rest[..], &all[cut..]);
        }
    }
}
