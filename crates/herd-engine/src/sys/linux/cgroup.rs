//! Containment with cgroup v2: every job in a cgroup of its own, inside one cgroup per herd.
//!
//! Why: a process group holds a job's tree only until a descendant calls `setsid` or
//! `setpgid`, and nothing kills a group when herd itself is SIGKILLed. A cgroup holds every
//! descendant whatever it does with sessions and groups, and writing `1` to its `cgroup.kill`
//! (Linux 5.14) kills all of them at once, also the ones forked while the kill runs. This is
//! how systemd stops a unit.
//!
//! Layout: `<herd's own cgroup>/herd-<pid>-<n>/<k>`, one `herd-…` directory per herd and one
//! numbered child per running job. A child is created once and reused by later jobs as soon as
//! it is empty (checked by reading its `cgroup.events`), so a run of a million jobs makes only
//! as many directories as it ever had jobs running at once: creating and removing one costs
//! some 30 µs, about a fifth of a whole tiny job. Except a child emptied with `cgroup.kill`:
//! on some kernels (Linux 6.18 here) every process later started in it with
//! `CLONE_INTO_CGROUP` is killed at once (the kernel compares the kill counter of the parent's
//! cgroup with the destination's), so such a child is removed and a new one made instead.
//! `clone3` places the child straight into its cgroup (`CLONE_INTO_CGROUP`, Linux 5.7), so
//! there is no moment where a job runs outside it.
//!
//! Where herd may create one: as root, or in a subtree delegated to the user (systemd's user
//! services and `Delegate=yes` units). cgroup2 is found from `/proc/self/mountinfo`, wherever it
//! is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` in systemd's hybrid mode). Where
//! none of this holds, [`Cgroups::create`] answers `None` and herd falls back to process groups.
//!
//! The [`guardian`](super::guardian) kills and removes the herd's cgroup when the herd ends,
//! however it ends.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The herd's own cgroup and its pool of job cgroups.
pub(crate) struct Cgroups {
    /// `herd-<pid>-<n>`, whose subtree is every job.
    dir: PathBuf,
    pool: Arc<Pool>,
}

struct Pool {
    /// The herd's cgroup, where job cgroups are made.
    dir: OwnedFd,
    state: Mutex<PoolState>,
}

impl Pool {
    /// Removes a job cgroup's directory: false while processes are still in it.
    fn remove(&self, slot: &Slot) -> bool {
        if slot.populated() {
            return false;
        }
        match rustix::fs::unlinkat(
            &self.dir,
            slot.name.as_str(),
            rustix::fs::AtFlags::REMOVEDIR,
        ) {
            Ok(()) | Err(Errno::NOENT) => true,
            // EBUSY: a process is still leaving it.
            Err(_) => false,
        }
    }
}

#[derive(Default)]
struct PoolState {
    /// Empty cgroups, ready for a job.
    free: Vec<Slot>,
    /// Returned while processes were still in them (being killed): reused once empty.
    draining: Vec<Slot>,
    /// Emptied with `cgroup.kill`, never to be reused: removed once empty.
    retired: Vec<Slot>,
    /// Directories made so far; the next is named after this count.
    made: u32,
}

/// One job cgroup's directory and its `cgroup.events`. Its other files are opened when needed
/// (rarely): a descriptor per file per running job counts against the same limit as the
/// jobs' pipes.
struct Slot {
    /// Its name in the herd's cgroup (a number).
    name: String,
    dir: OwnedFd,
    /// `cgroup.events`, read once per job: kept open, as opening a cgroup file costs more
    /// than reading it.
    events: OwnedFd,
}

impl Slot {
    fn open(&self, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
        open_in(&self.dir, name, flags)
    }

    /// Whether any process is in the cgroup (`populated 1` in `cgroup.events`).
    fn populated(&self) -> bool {
        let mut buf = [0u8; 64];
        match rustix::io::pread(&self.events, &mut buf, 0) {
            Ok(n) => buf[..n]
                .split(|&b| b == b'\n')
                .any(|line| line == b"populated 1"),
            // Unreadable: treat as busy, so it is never handed out while unsure.
            Err(_) => true,
        }
    }
}

/// A job's cgroup, lent from the pool for the job's lifetime.
pub(crate) struct JobCgroup {
    slot: Option<Slot>,
    pool: Arc<Pool>,
    /// Found empty after the job's process exited: nothing can enter it again, so it goes
    /// back to the pool without another look.
    empty: std::cell::Cell<bool>,
    /// Emptied with `cgroup.kill`: never lent again (see the module's comment).
    killed: std::cell::Cell<bool>,
}

impl JobCgroup {
    /// The directory to give `clone3` (`CLONE_INTO_CGROUP`).
    pub(super) fn dir(&self) -> BorrowedFd<'_> {
        self.slot().dir.as_fd()
    }

    fn slot(&self) -> &Slot {
        self.slot.as_ref().expect("a lent cgroup has its slot")
    }

    /// Moves `pid` in: for children started without `clone3`, right after they start.
    pub(super) fn adopt(&self, pid: rustix::process::Pid) -> io::Result<()> {
        let text = pid.as_raw_nonzero().to_string();
        let procs = self.slot().open("cgroup.procs", OFlags::WRONLY)?;
        rustix::io::write(&procs, text.as_bytes())?;
        Ok(())
    }

    /// Kills every process in the cgroup, if there is any.
    pub(crate) fn kill_all(&self) {
        if !self.slot().populated() {
            self.empty.set(true);
            return;
        }
        if let Ok(kill) = self.slot().open("cgroup.kill", OFlags::WRONLY) {
            let _ = rustix::io::write(&kill, b"1");
            self.killed.set(true);
        }
    }

    /// Sends `signal` to every process in the cgroup (there is no `cgroup.kill` for other
    /// signals): reads `cgroup.procs` and signals each.
    pub(crate) fn signal_all(&self, signal: rustix::process::Signal) {
        let Ok(procs) = self.slot().open("cgroup.procs", OFlags::RDONLY) else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        let mut text = Vec::new();
        while let Ok(n @ 1..) = rustix::io::read(&procs, &mut buf) {
            text.extend_from_slice(&buf[..n]);
        }
        for pid in text.split(|&b| b == b'\n') {
            let pid = std::str::from_utf8(pid).ok().and_then(|p| p.parse().ok());
            if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        let slot = self.slot.take().expect("dropped once");
        if self.killed.get() {
            // Removed now if its processes are gone, else once they are (by `lend`).
            if !self.pool.remove(&slot) {
                self.pool.state.lock().unwrap().retired.push(slot);
            }
            return;
        }
        let empty = self.empty.get() || !slot.populated();
        let mut state = self.pool.state.lock().unwrap();
        if !empty {
            state.draining.push(slot);
        } else {
            state.free.push(slot);
        }
    }
}

/// Where this process's cgroup is in the file system: the cgroup2 mount that holds it (from
/// `/proc/self/mountinfo`) joined with its path (from `/proc/self/cgroup`).
fn own_cgroup_dir() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo
        .lines()
        .filter_map(parse_mount)
        .filter(|m| m.fstype == "cgroup2")
        .find_map(|m| {
            // The mount shows the hierarchy from `root` down; the process's path must be in it.
            let below = if m.root == "/" {
                path
            } else {
                path.strip_prefix(m.root.as_str())?
            };
            let dir = Path::new(&m.mount_point).join(below.trim_start_matches('/'));
            dir.is_dir().then_some(dir)
        })
}

struct Mount {
    root: String,
    mount_point: String,
    fstype: String,
}

/// One line of `/proc/self/mountinfo`: `id parent dev root mountpoint options [tags] - type …`.
fn parse_mount(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let root = unescape(left.nth(3)?);
    let mount_point = unescape(left.next()?);
    let fstype = right.split(' ').next()?.to_string();
    Some(Mount {
        root,
        mount_point,
        fstype,
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

fn open_in(dir: &OwnedFd, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

impl Cgroups {
    /// Creates this herd's cgroup under the process's own, if cgroup v2 is there, herd may
    /// write to it, and it has `cgroup.kill`. `None` otherwise (herd then uses process groups).
    pub(crate) fn create() -> Option<Cgroups> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let parent = own_cgroup_dir()?;
        let name = format!(
            "herd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        match rustix::fs::mkdirat(CWD, &dir, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            // Left by an earlier herd with this pid that was killed along with its guardian.
            Err(Errno::EXIST) => {}
            Err(_) => return None,
        }
        let Ok(dir_fd) = open_dir(&dir) else {
            let _ = std::fs::remove_dir(&dir);
            return None;
        };
        let cgroups = Cgroups {
            pool: Arc::new(Pool {
                dir: dir_fd,
                state: Mutex::default(),
            }),
            dir,
        };
        // A first job cgroup proves the whole set-up (nesting allowed, `cgroup.kill` present).
        match cgroups.make_slot() {
            Ok(first) => {
                cgroups.pool.state.lock().unwrap().free.push(first);
                Some(cgroups)
            }
            Err(_) => {
                cgroups.remove();
                None
            }
        }
    }

    fn make_slot(&self) -> io::Result<Slot> {
        let parent = &self.pool.dir;
        let name = {
            let mut state = self.pool.state.lock().unwrap();
            state.made += 1;
            (state.made - 1).to_string()
        };
        match rustix::fs::mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let dir = open_in(parent, &name, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let events = open_in(&dir, "cgroup.events", OFlags::RDONLY)?;
        let slot = Slot { name, dir, events };
        // Proves `cgroup.kill` is there (Linux 5.14), which the kill and the guardian need.
        slot.open("cgroup.kill", OFlags::WRONLY)?;
        Ok(slot)
    }

    /// An empty cgroup for a job: a free one, one that has emptied since it was returned, or
    /// a new one. Fails when no directory can be made (descriptors, `cgroup.max.descendants`).
    pub(crate) fn lend(&self) -> io::Result<JobCgroup> {
        let reused = {
            let mut state = self.pool.state.lock().unwrap();
            // Killed cgroups whose processes are gone: removed.
            let pool = &self.pool;
            state.retired.retain(|slot| !pool.remove(slot));
            match state.free.pop() {
                Some(slot) => Some(slot),
                None => {
                    let empty = state.draining.iter().position(|s| !s.populated());
                    empty.map(|i| state.draining.swap_remove(i))
                }
            }
        };
        let slot = match reused {
            Some(slot) => slot,
            None => self.make_slot()?,
        };
        Ok(JobCgroup {
            slot: Some(slot),
            pool: self.pool.clone(),
            empty: std::cell::Cell::new(false),
            killed: std::cell::Cell::new(false),
        })
    }

    /// Removes the (empty) cgroups made so far: when they cannot be used after all.
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir(self.dir.join("0"));
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// For the guardian: the herd's cgroup, its parent directory, and its name there.
    pub(super) fn handles(&self) -> io::Result<(OwnedFd, OwnedFd, CString)> {
        use std::os::unix::ffi::OsStrExt;
        let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
        let parent = self.dir.parent().ok_or_else(invalid)?;
        let name = self.dir.file_name().ok_or_else(invalid)?;
        Ok((
            self.pool.dir.try_clone()?,
            open_dir(parent)?,
            CString::new(name.as_bytes()).map_err(|_| invalid())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let line = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw";
        let m = parse_mount(line).unwrap();
        assert_eq!(
            (m.root.as_str(), m.mount_point.as_str(), m.fstype.as_str()),
            ("/", "/sys/fs/cgroup/unified", "cgroup2")
        );
        let line = r"50 1 0:40 /a\040b /mnt/my\040cg rw - cgroup2 none rw";
        let m = parse_mount(line).unwrap();
        assert_eq!(
            (m.root.as_str(), m.mount_point.as_str()),
            ("/a b", "/mnt/my cg")
        );
    }
}
