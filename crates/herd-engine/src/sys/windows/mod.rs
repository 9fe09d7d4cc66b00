//! Windows backend: the design of the seeds, carried to its end.
//!
//! - [`pipe`]: one overlapped named pipe per stream, ours the server end, the child's a
//!   synchronous client end (children break on overlapped handles).
//! - [`spawn`](spawn::spawn): `CreateProcessW` with exactly the child's standard handles in
//!   `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`, suspended until it is inside its own job object.
//! - [`poller`]: one I/O completion port for reads, stdin writes, job messages and wake-ups;
//!   reads either bound to the port directly or through the system thread pool's `TP_IO`.
//! - [`process`]: exit status, times and peak memory from the process handle, and
//!   `TerminateJobObject` for the whole tree.
//! - [`command_line`]: arguments quoted by the MSVC rules.

mod command_line;
mod pipe;
mod poller;
mod process;
mod spawn;

pub(crate) use poller::{Poller, Waker};
pub(crate) use process::Process;
pub(crate) use spawn::{spawn, spawns_without_blocking, Spawned};

/// Windows has no descriptor limit to raise.
pub(crate) fn raise_fd_limit() {}

/// Windows has no SIGCHLD: exit codes are always kept.
pub(crate) fn reset_ignored_sigchld() {}

/// Windows has no signals.
pub(crate) fn signal_name(_signal: i32) -> Option<&'static str> {
    None
}

/// Encodes a string for Win32: UTF-16 with a terminating NUL.
fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// herd's end of a job's [`Stdin::HeldOpen`](crate::Stdin::HeldOpen) pipe.
pub(crate) type HeldStdin = std::os::windows::io::OwnedHandle;

/// Reads from `file` at `offset` (a synchronous handle: the read completes before it returns).
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// No job control on Windows: nothing is ever stopped by the console.
pub(crate) fn groups_stopped_at_terminal(_groups: &std::collections::HashSet<u32>) -> Vec<u32> {
    Vec::new()
}

/// Windows contains every job in a job object of its own (see [`spawn`](spawn::spawn)), killed
/// by the system when herd's handles close: nothing more to set up per herd.
pub(crate) struct Containment;

impl Containment {
    pub(crate) fn new(
        _kill_descendants: bool,
        _use_cgroups: bool,
        _adopt_orphans: bool,
    ) -> Containment {
        Containment
    }

    /// Nothing to do: a job object holds every descendant, whatever it does.
    pub(crate) fn sweep_orphans(&self) {}

    pub(crate) fn level(&self) -> crate::Containment {
        crate::Containment::JobObject
    }

    /// Nothing to do: no guardian process on Windows.
    pub(crate) fn remove_when_gone(&self, _dir: &std::path::Path) {}
}
