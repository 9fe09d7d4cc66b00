//! A running child: exit confirmation, reaping, and signalling its process group.
//!
//! Exit is noticed through the child's pidfd in epoll, but readiness is only a hint: under
//! ptrace (strace, EDR agents) a pidfd can poll readable while the child lives (tokio#7144).
//! `has_exited` therefore asks `waitid(WNOWAIT)`, which confirms without reaping.
//!
//! herd deliberately keeps an exited child as a zombie until its job is complete (both pipes at
//! EOF, or the grace after exit spent). A zombie keeps its pid, and so its process-group id,
//! from being reused, which makes `kill(-pgid)` on the job's remaining descendants safe for as
//! long as herd may send it. `reap` then collects status and resource usage with `wait4` on
//! that one pid: herd never calls `waitpid(-1)`, so it never steals another library's children.

use super::super::{ExitInfo, Kill};
use super::clone3::ExecStatus;
use super::containment::Tree;
use rustix::fd::{AsFd, OwnedFd};
use rustix::process::{waitid, Pid, Signal, WaitId, WaitIdOptions};
use std::time::Duration;

pub(crate) struct Process {
    pid: Pid,
    pidfd: OwnedFd,
    reaped: bool,
    /// For a child started by `clone3`, which reports a failed exec only as it exits.
    exec_check: Option<ExecCheck>,
    /// What holds the child's whole tree: its cgroup or its process group.
    tree: Tree,
}

/// Where a `clone3` child reports a failure before its program runs, and what to name then.
/// Kept until the child is reaped: the child may write the status until it exits.
pub(crate) struct ExecCheck {
    pub status: Box<ExecStatus>,
    pub program: std::ffi::OsString,
    pub cwd: Option<std::path::PathBuf>,
}

impl Process {
    pub(super) fn new(pid: Pid, pidfd: OwnedFd, exec_check: Option<ExecCheck>, tree: Tree) -> Self {
        super::orphans::register(pid);
        Process {
            pid,
            pidfd,
            reaped: false,
            exec_check,
            tree,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    pub(super) fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// Whether the child has exited, without reaping it.
    pub(crate) fn has_exited(&self) -> bool {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::PidFd(self.pidfd.as_fd()), options) {
            Ok(status) => status.is_some(),
            // ECHILD: somebody else reaped it (a `waitpid(-1)` elsewhere in the process).
            Err(_) => true,
        }
    }

    /// Whether the child is stopped by the terminal (SIGTTIN or SIGTTOU), asked without
    /// reaping or consuming the stop.
    pub(crate) fn stopped_for_terminal(&self) -> bool {
        let options = WaitIdOptions::STOPPED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::PidFd(self.pidfd.as_fd()), options) {
            Ok(Some(status)) => matches!(
                status.stopping_signal(),
                Some(libc::SIGTTIN | libc::SIGTTOU)
            ),
            _ => false,
        }
    }

    /// Signals every process of the child's tree (its cgroup, else its process group), the
    /// child included.
    pub(crate) fn signal_tree(&self, kill: Kill) {
        let signal = match kill {
            Kill::Term => Signal::TERM,
            Kill::Kill => Signal::KILL,
        };
        self.tree.signal(self.pid, signal)
    }

    /// Collects the exit status and resource usage. Call only once `has_exited` said so.
    pub(crate) fn reap(mut self) -> ExitInfo {
        self.reap_inner()
    }

    fn reap_inner(&mut self) -> ExitInfo {
        self.reaped = true;
        self.tree.leader_reaped(self.pid);
        super::orphans::unregister(self.pid);
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `status` and `usage` are valid for writes; the pid is our own child.
            let r =
                unsafe { libc::wait4(self.pid.as_raw_nonzero().get(), &mut status, 0, &mut usage) };
            if r >= 0 {
                break;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // ECHILD: reaped by someone else; the status is lost.
                return ExitInfo::default();
            }
        }
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        // Exited, so the status is final.
        let spawn_error = self.exec_check.as_ref().and_then(|check| {
            let (step, errno) = check.status.failure()?;
            Some(super::spawn::late_failure(step, errno, check))
        });
        ExitInfo {
            spawn_error,
            code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            user_time: tv(usage.ru_utime),
            system_time: tv(usage.ru_stime),
            max_rss_kb: usage.ru_maxrss as u64,
        }
    }
}

impl Drop for Process {
    /// A child is reaped exactly once, also on paths that never reached `reap` (a failed
    /// registration, a panic, shutdown): kill the tree, then collect the zombie.
    fn drop(&mut self) {
        if !self.reaped {
            self.signal_tree(Kill::Kill);
            self.reap_inner();
        }
    }
}
