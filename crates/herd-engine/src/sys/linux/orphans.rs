//! Orphans: descendants that left their job's process group, caught where herd has no cgroup.
//!
//! Why: without a cgroup a job's tree is its process group, and a descendant that calls
//! `setsid` or `setpgid` (a daemon, `setsid cmd &`) leaves it; killing the group misses it.
//! A herd built with [`adopt_orphans`](crate::Builder::adopt_orphans) makes its process a
//! child subreaper (`PR_SET_CHILD_SUBREAPER`, as tini and dumb-init do): when such a
//! descendant's parent exits, the kernel gives it to herd's process instead of init, and it
//! appears among the process's own children. Once a second while jobs run, and when the herd
//! ends, herd lists those children (`/proc/self/task/*/children`) and kills (with its group)
//! and reaps each one that is neither a job nor in the process's own process group (which
//! holds whatever else the program started, such as GNU-style helpers).
//!
//! Which job an orphan came from can no longer be told, so it is killed when it is seen a
//! second time, a tick later, whether or not its job still runs; at the herd's end, at once.
//! Waiting for a second sighting also means a job's child in the instant between its creation
//! and its registration below is never taken for an orphan.
//!
//! Every child a herd starts (job leaders and guardians, of every herd in the process) is
//! registered here from its creation until it is reaped, so that no herd takes another's for
//! an orphan.
//!
//! Limit: if herd's process is SIGKILLed, what it had adopted goes to init, out of reach (the
//! guardian is not its ancestor); a cgroup has no such gap.

use super::procfs;
use rustix::process::{
    getpgrp, getpid, kill_process, kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions,
};
use std::collections::HashSet;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Children started by any herd of this process and not yet reaped.
static STARTED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// `pid` is a child a herd started (a job's leader, a guardian).
pub(super) fn register(pid: Pid) {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    started
        .get_or_insert_with(HashSet::new)
        .insert(pid.as_raw_nonzero().get());
}

/// `pid` is about to be reaped (its number may then be reused).
pub(super) fn unregister(pid: Pid) {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = started.as_mut() {
        set.remove(&pid.as_raw_nonzero().get());
    }
}

fn is_registered(pid: i32) -> bool {
    let started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    started.as_ref().is_some_and(|s| s.contains(&pid))
}

/// A herd's watch for orphans (see the module's documentation).
pub(crate) struct Orphans {
    /// Candidates seen at the last sweep: killed if still there at this one.
    seen: Mutex<HashSet<i32>>,
}

impl Orphans {
    /// Makes this process a child subreaper; `None` if the kernel refuses.
    pub(crate) fn adopt() -> Option<Orphans> {
        static SUBREAPER: Once = Once::new();
        let mut ok = true;
        SUBREAPER.call_once(|| {
            ok = rustix::process::set_child_subreaper(Some(getpid())).is_ok();
        });
        // A second herd finds the process a subreaper already (or not, if the first failed).
        let is = rustix::process::child_subreaper().ok().flatten().is_some();
        (ok && is).then(|| Orphans {
            seen: Mutex::new(HashSet::new()),
        })
    }

    /// Kills and reaps the orphans seen at the previous sweep and still here; remembers the
    /// new ones, and those killed but not yet reaped (reaped at the next sweep).
    pub(crate) fn sweep(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = candidates()
            .into_iter()
            .filter(|pid| !seen.contains(pid) || !end(*pid))
            .collect();
    }

    /// The herd ends: every orphan is killed now, and those that its death orphans in turn,
    /// until none is left (or a second has passed: a process in uninterruptible sleep may not
    /// die at once, and herd's end must not hang on it).
    pub(crate) fn sweep_all(&self) {
        let give_up = Instant::now() + Duration::from_secs(1);
        let mut pause = Duration::from_micros(100);
        loop {
            let mut pending = false;
            for pid in candidates() {
                pending |= !end(pid);
            }
            // Found nothing, or everything found is reaped: one more look catches an orphan
            // made by a death in between; then done.
            if !pending && candidates().is_empty() {
                break;
            }
            if Instant::now() >= give_up {
                break;
            }
            if pending {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
        }
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Kills `pid` (an orphan, our child) and its process group if it leads one, and reaps it if
/// it has died: true once reaped.
fn end(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return true;
    };
    if pgrp_of(pid) == Some(pid) {
        let _ = kill_process_group(p, Signal::KILL);
    }
    let _ = kill_process(p, Signal::KILL);
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    match waitid(WaitId::Pid(p), options) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        // ECHILD: not (or no longer) our child.
        Err(_) => true,
    }
}

/// This process's children that no herd started and that left the process's own group.
fn candidates() -> Vec<i32> {
    let own_group = getpgrp().as_raw_nonzero().get();
    children()
        .into_iter()
        .filter(|&pid| !is_registered(pid))
        .filter(|&pid| pgrp_of(pid).is_some_and(|g| g != own_group))
        .collect()
}

/// Every child of every thread of this process.
fn children() -> Vec<i32> {
    procfs::children_of("self").unwrap_or_else(|| {
        let me = getpid().as_raw_nonzero().get();
        procfs::pids()
            .filter(|&pid| procfs::stat(pid).is_some_and(|s| s.ppid == me))
            .collect()
    })
}

fn pgrp_of(pid: i32) -> Option<i32> {
    procfs::stat(pid).map(|s| s.pgrp)
}
