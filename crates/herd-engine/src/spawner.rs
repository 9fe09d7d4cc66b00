//! Spawner threads, for the spawns that block.
//!
//! On Linux a spawn normally does not wait for the child (`clone3` returns as soon as the
//! child exists; see `sys/linux/clone3.rs`), so the event loop spawns itself and no job crosses
//! a thread to start. Some spawns do block: `CreateProcessW` takes milliseconds (far more under
//! an antivirus), `posix_spawn` (Linux's fallback) waits for the child's exec, and opening a
//! job's stdin file can wait on a FIFO or a slow file system. Those go to a small fixed pool of
//! spawner threads, which hand each new child (or the reason there is none) back to the loop
//! through its inbox. The threads start with the first such spawn, so a run that never needs
//! them never has them.

use crate::engine::Msg;
use crate::herd::Shared;
use crate::job::Job;
use crate::sys::{self, Token};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

#[derive(Default)]
struct Requests {
    queue: VecDeque<(Token, Arc<Job>)>,
    closed: bool,
}

/// The queue of spawn requests, shared by the loop (producer) and the spawners (consumers).
#[derive(Default)]
struct SpawnQueue {
    requests: Mutex<Requests>,
    cond: Condvar,
}

impl SpawnQueue {
    fn push(&self, token: Token, job: Arc<Job>) {
        self.requests.lock().unwrap().queue.push_back((token, job));
        self.cond.notify_one();
    }

    fn close(&self) {
        self.requests.lock().unwrap().closed = true;
        self.cond.notify_all();
    }

    fn pop(&self) -> Option<(Token, Arc<Job>)> {
        let mut requests = self.requests.lock().unwrap();
        loop {
            if let Some(r) = requests.queue.pop_front() {
                return Some(r);
            }
            if requests.closed {
                return None;
            }
            requests = self.cond.wait(requests).unwrap();
        }
    }
}

/// The pool, owned by the loop. Dropping it stops the threads and waits for them.
pub(crate) struct Spawners {
    queue: Arc<SpawnQueue>,
    count: usize,
    shared: Arc<Shared>,
    containment: Arc<sys::Containment>,
    threads: Vec<JoinHandle<()>>,
}

impl Spawners {
    pub(crate) fn new(
        count: usize,
        shared: Arc<Shared>,
        containment: Arc<sys::Containment>,
    ) -> Self {
        Spawners {
            queue: Arc::default(),
            count,
            shared,
            containment,
            threads: Vec::new(),
        }
    }

    /// Hands a spawn to the threads (started now if this is the first). The answer comes as
    /// [`Msg::Spawned`]. Gives the request back if no thread could be started.
    pub(crate) fn push(&mut self, token: Token, job: Arc<Job>) -> Result<(), Arc<Job>> {
        while self.threads.len() < self.count {
            let queue = self.queue.clone();
            let shared = self.shared.clone();
            let containment = self.containment.clone();
            let started = std::thread::Builder::new()
                .name(format!("herd-spawner-{}", self.threads.len()))
                .spawn(move || {
                    while let Some((token, job)) = queue.pop() {
                        let result = sys::spawn(&job, &containment);
                        shared.send(Msg::Spawned { token, result });
                    }
                });
            match started {
                Ok(t) => self.threads.push(t),
                Err(_) if self.threads.is_empty() => return Err(job),
                // Fewer threads than asked for still do the work.
                Err(_) => break,
            }
        }
        self.queue.push(token, job);
        Ok(())
    }
}

impl Drop for Spawners {
    fn drop(&mut self) {
        self.queue.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
