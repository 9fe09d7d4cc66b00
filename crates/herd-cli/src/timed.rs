//! `--block-timeout`: a block is given out when reading it has taken that long, with the whole
//! records read so far, as in GNU parallel (`tail -f log | herd --pipe --block-timeout 10s`
//! hands each job what came in ten seconds, not a full `--block` that may take hours).
//!
//! A read from a pipe cannot be given a deadline portably, so the input is read on a thread of
//! its own, in chunks, and waited for with one: a read that meets the block's deadline before
//! any byte fails with [`io::ErrorKind::TimedOut`], and the cutter (blocks.rs) then gives out
//! what it has. The thread keeps at most a few chunks ahead.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;

/// When the block being read is due, set by the cutter at each block's start.
#[derive(Clone)]
pub struct Deadline {
    due: Arc<Mutex<Instant>>,
    timeout: Duration,
}

impl Deadline {
    /// A new block starts: it is due a timeout from now.
    pub fn restart(&self) {
        *self.due.lock().unwrap() = Instant::now() + self.timeout;
    }

    fn left(&self) -> Duration {
        self.due
            .lock()
            .unwrap()
            .saturating_duration_since(Instant::now())
    }
}

/// The input, read ahead on a thread, with reads that time out at the block's deadline.
pub struct TimedInput {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    deadline: Deadline,
}

impl TimedInput {
    pub fn new(mut input: Box<dyn Read + Send>, timeout: Duration) -> io::Result<TimedInput> {
        let (tx, rx) = sync_channel(4);
        std::thread::Builder::new()
            .name("herd-input".into())
            .spawn(move || loop {
                let mut chunk = vec![0; CHUNK];
                match input.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            })?;
        let deadline = Deadline {
            due: Arc::new(Mutex::new(Instant::now() + timeout)),
            timeout,
        };
        Ok(TimedInput {
            chunks: rx,
            chunk: Vec::new(),
            at: 0,
            deadline,
        })
    }

    /// The handle the cutter restarts at each block.
    pub fn deadline(&self) -> Deadline {
        self.deadline.clone()
    }
}

impl Read for TimedInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            match self.chunks.recv_timeout(self.deadline.left()) {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "--block-timeout"))
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = (self.chunk.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
