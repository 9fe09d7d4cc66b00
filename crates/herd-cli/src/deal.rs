//! `--round-robin`: blocks dealt to a few long-lived jobs instead of one job per block.
//!
//! Each job's stdin is a stream ([`herd_engine::Stdin::stream`]): herd's event loop writes into the
//! job's pipe what is sent to it, as the job reads. The first blocks each start a job, up to
//! one per job slot (so a short input starts fewer, as GNU parallel does); then a dealing
//! thread gives every further block to whichever job has room, taking turns, and waits for
//! room when none has (each stream holds one block beyond what its pipe holds). When the input
//! ends the streams close and the jobs see end of file. Blocks a job never got because it
//! ended early go to the others; if every job ended, the rest of the input reaches no one,
//! and herd says so. With `--header`, each job gets the header once, before its first block
//! (as GNU parallel does).

use crate::blocks::Blocks;
use herd_engine::{StdinSender, TrySendError};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Stream = Blocks<Box<dyn Read + Send>>;

/// Deals `--pipe`'s blocks to one job per slot.
pub struct Dealer {
    /// The input, until the dealing thread takes it.
    blocks: Option<Stream>,
    senders: Vec<StdinSender>,
    jobs: usize,
    block_size: usize,
    /// Wakes the dealing thread when a job's stream has room (bounded: one wake-up is as
    /// good as many).
    room: (SyncSender<()>, Option<Receiver<()>>),
    /// How the dealing ended, for the run's end.
    pub state: Arc<Mutex<Dealt>>,
}

/// How far the dealing got.
#[derive(Default)]
pub struct Dealt {
    /// The input ended and every job was given end of file.
    done: bool,
    /// Why the dealing stopped early.
    error: Option<String>,
}

impl Dealt {
    /// At the run's end (every job ended): what went wrong, if the input was not all dealt.
    pub fn failure(&mut self) -> Option<String> {
        self.error.take().or_else(|| {
            (!self.done).then(|| {
                "every --round-robin job ended before the input did; the rest of the input \
                 went to no job"
                    .to_string()
            })
        })
    }
}

impl Dealer {
    pub fn new(blocks: Stream, jobs: usize, block_size: usize) -> Dealer {
        let (tx, rx) = sync_channel(1);
        Dealer {
            blocks: Some(blocks),
            senders: Vec::new(),
            jobs: jobs.max(1),
            block_size,
            room: (tx, Some(rx)),
            state: Arc::new(Mutex::new(Dealt::default())),
        }
    }

    /// The stdin of the next job to start, while the input lasts and slots are left; `None`
    /// once every slot has its job (the dealing thread then has the input) or the input ended.
    pub fn next_stdin(&mut self) -> io::Result<Option<herd_engine::Stdin>> {
        let Some(blocks) = self.blocks.as_mut() else {
            return Ok(None);
        };
        let Some(block) = blocks.next_block()? else {
            // A short input: the jobs started so far have it all.
            self.blocks = None;
            self.senders.clear();
            self.state.lock().unwrap().done = true;
            return Ok(None);
        };
        let (stdin, sender) = herd_engine::Stdin::stream(self.block_size);
        let room = self.room.0.clone();
        sender.on_room(move || {
            let _ = room.try_send(());
        });
        let taken = sender.try_send(block).is_ok();
        assert!(taken, "a new stream takes its first block");
        self.senders.push(sender);
        if self.senders.len() == self.jobs {
            // Every slot has its job (the feeder will ask for no more: every permit is
            // taken): the rest is dealt on a thread of its own, so that reading and waiting
            // for room never hold up the run.
            let blocks = self.blocks.take().expect("checked above");
            let senders = std::mem::take(&mut self.senders);
            let room = self.room.1.take().expect("dealt once");
            let state = self.state.clone();
            std::thread::Builder::new()
                .name("herd-deal".into())
                .spawn(move || {
                    let result = deal(blocks, &senders, room);
                    // Told before the senders go: their end lets the jobs end, and the run's
                    // end looks here.
                    *state.lock().unwrap() = Dealt {
                        done: true,
                        error: result.err(),
                    };
                    drop(senders);
                })?;
        }
        Ok(Some(stdin))
    }
}

/// Gives every block of `blocks` to whichever sender has room, taking turns. (Dropping the
/// senders afterwards gives every job end of file.)
fn deal(mut blocks: Stream, senders: &[StdinSender], room: Receiver<()>) -> Result<(), String> {
    let mut pending = VecDeque::new();
    let mut next = 0;
    loop {
        let mut block = match pending.pop_front() {
            Some(block) => block,
            // A job has had the header (if any) with its first block.
            None => match blocks.next_bare_block() {
                Ok(Some(block)) => block,
                Ok(None) => {
                    // The input ended: wait until every job has taken what it was sent, and
                    // deal again what a job that ended never got.
                    match drained(senders, &room) {
                        Some(unsent) => {
                            pending.extend(unsent);
                            continue;
                        }
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(format!("cannot read the input: {e}")),
            },
        };
        'deal: loop {
            let mut open = 0;
            for i in (0..senders.len()).map(|k| (next + k) % senders.len()) {
                match senders[i].try_send(block) {
                    Ok(()) => {
                        next = i + 1;
                        break 'deal;
                    }
                    Err(TrySendError::Full(back)) => {
                        block = back;
                        open += 1;
                    }
                    Err(TrySendError::Closed(back)) => {
                        // The job ended: what it was sent and never got goes to the others.
                        block = back;
                        pending.extend(senders[i].take_unsent());
                    }
                }
            }
            if open == 0 {
                return Err(format!(
                    "every --round-robin job ({}) ended before the input did; the rest of the \
                     input went to no job",
                    senders.len()
                ));
            }
            // Woken when a stream takes a block; the timeout only guards against a lost
            // wake-up.
            let _ = room.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Waits until every open stream's queue is empty (each job has taken all it was sent); what
/// a stream that closed meanwhile still held comes back, to be dealt again.
fn drained(senders: &[StdinSender], room: &Receiver<()>) -> Option<Vec<Vec<u8>>> {
    loop {
        let unsent: Vec<Vec<u8>> = senders
            .iter()
            .filter(|s| s.is_closed())
            .flat_map(|s| s.take_unsent())
            .collect();
        if !unsent.is_empty() {
            return Some(unsent);
        }
        if senders.iter().all(|s| s.is_closed() || s.queued() == 0) {
            return None;
        }
        let _ = room.recv_timeout(Duration::from_secs(1));
    }
}
