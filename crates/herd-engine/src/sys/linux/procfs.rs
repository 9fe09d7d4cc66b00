//! What herd reads about other processes in `/proc`: a process's state and groups, and its
//! children. Shared by [`orphans`](super::orphans) (which of herd's children were adopted),
//! [`terminal`](super::terminal) (which process is stopped at the terminal) and
//! [`containment`](super::containment) (a foreground job's descendants).

use std::fmt::Display;

/// The fields of `/proc/<pid>/stat` herd uses.
pub(super) struct Stat {
    /// `R`, `S`, `T` (stopped), `Z`, …
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// The controlling terminal's device number; 0 for none.
    pub tty_nr: i64,
}

/// `/proc/<pid>/stat` ("self" for this process). Its name, in parentheses, may hold anything,
/// so the fields are counted from the last parenthesis.
pub(super) fn stat(pid: impl Display) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let _session = fields.next()?;
    let tty_nr = fields.next()?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        tty_nr,
    })
}

/// The pids in `/proc`.
pub(super) fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}

/// Every child of every thread of process `pid` ("self" for this one); `None` on a kernel
/// without CONFIG_PROC_CHILDREN.
pub(super) fn children_of(pid: impl Display) -> Option<Vec<i32>> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(pids);
    };
    for task in tasks.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(list) => pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => {}
        }
    }
    Some(pids)
}

/// Every descendant of `pid`, parents before their children, as far as
/// `/proc/<pid>/task/*/children` shows them (a fork racing with the walk can be missed).
pub(super) fn descendants_of(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for child in children_of(p).unwrap_or_default() {
            if !found.contains(&child) {
                found.push(child);
                next.push(child);
            }
        }
    }
    found
}
