//! `--memfree`, `--load`, `--noswap`: GNU parallel's conditions for starting another job,
//! read from the kernel's own counters (`/proc/meminfo`, `/proc/stat`, `/proc/vmstat`) each
//! time a job could start. While one does not hold, no job starts; the run looks again at
//! least every tenth of a second. `--memfree` also makes room: below half of it, the youngest
//! job is killed and queued to run again, as GNU parallel does.
//!
//! Only Linux has these counters; elsewhere the options are refused when given.

use std::time::Instant;

/// The limits asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// `--memfree`: bytes that must be available to start a job.
    pub memfree: Option<u64>,
    /// `--load`: the most processes running or waiting on I/O at once.
    pub load: Option<f64>,
    /// `--noswap`: no job starts while the machine swaps both in and out.
    pub noswap: bool,
}

impl Limits {
    /// `--memfree`: whether memory is so short (under half of it) that the youngest job must
    /// make room.
    pub fn must_free_memory(&self) -> bool {
        self.memfree
            .is_some_and(|wanted| available_memory().is_some_and(|a| a < wanted / 2))
    }
}

/// Descriptors a running job holds in the engine: its stdout and stderr pipes, its pidfd, its
/// cgroup's directory and `cgroup.events`, and while it starts the child's ends of its pipes.
#[cfg(unix)]
const ENGINE_DESCRIPTORS_PER_JOB: u64 = 7;
/// Left for herd itself (its standard streams, the poller, input files, the Perl helper).
#[cfg(unix)]
const RESERVED_DESCRIPTORS: u64 = 64;

/// The most jobs that can run at once when each also keeps `extra_per_job` descriptors of the
/// command's own open (`--results` files), within the descriptor limit (`ulimit -n`; herd
/// raises the soft limit to the hard one). `None` when `jobs` fit. Without this the engine
/// would start jobs until descriptors ran out and the command's own files then failed; GNU
/// parallel caps its jobs the same way ("Only enough file handles to run N jobs").
pub fn jobs_within_descriptors(jobs: usize, extra_per_job: u64) -> Option<(usize, u64)> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        let per_job = ENGINE_DESCRIPTORS_PER_JOB + extra_per_job;
        let fit = (hard.saturating_sub(RESERVED_DESCRIPTORS) / per_job).max(1);
        (jobs as u64 > fit).then_some((fit as usize, hard))
    }
    #[cfg(not(unix))]
    {
        let _ = (jobs, extra_per_job);
        None
    }
}

/// Parses GNU parallel's sizes (its UNIT PREFIX): `K M G T P` and `Ki Mi …` (either case)
/// are powers of 1024, `k m g t p` powers of 1000 (`--block 3m` is 3,000,000 bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let binary = |power: u32| Some(1024f64.powi(power as i32));
    let unit = match unit {
        "" => Some(1.0),
        "K" => binary(1),
        "M" => binary(2),
        "G" => binary(3),
        "T" => binary(4),
        "P" => binary(5),
        "k" => Some(1e3),
        "m" => Some(1e6),
        "g" => Some(1e9),
        "t" => Some(1e12),
        "p" => Some(1e15),
        _ => match unit.to_ascii_lowercase().as_str() {
            "ki" => binary(1),
            "mi" => binary(2),
            "gi" => binary(3),
            "ti" => binary(4),
            "pi" => binary(5),
            _ => None,
        },
    }?;
    let n: f64 = digits.parse().ok()?;
    let bytes = n * unit;
    (bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `--load N` or `N%` (of the CPUs).
pub fn parse_load(s: &str, cpus: usize) -> Option<f64> {
    let n = match s.strip_suffix('%') {
        Some(p) => p.parse::<f64>().ok()? * cpus as f64 / 100.0,
        None => s.parse().ok()?,
    };
    (n > 0.0 && n.is_finite()).then_some(n)
}

/// Why no job may start now.
#[derive(Debug, PartialEq)]
pub enum Wait {
    Memory { available: u64, wanted: u64 },
    Load { load: f64, max: f64 },
    Swapping,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Memory { available, wanted } => write!(
                f,
                "{} MiB of memory available, --memfree asks for {} MiB",
                available >> 20,
                wanted >> 20
            ),
            Wait::Load { load, max } => {
                write!(f, "{load} processes running, --load allows {max}")
            }
            Wait::Swapping => write!(f, "the machine is swapping in and out (--noswap)"),
        }
    }
}

/// The gate the feeder asks before each start.
pub struct Gate {
    limits: Limits,
    /// `--noswap`: the swap counters when last read.
    swapped: Option<(u64, u64, Instant)>,
}

/// A field of a `/proc` file whose lines are `name value…`.
fn proc_field(path: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()?.trim_end_matches(':') == name).then(|| words.next()?.parse().ok())?
    })
}

/// Bytes of memory available to a new process.
pub fn available_memory() -> Option<u64> {
    proc_field("/proc/meminfo", "MemAvailable").map(|kib| kib * 1024)
}

/// Processes running or in uninterruptible sleep now (what GNU parallel counts as load).
fn load() -> Option<f64> {
    let running = proc_field("/proc/stat", "procs_running")?;
    let blocked = proc_field("/proc/stat", "procs_blocked").unwrap_or(0);
    // herd itself, asking, is one of the running.
    Some((running + blocked).saturating_sub(1) as f64)
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            swapped: None,
        }
    }

    pub fn is_open_always(&self) -> bool {
        self.limits.memfree.is_none() && self.limits.load.is_none() && !self.limits.noswap
    }

    /// Whether a job may start now.
    pub fn check(&mut self) -> Result<(), Wait> {
        // Only the counters a limit needs are read: with none, a start costs nothing here.
        if let Some(wanted) = self.limits.memfree {
            if let Some(available) = available_memory().filter(|&a| a < wanted) {
                return Err(Wait::Memory { available, wanted });
            }
        }
        if let Some(max) = self.limits.load {
            if let Some(load) = load().filter(|&l| l >= max) {
                return Err(Wait::Load { load, max });
            }
        }
        if self.limits.noswap {
            let now = (
                proc_field("/proc/vmstat", "pswpin").unwrap_or(0),
                proc_field("/proc/vmstat", "pswpout").unwrap_or(0),
                Instant::now(),
            );
            let before = self.swapped.replace(now);
            if let Some((sin, sout, _)) = before {
                if now.0 > sin && now.1 > sout {
                    return Err(Wait::Swapping);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_loads_as_gnu_parallel_reads_them() {
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5m"), Some(1_500_000));
        assert_eq!(parse_size("3Mi"), Some(3 << 20));
        assert_eq!(parse_size("3mi"), Some(3 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_load("3", 8), Some(3.0));
        assert_eq!(parse_load("50%", 8), Some(4.0));
        assert_eq!(parse_load("0", 8), None);
    }

    #[test]
    fn the_gate_reads_the_kernels_counters() {
        if std::fs::metadata("/proc/meminfo").is_err() {
            return;
        }
        let available = available_memory().expect("MemAvailable");
        let mut open = Gate::new(Limits {
            memfree: Some(1),
            load: Some(1e9),
            noswap: false,
        });
        assert_eq!(open.check(), Ok(()));
        let mut shut = Gate::new(Limits {
            memfree: Some(available * 4),
            ..Limits::default()
        });
        assert!(matches!(shut.check(), Err(Wait::Memory { .. })));
        assert!(Limits {
            memfree: Some(available * 4),
            ..Limits::default()
        }
        .must_free_memory());
    }
}
