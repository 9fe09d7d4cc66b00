//! The bytes of an output event, in a buffer that goes back to its herd when dropped.
//!
//! A job that streams a gigabyte arrives as some 16,000 chunks of 64 KiB. Allocating a fresh
//! buffer for each, filled by the event loop and freed by the consumer's thread, made the
//! allocator hand memory back to the system and fault it in again for every chunk; the pool
//! keeps a few buffers in circulation instead.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// One chunk of a job's output ([`Event::Output`](crate::Event::Output)): dereferences to the
/// bytes. [`into_vec`](Chunk::into_vec) keeps them.
pub struct Chunk {
    buf: Vec<u8>,
    pool: Option<Arc<ChunkPool>>,
}

impl Chunk {
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
#[derive(Default)]
pub(crate) struct ChunkPool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// At most this many buffers wait in the pool (2 MiB of 64 KiB reads).
const KEEP: usize = 32;
/// Larger buffers are not kept.
const KEEP_CAPACITY: usize = 128 * 1024;

impl ChunkPool {
    /// A chunk holding a copy of `data`.
    pub(crate) fn chunk(self: &Arc<Self>, data: &[u8]) -> Chunk {
        let mut buf = self.free.lock().unwrap().pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        Chunk {
            buf,
            pool: Some(self.clone()),
        }
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() <= KEEP_CAPACITY {
            let mut free = self.free.lock().unwrap();
            if free.len() < KEEP {
                free.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_chunk_carries_the_next_one_and_the_pool_stays_bounded() {
        let pool = Arc::new(ChunkPool::default());
        let first = pool.chunk(b"first chunk");
        let buffer = first.as_ptr();
        drop(first);
        let second = pool.chunk(b"second");
        assert_eq!(&*second, b"second");
        assert_eq!(
            second.as_ptr(),
            buffer,
            "the dropped chunk's buffer is reused"
        );
        // Kept: the bytes leave the pool with it.
        assert_eq!(second.into_vec(), b"second");
        let many: Vec<Chunk> = (0..KEEP * 2).map(|i| pool.chunk(&[i as u8; 100])).collect();
        for (i, c) in many.iter().enumerate() {
            assert_eq!(&**c, &[i as u8; 100][..]);
        }
        drop(many);
        assert_eq!(pool.free.lock().unwrap().len(), KEEP);
        drop(pool.chunk(&vec![0; KEEP_CAPACITY * 2]));
        assert!(pool
            .free
            .lock()
            .unwrap()
            .iter()
            .all(|b| b.capacity() <= KEEP_CAPACITY));
    }
}
