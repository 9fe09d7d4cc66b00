//! How a herd keeps its jobs' processes from outliving their job and the herd.
//!
//! Two levels, the best this process may use (decided once, when the herd starts):
//! - [`Cgroups`]: a cgroup per job inside one per herd, with a [`Guardian`] that kills the
//!   herd's cgroup if the herd dies. Reaches every descendant.
//! - Process groups: each job leads its own group, and the guardian kills the groups of the
//!   jobs still running if the herd dies. A descendant that calls `setsid` or `setpgid` leaves
//!   its job's group and is not reached, unless the herd adopts [`Orphans`]: then it is
//!   killed once its parent has died and handed it to herd's process.
//!
//! With `kill_descendants(false)` neither is used: jobs may leave daemons behind on purpose.

use super::cgroup::{Cgroups, JobCgroup};
use super::guardian::Guardian;
use super::orphans::Orphans;
use crate::Containment as Level;
use rustix::process::{kill_process_group, Pid, Signal};
use std::io;
use std::sync::Arc;

/// A herd's containment: what [`spawn`](super::spawn) places each job in.
pub(crate) struct Containment {
    cgroups: Option<Cgroups>,
    guardian: Option<Arc<Guardian>>,
    /// Process-group level, when asked: this process is a child subreaper.
    orphans: Option<Orphans>,
}

impl Containment {
    /// `use_cgroups`: try cgroup v2 first. `kill_descendants`: contain at all.
    /// `adopt_orphans`: without cgroups, catch what leaves a job's group (see [`Orphans`]).
    pub(crate) fn new(
        kill_descendants: bool,
        use_cgroups: bool,
        adopt_orphans: bool,
    ) -> Containment {
        if !kill_descendants {
            return Containment {
                cgroups: None,
                guardian: None,
                orphans: None,
            };
        }
        if use_cgroups {
            if let Some(cgroups) = Cgroups::create() {
                if let Ok(guardian) = Guardian::for_cgroups(&cgroups) {
                    return Containment {
                        cgroups: Some(cgroups),
                        guardian: Some(Arc::new(guardian)),
                        orphans: None,
                    };
                }
                // No guardian, no cgroup: nobody would remove it.
                cgroups.remove();
            }
        }
        Containment {
            cgroups: None,
            guardian: Guardian::for_process_groups().ok().map(Arc::new),
            orphans: adopt_orphans.then(Orphans::adopt).flatten(),
        }
    }

    /// Kills the descendants that left their job's group and were handed to this process
    /// (nothing unless the herd adopts orphans). Called once a second while jobs run.
    pub(crate) fn sweep_orphans(&self) {
        if let Some(orphans) = &self.orphans {
            orphans.sweep();
        }
    }

    pub(crate) fn level(&self) -> Level {
        match (&self.cgroups, &self.guardian) {
            (Some(_), _) => Level::Cgroup,
            (None, Some(_)) => Level::ProcessGroup,
            (None, None) => Level::None,
        }
    }

    /// `dir` (empty but for unnamed files) is removed by the guardian if the herd cannot.
    pub(crate) fn remove_when_gone(&self, dir: &std::path::Path) {
        if let Some(guardian) = &self.guardian {
            guardian.remove_when_gone(dir);
        }
    }

    /// Where the next job goes: a cgroup of its own, or its own process group.
    pub(super) fn lend(&self) -> io::Result<Tree> {
        Ok(match &self.cgroups {
            Some(cgroups) => Tree::Cgroup(cgroups.lend()?),
            None => Tree::Group(self.guardian.clone()),
        })
    }
}

impl Drop for Containment {
    /// The herd has ended (every job reaped): no orphan may outlive it. The guardian (a field,
    /// dropped after this) then removes what is left.
    fn drop(&mut self) {
        if let Some(orphans) = &self.orphans {
            orphans.sweep_all();
        }
    }
}

/// The container of one job's processes.
pub(crate) enum Tree {
    Cgroup(JobCgroup),
    /// The job's process group, known to the guardian (if there is one).
    Group(Option<Arc<Guardian>>),
}

impl Tree {
    /// The child `leader` now exists (and leads its process group).
    pub(super) fn started(&self, leader: Pid, placed: bool) -> io::Result<()> {
        match self {
            // Not placed by `clone3`: moved in now (its very first forks may have escaped).
            Tree::Cgroup(cgroup) if !placed => cgroup.adopt(leader),
            Tree::Cgroup(_) => Ok(()),
            Tree::Group(guardian) => {
                if let Some(g) = guardian {
                    g.watch(leader);
                }
                Ok(())
            }
        }
    }

    /// Signals every process of the job.
    pub(super) fn signal(&self, leader: Pid, signal: Signal) {
        match self {
            Tree::Cgroup(cgroup) if signal == Signal::KILL => cgroup.kill_all(),
            Tree::Cgroup(cgroup) => {
                // ESRCH (the group is empty) is not an error here.
                let _ = kill_process_group(leader, signal);
                cgroup.signal_all(signal);
            }
            Tree::Group(_) => {
                // ESRCH: a foreground job leads no group (it is in herd's own): its process
                // and what descends from it now, found by walking /proc.
                // Found before anything dies: a dead parent's children move to herd or init.
                if kill_process_group(leader, signal).is_err() {
                    let tree = super::procfs::descendants_of(leader.as_raw_nonzero().get());
                    let _ = rustix::process::kill_process(leader, signal);
                    for pid in tree.into_iter().filter_map(Pid::from_raw) {
                        let _ = rustix::process::kill_process(pid, signal);
                    }
                }
            }
        }
    }

    /// The leader is about to be reaped: after that its pid (the group's id) may be reused.
    pub(super) fn leader_reaped(&self, leader: Pid) {
        if let Tree::Group(Some(guardian)) = self {
            guardian.forget(leader);
        }
    }
}
