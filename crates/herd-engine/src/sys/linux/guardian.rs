//! The guardian: a small process that kills a herd's jobs when the herd ends, however it ends.
//!
//! Why: herd kills every job's tree when it shuts down, but a process that is SIGKILLed (or
//! aborts, or is killed by the OOM killer) runs no code at all, and its jobs would live on.
//! Supervisors solve this from outside the process that may die: systemd kills a unit's cgroup,
//! bubblewrap's `--die-with-parent` relies on the kernel. herd forks one guardian per herd at
//! start. The guardian holds the read end of a pipe whose only write end is herd's; when herd
//! is gone for any reason, the kernel closes that end and the guardian reads EOF. Then:
//!
//! - with [`Cgroups`](super::cgroup::Cgroups): it writes `cgroup.kill` on the herd's cgroup,
//!   waits until the cgroup is empty, and removes the job cgroups and the herd's own. Nothing
//!   survives, whatever the jobs did with sessions and groups.
//! - without: herd marks the process group of every job in a bitmap shared with the guardian
//!   (one bit per possible group id, set as the job starts and cleared before its leader is
//!   reaped: an atomic operation, no system call, no wake-up of the guardian), and the
//!   guardian kills the groups still marked. A descendant that left its job's group
//!   (`setsid`) is not reached: that needs a cgroup.
//!
//! The guardian runs in its own process group with the terminating signals ignored, so the
//! terminal's Ctrl-C or a `kill` of herd's group does not take it down before it has done its
//! work; it exits as soon as it has. On an orderly shutdown herd closes the pipe itself and
//! waits for the guardian, so the cleanup has happened when the herd is dropped.
//!
//! The child of `fork` in a process with threads may only make async-signal-safe calls: the
//! guardian uses plain system calls and memory prepared before the fork (or mapped after it),
//! and never allocates.

use super::cgroup::Cgroups;
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::process::Pid;
use std::ffi::CString;
use std::io;

/// A running guardian (see the module's documentation).
pub(crate) struct Guardian {
    pid: libc::pid_t,
    /// Closing it is the guardian's signal to act.
    pipe: Option<OwnedFd>,
    /// Process-group mode: the groups to kill, shared with the guardian.
    groups: Option<SharedBitmap>,
}

/// What the guardian needs for a cgroup, opened before the fork.
struct CgroupTarget {
    dir: OwnedFd,
    parent: OwnedFd,
    name: CString,
}

impl Guardian {
    /// A guardian that kills and removes `cgroups` when the herd ends.
    pub(crate) fn for_cgroups(cgroups: &Cgroups) -> io::Result<Guardian> {
        let (dir, parent, name) = cgroups.handles()?;
        Guardian::start(Some(CgroupTarget { dir, parent, name }))
    }

    /// A guardian that kills the process groups it is told about when the herd ends.
    pub(crate) fn for_process_groups() -> io::Result<Guardian> {
        Guardian::start(None)
    }

    fn start(target: Option<CgroupTarget>) -> io::Result<Guardian> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let groups = match target {
            Some(_) => None,
            None => {
                let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .unwrap_or(1 << 22);
                Some(SharedBitmap::new(pid_max)?)
            }
        };
        // Every descriptor the guardian keeps, in the order it puts them at 3, 4, 5.
        let mut keep = vec![read.as_raw_fd()];
        if let Some(t) = &target {
            keep.push(t.dir.as_raw_fd());
            keep.push(t.parent.as_raw_fd());
        }
        let name = target.as_ref().map(|t| t.name.clone());
        // SAFETY: fork in a process with threads: the child below makes only async-signal-safe
        // system calls on memory prepared before the fork, and ends with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the freshly forked child; see `guardian_main`.
            unsafe { guardian_main(&keep, name.as_deref(), groups.as_ref()) }
        }
        drop((read, target));
        if let Some(pid) = Pid::from_raw(pid) {
            super::orphans::register(pid);
        }
        Ok(Guardian {
            pid,
            pipe: Some(write),
            groups,
        })
    }

    /// Asks the guardian to remove the (empty) directory `dir` when the herd is gone, in case
    /// the herd cannot: herd's spill files have no names, but their directory does.
    pub(crate) fn remove_when_gone(&self, dir: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        let mut message = dir.as_os_str().as_bytes().to_vec();
        message.push(0);
        // One write of at most PIPE_BUF bytes arrives whole; a longer path is not worth it.
        if let (Some(pipe), true) = (&self.pipe, message.len() <= 4096) {
            let _ = rustix::io::write(pipe, &message);
        }
    }

    /// Marks a job's new process group for the guardian (process-group mode only).
    pub(crate) fn watch(&self, group: Pid) {
        if let Some(groups) = &self.groups {
            groups.set(group.as_raw_nonzero().get() as usize, true);
        }
    }

    /// Unmarks a job's process group: call before reaping its leader, whose pid could be
    /// reused once it is reaped.
    pub(crate) fn forget(&self, group: Pid) {
        if let Some(groups) = &self.groups {
            groups.set(group.as_raw_nonzero().get() as usize, false);
        }
    }
}

impl Drop for Guardian {
    /// The orderly end: the guardian kills what is left and cleans up; wait for it.
    fn drop(&mut self) {
        self.pipe = None;
        if let Some(pid) = Pid::from_raw(self.pid) {
            super::orphans::unregister(pid);
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child, by pid (never `-1`, which would steal other
            // children of the process).
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
}

/// The guardian's whole life. Descriptors in `keep`: the pipe, then for a cgroup its directory
/// and its parent's; `name` is the cgroup's name in its parent.
///
/// # Safety
/// Only in the child of `fork`, with nothing else done since.
unsafe fn guardian_main(
    keep: &[i32],
    name: Option<&std::ffi::CStr>,
    groups: Option<&SharedBitmap>,
) -> ! {
    // SAFETY: async-signal-safe system calls on memory this child owns (its copy of the
    // parent's), with pointers valid for each call.
    unsafe {
        // Own group: Ctrl-C and signals to herd's group do not reach it.
        libc::setpgid(0, 0);
        libc::prctl(
            libc::PR_SET_NAME,
            c"herd-guardian".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        for signal in 1..=64 {
            let action = match signal {
                libc::SIGKILL | libc::SIGSTOP => continue,
                libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGCHLD
                | libc::SIGCONT => libc::SIG_DFL,
                _ => libc::SIG_IGN,
            };
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = action;
            libc::sigaction(signal, &sa, std::ptr::null_mut());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // The kept descriptors go to 3, 4, 5; every other one is closed, so the guardian holds
        // no pipe of any job and not herd's stdout. First copied above them all, so that
        // moving one down never overwrites another.
        let above = keep.iter().copied().max().unwrap_or(2) + 1;
        let mut copies = [-1; 3];
        for (i, &fd) in keep.iter().enumerate().take(3) {
            copies[i] = libc::fcntl(fd, libc::F_DUPFD, above);
        }
        for (i, &copy) in copies.iter().enumerate().take(keep.len()) {
            libc::dup3(copy, 3 + i as i32, 0);
        }
        for fd in 0..3 {
            libc::close(fd);
        }
        libc::syscall(libc::SYS_close_range, 3 + keep.len() as u32, u32::MAX, 0);
        let (pipe, dir, parent) = (3, 4, 5);
        let mut said = [0u8; 4096];
        let said_len = wait_for_eof(pipe, &mut said);
        if let Some(name) = name {
            empty_cgroup(dir);
            remove_children(dir);
            libc::unlinkat(parent, name.as_ptr(), libc::AT_REMOVEDIR);
        }
        if let Some(groups) = groups {
            groups.for_each(|group| {
                libc::kill(-(group as libc::pid_t), libc::SIGKILL);
            });
        }
        // The spill directory: empty (its files have no names), unless herd ended normally
        // and removed it already.
        if said_len > 1 && said_len < said.len() && said[said_len - 1] == 0 {
            libc::rmdir(said.as_ptr().cast());
        }
        libc::_exit(0)
    }
}

/// Reads the pipe until EOF. What herd wrote (at most one path, NUL-terminated: its spill
/// directory) is left in `said`; returns its length.
///
/// # Safety
/// `pipe` is an open descriptor.
unsafe fn wait_for_eof(pipe: i32, said: &mut [u8; 4096]) -> usize {
    let mut len = 0;
    let mut scratch = [0u8; 64];
    loop {
        let (ptr, room) = if len < said.len() {
            (said[len..].as_mut_ptr(), said.len() - len)
        } else {
            (scratch.as_mut_ptr(), scratch.len())
        };
        // SAFETY: reading into a buffer of this length.
        let n = unsafe { libc::read(pipe, ptr.cast(), room) };
        if n == 0 {
            return len;
        }
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return len;
        }
        if len < said.len() {
            len += n as usize;
        }
    }
}

/// Kills everything in the cgroup `dir` and waits (up to some seconds) until it is empty.
///
/// # Safety
/// `dir` is an open cgroup directory.
unsafe fn empty_cgroup(dir: i32) {
    // SAFETY: openat/write/pread/poll/close with valid pointers and lengths.
    unsafe {
        let kill = libc::openat(
            dir,
            c"cgroup.kill".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        let events = libc::openat(
            dir,
            c"cgroup.events".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        // Killed processes leave the cgroup within milliseconds (a process stuck in the
        // kernel, as on a dead NFS server, may take longer): 10 s at most, killing again now
        // and then for anything forked in between.
        for round in 0..200 {
            if round % 10 == 0 && kill >= 0 {
                libc::write(kill, b"1".as_ptr().cast(), 1);
            }
            let mut buf = [0u8; 64];
            let n = libc::pread(events, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 || !contains(&buf[..n as usize], b"populated 1") {
                break;
            }
            // `cgroup.events` wakes pollers (POLLPRI) when it changes.
            let mut pfd = libc::pollfd {
                fd: events,
                events: libc::POLLPRI,
                revents: 0,
            };
            libc::poll(&mut pfd, 1, 50);
        }
        libc::close(kill);
        libc::close(events);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Removes every child cgroup of `dir` (the job cgroups; they are empty by now).
///
/// # Safety
/// `dir` is an open directory.
unsafe fn remove_children(dir: i32) {
    let mut buf = [0u8; 4096];
    // SAFETY: lseek/getdents64/unlinkat on an open directory, with a buffer of this length;
    // the kernel's records are read within the length it returned.
    unsafe {
        libc::lseek(dir, 0, libc::SEEK_SET);
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                return;
            }
            let mut at = 0usize;
            while at < n as usize {
                // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
                let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                let kind = buf[at + 18];
                let name = buf.as_ptr().add(at + 19).cast::<libc::c_char>();
                let dot = *name == b'.' as libc::c_char;
                if kind == libc::DT_DIR && !dot {
                    libc::unlinkat(dir, name, libc::AT_REMOVEDIR);
                }
                at += reclen;
            }
        }
    }
}

/// One bit per possible process-group id, in memory shared by herd and its guardian (mapped
/// before the fork, so both see the same pages). Only touched pages take memory: about one
/// page per 32768 ids in use.
struct SharedBitmap {
    words: *mut std::sync::atomic::AtomicU64,
    len: usize,
}

// SAFETY: the words are atomics, and the mapping lives as long as the value.
unsafe impl Send for SharedBitmap {}
// SAFETY: as above; every access is an atomic operation.
unsafe impl Sync for SharedBitmap {}

impl SharedBitmap {
    fn new(bits: usize) -> io::Result<SharedBitmap> {
        let len = bits.div_ceil(64);
        // SAFETY: a fresh shared anonymous mapping, zeroed by the kernel, owned by the value.
        let words = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if words == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedBitmap {
            words: words.cast(),
            len,
        })
    }

    fn word(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `i` is below `len`, within the mapping, which lives as long as `self`.
        unsafe { &*self.words.add(i) }
    }

    fn set(&self, bit: usize, on: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if bit / 64 >= self.len {
            return;
        }
        let mask = 1u64 << (bit % 64);
        if on {
            self.word(bit / 64).fetch_or(mask, Relaxed);
        } else {
            self.word(bit / 64).fetch_and(!mask, Relaxed);
        }
    }

    fn for_each(&self, mut f: impl FnMut(usize)) {
        for i in 0..self.len {
            let mut word = self.word(i).load(std::sync::atomic::Ordering::Relaxed);
            while word != 0 {
                f(i * 64 + word.trailing_zeros() as usize);
                word &= word - 1;
            }
        }
    }
}

impl Drop for SharedBitmap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, used by nobody else now.
        unsafe { libc::munmap(self.words.cast(), self.len * 8) };
    }
}
