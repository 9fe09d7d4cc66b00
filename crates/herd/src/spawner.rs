//! Spawner threads.
//!
//! Process creation blocks: `posix_spawn` returns only once the child has exec'd, and
//! `CreateProcessW` takes milliseconds (far more under an antivirus). So spawning never runs on
//! the event loop. A small fixed pool of spawner threads takes spawn requests and hands each
//! new child (or the reason there is none) back to the loop through its inbox. Two spawners
//! keep two cores busy creating processes while the loop reads output.

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
pub(crate) struct SpawnQueue {
    requests: Mutex<Requests>,
    cond: Condvar,
}

impl SpawnQueue {
    pub(crate) fn push(&self, token: Token, job: Arc<Job>) {
        self.requests.lock().unwrap().queue.push_back((token, job));
        self.cond.notify_one();
    }

    pub(crate) fn close(&self) {
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

/// Starts `count` spawner threads.
pub(crate) fn start(
    count: usize,
    queue: Arc<SpawnQueue>,
    shared: Arc<Shared>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..count)
        .map(|i| {
            let queue = queue.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("herd-spawner-{i}"))
                .spawn(move || {
                    while let Some((token, job)) = queue.pop() {
                        let result = sys::spawn(&job);
                        shared.send(Msg::Spawned { token, result });
                    }
                })
        })
        .collect()
}
