//! A fixed-size heap buffer whose start is aligned for direct I/O.
//!
//! `O_DIRECT` reads and writes need the user buffer aligned to the device's logical block size;
//! `Vec<u8>` only guarantees byte alignment, so this owns its allocation with the alignment stated
//! in the layout. It is allocated once per large upload and reused for its whole life, so the
//! allocation cost and the memory are both flat.
//!
//! Owns the one `unsafe` allocation of the fs backend. Calls nothing but `std::alloc`.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A zero-initialised, `align`-aligned byte buffer of fixed length.
pub(crate) struct AlignedBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain owned bytes, like a `Box<[u8]>`; nothing in it refers to a thread.
unsafe impl Send for AlignedBuffer {}
// SAFETY: shared access only hands out `&[u8]`, as `Box<[u8]>` does.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Allocates `len` zeroed bytes starting at a multiple of `align` (a power of two).
    ///
    /// Zeroed rather than uninitialised so the whole buffer is always a valid `[u8]`; it happens
    /// once per large upload, which is noise next to the upload.
    pub(crate) fn new_zeroed(len: usize, align: usize) -> Self {
        assert!(len > 0, "an empty aligned buffer is never useful");
        let layout = Layout::from_size_align(len, align).expect("alignment is a power of two and len is small");
        // SAFETY: `layout` has a non-zero size (asserted above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        AlignedBuffer { ptr, layout }
    }
}

impl Deref for AlignedBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl DerefMut for AlignedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only live reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_aligned_zeroed_and_writable() {
        let mut buffer = AlignedBuffer::new_zeroed(64 * 1024, 4096);
        assert_eq!(buffer.as_ptr() as usize % 4096, 0);
        assert_eq!(buffer.len(), 64 * 1024);
        assert!(buffer.iter().all(|&b| b == 0));
        buffer[4095] = 7;
        assert_eq!(buffer[4095], 7);
    }
}
