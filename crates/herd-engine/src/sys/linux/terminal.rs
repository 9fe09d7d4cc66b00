//! Jobs stopped by the terminal, found among all their processes.
//!
//! Why: a job runs in a process group of its own, which is never the terminal's foreground
//! group, so a process of it that reads the terminal (`ssh`, `sudo` and `git` prompts open
//! `/dev/tty`), or writes to it under `stty tostop`, or changes its modes, is stopped by the
//! kernel (SIGTTIN, SIGTTOU) and waits for ever. The job's own process is asked directly
//! ([`Process::stopped_for_terminal`](super::process::Process::stopped_for_terminal)); a
//! descendant (`sh -c 'ssh host …'`) is not herd's child and cannot be asked so. It is found
//! in `/proc`: a process in one of the jobs' groups, stopped (`T`), whose interrupted system
//! call (`/proc/<pid>/syscall`) is a read, write or ioctl on a descriptor that is a terminal.
//! A process stopped on purpose (SIGSTOP, `kill -STOP`) is stopped elsewhere, and left alone.
//!
//! Only a herd with a controlling terminal looks: without one, no job can be stopped so (its
//! processes cannot open `/dev/tty`), and nothing in `/proc` is read.

use super::procfs;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Of the process groups `groups` (the running jobs' leaders), those in which some process is
/// stopped by the terminal.
pub(crate) fn groups_stopped_at_terminal(groups: &HashSet<u32>) -> Vec<u32> {
    if groups.is_empty() || !has_terminal() {
        return Vec::new();
    }
    let mut stopped = Vec::new();
    for pid in procfs::pids() {
        let Some(stat) = procfs::stat(pid) else {
            continue;
        };
        let pgrp = stat.pgrp as u32;
        if stat.state == 'T'
            && groups.contains(&pgrp)
            && !stopped.contains(&pgrp)
            && at_terminal(pid)
        {
            stopped.push(pgrp);
        }
    }
    stopped
}

/// Whether this process has a controlling terminal (asked once).
fn has_terminal() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| procfs::stat("self").is_some_and(|s| s.tty_nr != 0))
}

/// Whether stopped `pid` was stopped in a read, write or ioctl on a terminal.
fn at_terminal(pid: i32) -> bool {
    let Ok(syscall) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let mut fields = syscall.split_whitespace();
    let (Some(number), Some(fd)) = (fields.next(), fields.next()) else {
        return false;
    };
    let Ok(number) = number.parse::<libc::c_long>() else {
        return false;
    };
    let terminal_io = [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_ioctl,
    ];
    if !terminal_io.contains(&number) {
        return false;
    }
    let Ok(fd) = u64::from_str_radix(fd.trim_start_matches("0x"), 16) else {
        return false;
    };
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|target| {
        let target = target.to_string_lossy();
        target == "/dev/console"
            || target.starts_with("/dev/pts/")
            || target.starts_with("/dev/tty")
    })
}
