//! What ends a run from outside: a signal, or the reader of herd's output going away.
//!
//! Both are only recorded where they happen (a signal handler sets a flag; the reader is
//! looked for between events), and the run's loop acts on them: every job's tree is killed,
//! no new job starts, and herd exits with 128 + the signal, or 141 when its reader left.

use crate::run::Fatal;
use std::sync::atomic::AtomicUsize;
#[cfg(windows)]
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the run's loop looks at the signal flag (it waits for events at most this long).
pub const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Asks for herd to stop on every signal whose default would end herd and leave the jobs
/// running: SIGINT, SIGTERM, SIGHUP, SIGQUIT (Ctrl-\\), SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU
/// (`ulimit -t`), SIGPROF and SIGVTALRM. The handler only records the signal; the main thread
/// acts on it between events (it waits for events at most [`SIGNAL_CHECK`] at a time): every
/// job's tree is killed and herd exits with 128 + the signal.
#[cfg(unix)]
pub fn watch_signals() -> Result<Arc<AtomicUsize>, Fatal> {
    use signal_hook::consts::*;
    let got = Arc::new(AtomicUsize::new(0));
    let ending = [
        SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGPROF, SIGVTALRM,
    ];
    // A mask inherited blocked (a parent that blocked TERM or INT and exec'd herd) would make
    // herd deaf to them: unblock what herd handles.
    let mut unblock = nix::sys::signal::SigSet::empty();
    for signal in ending {
        if let Ok(s) = nix::sys::signal::Signal::try_from(signal) {
            unblock.add(s);
        }
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&unblock),
        None,
    )
    .map_err(|e| Fatal(format!("cannot unblock signals: {e}")))?;
    for signal in ending {
        signal_hook::flag::register_usize(signal, got.clone(), signal as usize)
            .map_err(|e| Fatal(format!("cannot handle signals: {e}")))?;
    }
    Ok(got)
}

/// Ctrl-C and Ctrl-Break, recorded like SIGINT (exit status 130).
#[cfg(windows)]
pub fn watch_signals() -> Result<Arc<AtomicUsize>, Fatal> {
    const SIGINT: usize = 2;
    let got = Arc::new(AtomicUsize::new(0));
    let flag = got.clone();
    ctrlc::set_handler(move || flag.store(SIGINT, Ordering::SeqCst))
        .map_err(|e| Fatal(format!("cannot handle Ctrl-C: {e}")))?;
    Ok(got)
}

/// Notices that whoever read herd's stdout is gone (`herd -k … | head -1`): a pipe whose
/// reader closed polls as an error at once. Without this, herd would notice only at its next
/// write, which in grouped and `-k` modes may be a long-running job's end: until then every
/// job would go on running for nothing.
pub struct ReaderWatch {
    last: Instant,
}

/// Looking costs a system call: at most this often.
const READER_CHECK: Duration = Duration::from_millis(50);

impl ReaderWatch {
    pub fn new() -> Self {
        ReaderWatch {
            last: Instant::now(),
        }
    }

    /// Whether stdout's reader has gone (checked at most every [`READER_CHECK`]).
    pub fn gone(&mut self) -> bool {
        if self.last.elapsed() < READER_CHECK {
            return false;
        }
        self.last = Instant::now();
        reader_gone()
    }
}

/// A pipe or socket whose other end is closed polls with POLLERR or POLLHUP, even when no
/// event is asked for; a file or terminal never does.
#[cfg(unix)]
fn reader_gone() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        _ => false,
    }
}

/// Windows: a write to a closed pipe fails, and that is when herd notices.
#[cfg(windows)]
fn reader_gone() -> bool {
    false
}
