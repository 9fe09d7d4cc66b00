//! [`Stdin::stream`](crate::Stdin::stream): a job's stdin fed while the job runs.
//!
//! The caller keeps a [`StdinSender`] and sends blocks of bytes; the event loop writes them
//! into the job's pipe as it drains, like any other stdin, with no thread per job. The queue
//! holds at most about `limit` bytes, so a slow job slows its sender, not herd's memory.
//! When the job's stdin closes (the job ended, or closed it), what was queued and not written
//! is kept for the sender to take back ([`StdinSender::take_unsent`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

type Callback = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled when the queue shrinks or the reader goes: for [`StdinSender::send`].
    room: Condvar,
}

struct State {
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    limit: usize,
    /// The sender is gone: the job gets end of file once the queue is written.
    sender_gone: bool,
    /// Handles that may still read the queue: the [`StdinStream`]s (a job and its clones)
    /// and the event loop's feed. None left: nothing will ever read what is sent.
    readers: usize,
    /// The feed found the queue empty and waits for `wake` to be called.
    starved: bool,
    /// Wakes the event loop (set when the job is registered).
    wake: Option<Callback>,
    /// The sender's callback for "the queue shrank".
    on_room: Option<Callback>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The job's side of a stream: what [`Stdin::Stream`](crate::Stdin::Stream) holds.
pub struct StdinStream(pub(crate) Arc<Shared>);

impl StdinStream {
    pub(crate) fn new(limit: usize) -> (StdinStream, StdinSender) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: 0,
                limit: limit.max(1),
                sender_gone: false,
                readers: 1,
                starved: false,
                wake: None,
                on_room: None,
            }),
            room: Condvar::new(),
        });
        (StdinStream(shared.clone()), StdinSender { shared })
    }

    /// The event loop's reader of this stream.
    pub(crate) fn feed(&self) -> StreamFeed {
        self.0.lock().readers += 1;
        StreamFeed {
            shared: self.0.clone(),
            current: Vec::new(),
            at: 0,
        }
    }
}

impl Clone for StdinStream {
    fn clone(&self) -> Self {
        self.0.lock().readers += 1;
        StdinStream(self.0.clone())
    }
}

impl Drop for StdinStream {
    fn drop(&mut self) {
        release_reader(&self.0);
    }
}

impl std::fmt::Debug for StdinStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.lock();
        f.debug_struct("StdinStream")
            .field("queued", &state.queued)
            .field("limit", &state.limit)
            .finish()
    }
}

fn release_reader(shared: &Shared) {
    let on_room = {
        let mut state = shared.lock();
        state.readers -= 1;
        if state.readers > 0 {
            return;
        }
        state.on_room.clone()
    };
    // Nothing will read any more: a waiting sender must learn it now.
    shared.room.notify_all();
    if let Some(on_room) = on_room {
        on_room();
    }
}

/// What the event loop holds: the block being written and the way to the next.
pub(crate) struct StreamFeed {
    shared: Arc<Shared>,
    current: Vec<u8>,
    at: usize,
}

/// What [`StreamFeed::next`] found.
pub(crate) enum Next<'a> {
    Bytes(&'a [u8]),
    /// Nothing queued yet: the event loop is woken when there is.
    Starved,
    /// The sender is gone and everything was written.
    End,
}

impl StreamFeed {
    pub(crate) fn next(&mut self) -> Next<'_> {
        if self.at == self.current.len() {
            let on_room = {
                let mut state = self.shared.lock();
                match state.queue.pop_front() {
                    Some(block) => {
                        state.queued -= block.len();
                        self.current = block;
                        self.at = 0;
                        state.on_room.clone()
                    }
                    None if state.sender_gone => return Next::End,
                    None => {
                        state.starved = true;
                        return Next::Starved;
                    }
                }
            };
            self.shared.room.notify_all();
            if let Some(on_room) = on_room {
                on_room();
            }
        }
        Next::Bytes(&self.current[self.at..])
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.at += n;
    }

    /// Has the event loop woken by `wake` when a starved stream gets bytes or ends.
    pub(crate) fn set_waker(&mut self, wake: Callback) {
        self.shared.lock().wake = Some(wake);
    }

    /// Bytes sent and not written yet.
    pub(crate) fn pending(&self) -> usize {
        self.current.len() - self.at + self.shared.lock().queued
    }

    /// Whether the sender is gone and everything it sent is written.
    pub(crate) fn is_done(&self) -> bool {
        self.at == self.current.len() && {
            let state = self.shared.lock();
            state.sender_gone && state.queue.is_empty()
        }
    }
}

impl Drop for StreamFeed {
    fn drop(&mut self) {
        self.shared.lock().wake = None;
        release_reader(&self.shared);
    }
}

/// The caller's side of [`Stdin::stream`](crate::Stdin::stream): sends the job its input
/// while it runs. Dropping it ends the job's input once everything sent is written.
pub struct StdinSender {
    shared: Arc<Shared>,
}

/// Why [`StdinSender::try_send`] gave the bytes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds its limit already: send again when there is room.
    Full(Vec<u8>),
    /// Nothing will read them: the job's stdin is closed (it ended, or closed it).
    Closed(Vec<u8>),
}

impl StdinSender {
    /// Queues `bytes` for the job unless the queue is full (it takes one block whatever its
    /// size when empty) or the job's stdin is closed; gives them back if not.
    pub fn try_send(&self, bytes: Vec<u8>) -> Result<(), TrySendError> {
        let wake = {
            let mut state = self.shared.lock();
            if state.readers == 0 {
                return Err(TrySendError::Closed(bytes));
            }
            if state.queued >= state.limit && !state.queue.is_empty() {
                return Err(TrySendError::Full(bytes));
            }
            state.queued += bytes.len();
            state.queue.push_back(bytes);
            state.starved.then(|| {
                state.starved = false;
                state.wake.clone()
            })
        };
        if let Some(Some(wake)) = wake {
            wake();
        }
        Ok(())
    }

    /// Queues `bytes`, waiting for room; gives them back if the job's stdin is closed.
    pub fn send(&self, mut bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        loop {
            match self.try_send(bytes) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(b)) => return Err(b),
                Err(TrySendError::Full(b)) => {
                    bytes = b;
                    let state = self.shared.lock();
                    if state.readers > 0 && state.queued >= state.limit && !state.queue.is_empty() {
                        drop(self.shared.room.wait(state));
                    }
                }
            }
        }
    }

    /// Calls `f` (on herd's event loop: it must be quick) whenever the queue shrinks or the
    /// job's stdin closes: a sender feeding many jobs waits for that instead of for one job.
    pub fn on_room(&self, f: impl Fn() + Send + Sync + 'static) {
        self.shared.lock().on_room = Some(Arc::new(f));
    }

    /// How many bytes are queued and not yet taken for writing.
    pub fn queued(&self) -> usize {
        self.shared.lock().queued
    }

    /// Whether the job's stdin is closed: nothing sent now would be read.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().readers == 0
    }

    /// Takes back what is queued and was not written (after the job's stdin closed, what it
    /// never got).
    pub fn take_unsent(&self) -> Vec<Vec<u8>> {
        let mut state = self.shared.lock();
        state.queued = 0;
        state.queue.drain(..).collect()
    }
}

impl Drop for StdinSender {
    fn drop(&mut self) {
        let wake = {
            let mut state = self.shared.lock();
            state.sender_gone = true;
            std::mem::take(&mut state.starved).then(|| state.wake.clone())
        };
        if let Some(Some(wake)) = wake {
            wake();
        }
    }
}

impl std::fmt::Debug for StdinSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinSender")
            .field("queued", &self.queued())
            .finish()
    }
}
