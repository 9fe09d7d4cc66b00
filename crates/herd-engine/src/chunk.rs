//! The bytes of an output event, in a buffer that goes back to its herd when dropped.
//!
//! A job that streams a gigabyte arrives as some 16,000 chunks of 64 KiB. Each large chunk is
//! the very buffer the poller read into, so its bytes are never copied in user space; when the
//! consumer drops it, it goes back to a pool and carries a later read. Allocating a fresh
//! buffer for each chunk, filled by the event loop and freed by the consumer's thread, made
//! the allocator hand memory back to the system and fault it in again for every chunk.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// One chunk of a job's output ([`Event::Output`](crate::Event::Output)): dereferences to the
/// bytes. [`into_vec`](Chunk::into_vec) keeps them.
pub struct Chunk {
    buf: Vec<u8>,
    pool: Option<Arc<ChunkPool>>,
    /// Output let through for lack of room counts against the herd's memory budget until
    /// the consumer drops it (see `Builder::stream_when_full`).
    _charge: Option<crate::output::Charge>,
}

impl Chunk {
    /// The chunk, its bytes counted against `budget` while it lives.
    pub(crate) fn charged(mut self, budget: &Arc<crate::output::MemoryBudget>) -> Chunk {
        self._charge = Some(crate::output::Charge::new(self.buf.len(), budget));
        self
    }

    /// The bytes as a vector of their own (the buffer then does not go back to the pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.pool = None;
        std::mem::take(&mut self.buf)
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("len", &self.buf.len())
            .finish()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }
}

/// Buffers waiting to carry the next chunks.
pub(crate) struct ChunkPool {
    free: Mutex<Free>,
    /// At most this many bytes of buffers wait in the pool ([`KEEP_BYTES`], or the event
    /// queue's size if smaller).
    keep_bytes: usize,
}

/// Enough for a consumer that keeps up to a few chunks behind, as one that streams to a file
/// or a pipe does: 2 MiB and 16 MiB pools measured the same in W3, and a herd that once
/// streamed a burst should not hold the whole event queue's worth for the rest of its life.
pub(crate) const KEEP_BYTES: usize = 2 << 20;

#[derive(Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

/// Larger buffers are not kept (a read buffer is 64 KiB).
const KEEP_CAPACITY: usize = 128 * 1024;

impl ChunkPool {
    pub(crate) fn new(keep_bytes: usize) -> Self {
        ChunkPool {
            free: Mutex::default(),
            keep_bytes,
        }
    }

    /// A chunk of the bytes in `read`, a read buffer. When they fill at least half of it, the
    /// chunk takes the buffer itself and leaves a pooled one (or an empty one) in its place:
    /// streaming a gigabyte then copies nothing beyond the kernel's copy into the buffer. A
    /// smaller read is copied into a chunk of its own size, so that a queue of small chunks
    /// does not hold a read buffer each.
    pub(crate) fn chunk(self: &Arc<Self>, read: &mut Vec<u8>) -> Chunk {
        if read.len() * 2 < read.capacity() {
            return Chunk {
                buf: read.to_vec(),
                pool: None,
                _charge: None,
            };
        }
        let spare = {
            let mut free = self.free.lock().unwrap();
            let spare = free.buffers.pop().unwrap_or_default();
            free.bytes -= spare.capacity();
            spare
        };
        Chunk {
            buf: std::mem::replace(read, spare),
            pool: Some(self.clone()),
            _charge: None,
        }
    }

    fn give(&self, mut buf: Vec<u8>) {
        let size = buf.capacity();
        if size <= KEEP_CAPACITY {
            let mut free = self.free.lock().unwrap();
            if free.bytes + size <= self.keep_bytes {
                buf.clear();
                free.bytes += size;
                free.buffers.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: usize = 64 * 1024;

    /// A read buffer as a poller leaves it: `len` bytes in a buffer of a read's size.
    fn read(fill: u8, len: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(READ);
        buf.resize(len, fill);
        buf
    }

    #[test]
    fn a_large_read_is_handed_over_whole_and_its_buffer_comes_back() {
        let pool = Arc::new(ChunkPool::new(4 * READ));
        let mut buf = read(1, READ);
        let filled = buf.as_ptr();
        let chunk = pool.chunk(&mut buf);
        assert_eq!(chunk.as_ptr(), filled, "the bytes were not copied");
        assert_eq!(&*chunk, &[1; READ][..]);
        assert!(buf.is_empty(), "the poller got a buffer to refill");
        drop(chunk);
        // The next large read leaves the returned buffer in the poller's hands.
        let mut buf = read(2, READ / 2);
        let chunk = pool.chunk(&mut buf);
        assert_eq!(buf.as_ptr(), filled, "the dropped chunk's buffer is reused");
        assert_eq!(&*chunk, &[2; READ / 2][..]);
        // Kept: the bytes leave the pool with it.
        assert_eq!(chunk.into_vec(), vec![2; READ / 2]);
    }

    #[test]
    fn a_small_read_is_copied_into_a_chunk_of_its_size() {
        let pool = Arc::new(ChunkPool::new(4 * READ));
        let mut buf = read(3, 10);
        let filled = buf.as_ptr();
        let chunk = pool.chunk(&mut buf);
        assert_eq!(&*chunk, &[3; 10][..]);
        assert_eq!(buf.as_ptr(), filled, "the poller keeps its buffer");
        assert!(chunk.buf.capacity() < READ);
        drop(chunk);
        assert!(pool.free.lock().unwrap().buffers.is_empty());
    }

    #[test]
    fn the_pool_keeps_at_most_its_bytes() {
        let pool = Arc::new(ChunkPool::new(4 * READ));
        let many: Vec<Chunk> = (0..10).map(|i| pool.chunk(&mut read(i, READ))).collect();
        for (i, c) in many.iter().enumerate() {
            assert_eq!(&**c, &[i as u8; READ][..]);
        }
        drop(many);
        let free = pool.free.lock().unwrap();
        assert_eq!(free.buffers.len(), 4);
        assert_eq!(free.bytes, 4 * READ);
    }
}
