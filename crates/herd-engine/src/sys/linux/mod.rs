//! Linux backend: `clone3` with vfork semantics (or `posix_spawn`) for process creation, a
//! pidfd per child for exit, and one epoll instance for every pipe and pidfd.
//!
//! - [`spawn`](spawn::spawn): pipes, argv and environment prepared in the parent.
//! - [`clone3`]: herd's own spawn, the child's set-up and `execve`; [`posix_spawn`]: the
//!   fallback where the kernel refuses `clone3`.
//! - [`poller`]: epoll, edge-triggered, and the read loop that turns readiness into completions.
//! - [`process`]: exit confirmation, reaping with resource usage, signalling the process group.
//! - [`containment`]: what holds a job's whole tree; [`cgroup`] (a cgroup v2 per job) where
//!   herd may, process groups elsewhere, and the [`guardian`] that kills them if herd dies;
//!   [`orphans`] catches what leaves a job's process group where there is no cgroup.
//! - [`terminal`]: finding a job stopped because a process of it used the terminal.
//! - [`procfs`]: what herd reads about other processes in `/proc`.
//! - [`rlimit`]: raising `RLIMIT_NOFILE` once, at start.
//! - [`path`]: looking a program up in `PATH`, with a cache.

mod cgroup;
mod child_signal;
mod clone3;
mod containment;
mod guardian;
mod orphans;
mod path;
mod poller;
mod posix_spawn;
mod process;
mod procfs;
mod rlimit;
mod spawn;
mod terminal;

pub(crate) use child_signal::reset_ignored_sigchld;
pub(crate) use containment::Containment;
pub(crate) use poller::{Poller, Waker};
pub(crate) use process::Process;
pub(crate) use rlimit::raise_fd_limit;
pub(crate) use spawn::{spawn, spawns_without_blocking, Spawned};
pub(crate) use terminal::groups_stopped_at_terminal;

/// herd's end of a job's [`Stdin::HeldOpen`](crate::Stdin::HeldOpen) pipe.
pub(crate) type HeldStdin = rustix::fd::OwnedFd;

/// Reads from `file` at `offset` without moving its position.
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// The name of a signal number, for results and messages ("SIGKILL").
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}
