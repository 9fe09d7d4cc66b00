//! What a job produced: [`JobResult`], and the [`Event`]s of a run.

use crate::output::Captured;
use crate::sys::Stream;
use crate::SpawnError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Identifies a submitted job. Ids count up from 1 in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The number: 1 for the first job submitted to a herd, 2 for the second, …
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal (Unix).
    Signaled(i32),
    /// The process could not be started.
    SpawnFailed(SpawnError),
    /// The job was cancelled before it started.
    Cancelled,
    /// The process ended, but its status was taken by someone else (a `waitpid(-1)` elsewhere
    /// in this program).
    Unknown,
}

/// As a person would say it: `exit 0`, `killed by SIGTERM`, `could not start: program not
/// found: frob`, `cancelled before it started`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exit {code}"),
            Outcome::Signaled(signal) => match signal_name(*signal) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {signal}"),
            },
            Outcome::SpawnFailed(e) => write!(f, "could not start: {e}"),
            Outcome::Cancelled => f.write_str("cancelled before it started"),
            Outcome::Unknown => f.write_str("ended, its status taken elsewhere"),
        }
    }
}

/// CPU time and memory the job's process used, as reported when it was reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// CPU time in user mode.
    pub user_time: Duration,
    /// CPU time in the kernel.
    pub system_time: Duration,
    /// Peak resident set size, in KiB, as the kernel reports it (`ru_maxrss`).
    ///
    /// On Linux a child started sharing its parent's memory (as herd starts them, so that spawning
    /// does not copy the parent's page tables) shares the parent's memory until `exec`, and the
    /// kernel folds that memory's peak into the child's figure. So this is the larger of the
    /// child's own peak and the peak of the process that runs the herd.
    pub max_rss_kb: u64,
}

/// Everything herd knows about a finished job.
#[derive(Debug)]
pub struct JobResult {
    /// The job's id.
    pub id: JobId,
    /// The job's [`tag`](crate::Job::tag), if it has one.
    pub tag: Option<Arc<str>>,
    /// The process id, if the job started.
    pub pid: Option<u32>,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether it was killed for running past its timeout.
    pub timed_out: bool,
    /// Whether it was cancelled ([`Herd::cancel`](crate::Herd::cancel) or shutdown).
    pub cancelled: bool,
    /// Whether some descendant still held its stdout or stderr open after the grace that
    /// follows its exit (and was killed for it).
    pub leaked: bool,
    /// Whether it was stopped for reading or writing the terminal (SIGTTIN, SIGTTOU) and
    /// killed for it: it runs in a process group of its own, where it would have waited for
    /// ever. Such a program needs its input some other way (`ssh -n`, `sudo -S`, a
    /// credential helper) or to run outside herd.
    pub stopped_for_terminal: bool,
    /// When the process started (or the job was given up, if it never did).
    pub start_time: SystemTime,
    /// From start to exit.
    pub duration: Duration,
    /// CPU time and peak memory of the process (and of descendants it waited for).
    pub usage: ResourceUsage,
    /// Standard output. Empty when output was not collected.
    pub stdout: Captured,
    /// Standard error. Empty when output was not collected.
    pub stderr: Captured,
}

impl JobResult {
    /// The result of a job that never ran.
    pub(crate) fn not_run(
        id: JobId,
        tag: Option<Arc<str>>,
        outcome: Outcome,
        cancelled: bool,
    ) -> Self {
        JobResult {
            id,
            tag,
            pid: None,
            outcome,
            timed_out: false,
            cancelled,
            leaked: false,
            stopped_for_terminal: false,
            start_time: SystemTime::now(),
            duration: Duration::ZERO,
            usage: ResourceUsage::default(),
            stdout: Captured::empty(),
            stderr: Captured::empty(),
        }
    }

    /// Whether the job exited with code 0 and was not timed out or cancelled.
    pub fn success(&self) -> bool {
        matches!(self.outcome, Outcome::Exited(0)) && !self.timed_out && !self.cancelled
    }

    /// The exit code, if the process exited (not killed by a signal); for a program that could
    /// not be started, the code a shell would report (127 or 126).
    pub fn exit_code(&self) -> Option<i32> {
        match &self.outcome {
            Outcome::Exited(c) => Some(*c),
            Outcome::SpawnFailed(e) => Some(e.shell_exit_code()),
            _ => None,
        }
    }

    /// The signal that killed the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.outcome {
            Outcome::Signaled(s) => Some(s),
            _ => None,
        }
    }

    /// The output of one stream.
    pub fn output(&self, stream: Stream) -> &Captured {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

/// The name of a signal ("SIGTERM"), where the platform has one.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    crate::sys::signal_name(signal)
}

/// Something that happened in a run, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// The job's process started. Its program may still fail to load (a file the kernel cannot
    /// execute, an argument list too long): on Linux that shows only as the process exits, and
    /// then the job's [`Finished`](Event::Finished) says [`Outcome::SpawnFailed`].
    Started {
        /// Which job.
        id: JobId,
        /// Its process id.
        pid: u32,
        /// Its [`tag`](crate::Job::tag).
        tag: Option<Arc<str>>,
    },
    /// Output arrived (only for jobs with [`Job::stream_output`](crate::Job::stream_output)).
    Output {
        /// Which job.
        id: JobId,
        /// Which stream.
        stream: Stream,
        /// The bytes, in order within the stream.
        data: crate::Chunk,
        /// The job's [`tag`](crate::Job::tag).
        tag: Option<Arc<str>>,
    },
    /// The job finished. (Boxed: results are large and rare, output chunks small and many.)
    Finished(Box<JobResult>),
}
