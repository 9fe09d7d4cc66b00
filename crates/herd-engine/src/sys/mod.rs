//! Platform backends: everything that touches the operating system lives below this folder.
//!
//! The rest of the crate is platform-free and talks to a backend through one small interface,
//! which each platform folder provides under the same names:
//!
//! - [`spawn`]`(&Job) -> Result<Spawned, SpawnFailure>` starts a child in its own process tree
//!   (a process group on Linux, a job object on Windows) with its stdout and stderr on pipes.
//!   It runs on the event loop when `spawns_without_blocking(&Job)` says so (Linux's `clone3`
//!   returns as soon as the child exists), else on a spawner thread.
//! - `Process` is the handle on a running child: `signal_tree`, `has_exited` (a check that does
//!   not reap) and `reap` (exactly once, after exit).
//! - `Poller` owns every pipe. It is *completion-shaped*: `poll` reports "these bytes arrived on
//!   stream S of job J", "stream S reached EOF" and "job J's process may have exited". On Windows
//!   that is what an I/O completion port says; on Linux epoll says "ready" and the poller does the
//!   read itself, into one shared buffer.
//! - `Waker` wakes the poller from another thread.

use std::io;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

// One clear message instead of hundreds of missing names: herd's backends need epoll, pidfds
// and `clone3` (Linux), or I/O completion ports and job objects (Windows). macOS and the BSDs
// would need a kqueue backend, which does not exist yet.
#[cfg(not(any(target_os = "linux", windows)))]
compile_error!(
    "herd-engine supports Linux (5.3 or later; any architecture, with the clone3 fast path on \
     x86-64) and Windows (10 / Server 2016 or later); this target is neither"
);

/// Settings a backend may use (each ignores what does not apply to it).
#[derive(Debug, Clone, Default)]
pub(crate) struct PollerOptions {
    /// Windows: deliver completions through the system thread pool instead of herd's port.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub windows_thread_pool: bool,
    /// Windows, tests: fail this many reads as "too many outstanding reads".
    #[cfg_attr(not(windows), allow(dead_code))]
    pub inject_read_failures: u32,
    /// Windows, tests: the thread pool's completion callback waits this long before it
    /// forwards a completion (a slow hop, as under heavy load).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub inject_completion_delay: std::time::Duration,
}

/// Which output stream of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

/// Names one registered job in the poller: a slot of the engine's job table and that slot's
/// generation, so an event for a finished job can never be taken for its slot's next tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Token {
    pub slot: u32,
    pub gen: u32,
}

/// Per-job state of a poller, indexed by token: a slot is found only with the generation it was
/// inserted with, so a stale token never reaches the slot's next tenant.
pub(crate) struct TokenTable<T> {
    slots: Vec<Option<(u32, T)>>,
}

impl<T> TokenTable<T> {
    pub(crate) fn new() -> Self {
        TokenTable { slots: Vec::new() }
    }

    pub(crate) fn insert(&mut self, token: Token, value: T) {
        let slot = token.slot as usize;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot] = Some((token.gen, value));
    }

    pub(crate) fn get(&self, token: Token) -> Option<&T> {
        match self.slots.get(token.slot as usize)? {
            Some((gen, value)) if *gen == token.gen => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        match self.slots.get_mut(token.slot as usize)? {
            Some((gen, value)) if *gen == token.gen => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, token: Token) -> Option<T> {
        let slot = self.slots.get_mut(token.slot as usize)?;
        match slot {
            Some((gen, _)) if *gen == token.gen => slot.take().map(|(_, value)| value),
            _ => None,
        }
    }

    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            s.as_mut().map(|(gen, value)| {
                (
                    Token {
                        slot: i as u32,
                        gen: *gen,
                    },
                    value,
                )
            })
        })
    }
}

/// What the poller reports.
pub(crate) enum SysEvent<'a> {
    /// Bytes read from one stream of one job, in order. `data` is the poller's read buffer
    /// itself, holding just those bytes: the engine copies them, or takes the buffer whole
    /// (leaving another in its place) to hand a large read to the consumer without copying it.
    /// The poller makes room again before its next read.
    Output {
        token: Token,
        stream: Stream,
        data: &'a mut Vec<u8>,
    },
    /// `bytes` more of a stream went straight from its pipe into its spill file
    /// (`Poller::spill_into`), in order after everything reported before.
    #[cfg_attr(windows, allow(dead_code))]
    Spilled {
        token: Token,
        stream: Stream,
        bytes: usize,
    },
    /// The stream reached end of file: every writer (the child and its descendants) closed it.
    Eof { token: Token, stream: Stream },
    /// The process may have exited. A hint only: confirm with `Process::has_exited`.
    Exited { token: Token },
}

/// How a child ended, as the operating system reports it when it is reaped.
#[derive(Debug, Default)]
pub(crate) struct ExitInfo {
    /// The program never ran: the child failed on its way to it (Linux's `clone3` path learns
    /// that only when the child exits).
    pub spawn_error: Option<crate::SpawnError>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_time: std::time::Duration,
    pub system_time: std::time::Duration,
    pub max_rss_kb: u64,
}

/// Why a spawn did not produce a child.
#[derive(Debug)]
pub(crate) enum SpawnFailure {
    /// Out of descriptors, processes or memory for now: wait for a job to finish and retry.
    Exhausted(io::Error),
    /// The job itself is bad (missing program, not executable, bad directory): it fails alone.
    Job(crate::SpawnError),
}

/// Fails a job whose working directory is missing, before anything is created for it (a
/// failed `chdir` in the child would otherwise read as a missing program).
pub(crate) fn check_working_dir(job: &crate::job::Job) -> Result<(), SpawnFailure> {
    match &job.cwd {
        Some(dir) if !dir.is_dir() => Err(SpawnFailure::Job(crate::SpawnError::WorkingDir {
            dir: dir.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "not a directory"),
        })),
        _ => Ok(()),
    }
}

/// The signal sent to a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// Ask politely (SIGTERM). Windows has no equivalent and terminates at once.
    Term,
    /// Kill (SIGKILL, `TerminateJobObject`).
    Kill,
}
