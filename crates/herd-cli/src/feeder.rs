//! The feeder: from inputs to submitted jobs. It takes one of the `-j` permits (with `-S`, a
//! slot on a host), reads the next input, makes its job and submits it (or skips it, under
//! `--resume`). Reading a pipe or a terminal can block for ever, so then the feeder has a
//! thread of its own and output is never held up by input that has not arrived yet; values
//! and regular files are read by the main thread between events ([`crate::run`]).

use crate::batch::{Batcher, JobArgs};
use crate::gate::Gate;
use crate::jobs::{JobMaker, Made, NotRun};
use crate::printer::{JobInfo, Remote};
use crate::remote::{Ended255, Hosts, Placement};
use herd_engine::{Herd, JobId, KeepOpen};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// Job slots for `{%}`: the lowest free number from 1.
#[derive(Default)]
pub struct Slots {
    pub free: BinaryHeap<Reverse<usize>>,
    pub next: usize,
}

impl Slots {
    pub fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                self.next += 1;
                self.next
            }
        }
    }

    pub fn give(&mut self, slot: usize) {
        self.free.push(Reverse(slot));
    }
}

/// The jobs in flight and the room for more.
pub struct Window {
    pub permits: usize,
    pub slots: Slots,
    pub running: HashMap<JobId, JobInfo>,
    /// Jobs that will not run, not yet reported.
    pub unrun: Vec<Unrun>,
    /// How many `--resume` skipped.
    pub skipped_total: u64,
    pub stop: bool,
    pub input_error: Option<String>,
    /// `-S`: jobs waiting for a host (made while none had room, or back from a failed host).
    pub waiting: VecDeque<JobInfo>,
}

/// A job that does not run.
pub struct Unrun {
    pub seq: u64,
    pub why: Why,
}

pub enum Why {
    /// `--resume`: the joblog says it is done.
    Resumed,
    /// `skip()`, `--filter`, `{choose_k}`, `{uniq}`: counted as failed, with GNU's exit
    /// value -2 in the joblog.
    Skipped { line: Vec<u8> },
    /// Its Perl expression failed: counted as failed, with the reason.
    Failed { line: Vec<u8>, reason: String },
}

/// What the feeder and the main thread share.
pub struct Feed {
    pub window: Mutex<Window>,
    pub room: Condvar,
    /// Keeps the event stream open while the feeder may still submit.
    pub hold: Mutex<Option<KeepOpen>>,
    /// `-S`: the hosts, which hand out job slots instead of the permits.
    pub hosts: Option<Arc<Hosts>>,
}

impl Feed {
    /// Whether another job could start now.
    pub fn has_room(&self, window: &Window) -> bool {
        match &self.hosts {
            Some(hosts) => hosts.has_room(),
            None => window.permits > 0,
        }
    }

    /// Stops feeding: no new job starts, and the event stream ends with the running jobs.
    pub fn stop(&self) {
        self.window.lock().unwrap().stop = true;
        self.room.notify_all();
        self.hold.lock().unwrap().take();
    }
}

/// How often a shut `--memfree`/`--load`/`--noswap` gate is looked at again.
const GATE_CHECK: Duration = Duration::from_millis(100);

/// What one step of the feeder did.
enum Fed {
    /// Submitted a job, or skipped one (`--resume`): there may be room for more.
    Progress,
    /// Every permit is taken.
    NoRoom,
    /// `--memfree`, `--load` or `--noswap` holds the next start back.
    Wait,
    /// The input ended, or the run stopped.
    Done,
}

/// Reads inputs and submits their jobs, one per free permit, until the input ends or the run
/// stops. Jobs in `skip` (`--resume`) keep their number but do not run.
///
/// When reading input can block (a pipe, a terminal), the feeder runs on a thread of its own;
/// when it cannot (values, regular files), the main thread calls it between events, and the
/// run needs one thread less.
pub struct Feeder {
    /// The herd is held only while submitting, and is gone once the run has ended.
    pub herd: Weak<Herd>,
    pub batcher: Batcher,
    pub maker: JobMaker,
    pub skip: HashSet<u64>,
    pub seq: u64,
    /// `--delay`: when the last job started.
    pub delay: Option<Duration>,
    pub last_start: Option<std::time::Instant>,
    /// `-t`: each command on stderr as it starts.
    pub verbose_stderr: bool,
    /// `--memfree`, `--load`, `--noswap`.
    pub gate: Gate,
    /// Whether herd said why it waits with no job running.
    pub said_why: bool,
    /// `--memfree`: jobs are kept to run again when killed to free memory.
    pub keep_jobs: bool,
    /// The input has ended.
    pub input_done: bool,
    /// `--pipe`, `--pipepart`: the input's blocks, one per job's stdin.
    pub blocks: Option<crate::blocks::BlockSource>,
    /// `--cat`, `--fifo`: where the blocks' files are made.
    pub block_files: Option<crate::blockfile::BlockFiles>,
    /// `--tee`: the input every job gets whole.
    pub tee: Option<crate::tee::Tee>,
    /// `--onall`, `--nonall`: each job runs on every host.
    pub everywhere: bool,
    /// `-j` with `--onall`: how many hosts at once.
    pub hosts_at_once: Option<usize>,
}

/// The bookkeeping of a job made for `-S`: it starts when a host has room (on host `pin` only,
/// for `--onall`), from the copies kept here.
fn remote_info(seq: u64, slot: usize, tag: Vec<u8>, made: &Made, pin: Option<usize>) -> JobInfo {
    JobInfo {
        seq,
        slot,
        tag,
        line: made.line.clone(),
        argv: made.argv.clone(),
        results: None,
        values: made.values.clone(),
        job: None,
        runs: 1,
        started: std::time::Instant::now(),
        attempts: Vec::new(),
        _block_file: None,
        remote: Some(Box::new(Remote {
            place: None,
            host: String::new(),
            command: made.remote.clone().expect("a remote command"),
            local: made.job.clone(),
            pin,
            failed_on: Vec::new(),
        })),
    }
}

impl Feeder {
    fn step(&mut self, feed: &Feed) -> Fed {
        {
            let mut window = feed.window.lock().unwrap();
            if window.stop {
                return Fed::Done;
            }
            if let Some(hosts) = &feed.hosts {
                // Jobs waiting for a host go first. A host none of them may use (they failed
                // there, or are pinned elsewhere) takes a new job, as in GNU parallel.
                if !window.waiting.is_empty() {
                    match self.next_waiting(&mut window, hosts) {
                        Some((place, info)) => {
                            return self.submit_at(&mut window, hosts, place, info)
                        }
                        None if !hosts.has_room() => return Fed::NoRoom,
                        None => {}
                    }
                }
            }
            if self.input_done {
                // -S: a running job may yet come back from a failed host, to run elsewhere,
                // and a waiting one may be waiting for a host still logging in.
                if feed.hosts.is_some() && !(window.running.is_empty() && window.waiting.is_empty())
                {
                    return Fed::Wait;
                }
                return Fed::Done;
            }
            if !feed.has_room(&window) {
                if self.tee.as_ref().is_some_and(crate::tee::Tee::waiting) {
                    // The input flows only once every job runs: with no room for the next job,
                    // it never would. The jobs started so far are cancelled before their input
                    // ends, so that none reports a result of an input it never had.
                    if let Some(herd) = self.herd.upgrade() {
                        for id in window.running.keys() {
                            herd.cancel(*id);
                        }
                    }
                    self.tee = None;
                    window.input_error = Some(
                        "--pipe --tee runs every job at once, and -j is less than the number of \
                         jobs: give -j 0 (or leave -j out)"
                            .into(),
                    );
                    return Fed::Done;
                }
                return Fed::NoRoom;
            }
            if let Err(why) = self.gate.check() {
                if window.running.is_empty() && !self.said_why {
                    // Nothing runs: say why nothing starts, once.
                    eprintln!("herd: waiting to start more jobs: {why}");
                    self.said_why = true;
                }
                return Fed::Wait;
            }
        }
        // Read outside the lock: reading may block.
        let maker = &self.maker;
        let (args, block, block_file) = if let Some(blocks) = self.blocks.as_mut() {
            // --pipe: the job's input is the next block; it takes no values (but with --cat
            // and --fifo, its block's file).
            match blocks.next_stdin() {
                Ok(Some(block)) => match self.block_files.as_mut() {
                    None => (JobArgs::default(), Some(block), None),
                    Some(files) => match files.make(block) {
                        Ok((file, stdin)) => {
                            let name = file.path().as_os_str().as_encoded_bytes().to_vec();
                            let args = JobArgs {
                                values: vec![name],
                                ..Default::default()
                            };
                            (args, Some(stdin), Some(file))
                        }
                        Err(e) => {
                            feed.window.lock().unwrap().input_error = Some(e);
                            return Fed::Done;
                        }
                    },
                },
                Ok(None) => {
                    self.input_done = true;
                    return Fed::Progress;
                }
                Err(e) => {
                    feed.window.lock().unwrap().input_error = Some(e);
                    return Fed::Done;
                }
            }
        } else {
            match self.batcher.next_job(&mut |v| maker.measure(v)) {
                // --tee: the job's stdin is the whole input.
                Ok(Some(v)) => (v, self.tee.as_mut().map(crate::tee::Tee::stdin), None),
                Ok(None) => {
                    self.input_done = true;
                    // --tee: every job is made; the input may flow.
                    if let Some(Err(e)) = self.tee.as_mut().map(crate::tee::Tee::start) {
                        feed.window.lock().unwrap().input_error =
                            Some(format!("cannot start the input thread: {e}"));
                        return Fed::Done;
                    }
                    return Fed::Progress;
                }
                Err(e) => {
                    feed.window.lock().unwrap().input_error = Some(e.0);
                    return Fed::Done;
                }
            }
        };
        self.seq += 1;
        let seq = self.seq;
        let mut window = feed.window.lock().unwrap();
        if window.stop {
            return Fed::Done;
        }
        if self.skip.contains(&seq) {
            window.unrun.push(Unrun {
                seq,
                why: Why::Resumed,
            });
            window.skipped_total += 1;
            return Fed::Progress;
        }
        if let (Some(delay), Some(last)) = (self.delay, self.last_start) {
            // --delay: the next start waits its turn (the engine keeps reading output).
            std::thread::sleep(delay.saturating_sub(last.elapsed()));
        }
        let slot = window.slots.take();
        let made = match self.maker.make(&args, seq, slot) {
            Ok(mut made) => {
                if let Some(block) = block {
                    made.job = made.job.stdin(block);
                }
                made
            }
            Err(not_run) => {
                window.slots.give(slot);
                let why = match not_run {
                    NotRun::Skipped(line) => Why::Skipped { line },
                    NotRun::Failed(line, reason) => Why::Failed { line, reason },
                    NotRun::Fatal(e) => {
                        window.input_error = Some(e);
                        return Fed::Done;
                    }
                };
                window.unrun.push(Unrun { seq, why });
                return Fed::Progress;
            }
        };
        if feed.hosts.is_none() {
            window.permits -= 1;
        }
        if self.verbose_stderr {
            eprintln!("{}", String::from_utf8_lossy(&made.line));
        }
        self.last_start = Some(std::time::Instant::now());
        if let (Some(hosts), true) = (&feed.hosts, self.everywhere) {
            // --onall: the same job for every host, each pinned to it, numbered host by host.
            let n = hosts.count();
            let per_host = self.maker.total.unwrap_or(1).max(seq);
            for h in 0..n {
                let mut tag = hosts.host_name(h).into_bytes();
                tag.push(b'\t');
                let slot = if h == 0 { slot } else { window.slots.take() };
                let info = remote_info(h as u64 * per_host + seq, slot, tag, &made, Some(h));
                window.waiting.push_back(info);
            }
            return Fed::Progress;
        }
        if let Some(hosts) = &feed.hosts {
            let mut info = remote_info(seq, slot, made.tag.clone(), &made, None);
            info.results = made.results;
            return match hosts.pick() {
                Some(place) => self.submit_at(&mut window, hosts, place, info),
                None => {
                    window.waiting.push_back(info);
                    Fed::Progress
                }
            };
        }
        // (Not a --pipe --tee job: a copy of its stream would keep it open after the job ends,
        // and hold up every other job's input.)
        let streamed = matches!(self.tee, Some(crate::tee::Tee::Stream { .. }));
        let again =
            (!streamed && (self.maker.retries > 1 || self.keep_jobs)).then(|| made.job.clone());
        // Submitting under the lock: the main thread cannot see the job's events before its info.
        let Some(herd) = self.herd.upgrade() else {
            return Fed::Done;
        };
        match herd.submit(made.job) {
            Ok(id) => {
                window.running.insert(
                    id,
                    JobInfo {
                        seq,
                        slot,
                        tag: made.tag,
                        line: made.line,
                        argv: made.argv,
                        results: made.results,
                        values: made.values,
                        job: again,
                        runs: 1,
                        started: std::time::Instant::now(),
                        remote: None,
                        attempts: Vec::new(),
                        _block_file: block_file,
                    },
                );
                Fed::Progress
            }
            Err(_) => Fed::Done,
        }
    }

    /// `-S`: the first waiting job that can start now, with its place. A job pinned to a
    /// host that is down (`--onall`) is reported as not run.
    fn next_waiting(&self, window: &mut Window, hosts: &Hosts) -> Option<(Placement, JobInfo)> {
        if self
            .hosts_at_once
            .is_some_and(|n| window.running.len() >= n)
        {
            return None;
        }
        let mut i = 0;
        while i < window.waiting.len() {
            let remote = window.waiting[i].remote.as_ref();
            let pin = remote.and_then(|r| r.pin);
            let failed_on = remote.map_or(&[][..], |r| &r.failed_on[..]);
            let place = match pin {
                None => hosts.pick_except(failed_on),
                Some(h) => match hosts.pick_on(h) {
                    Ok(place) => place,
                    Err(why) => {
                        let info = window.waiting.remove(i).expect("a waiting job");
                        window.slots.give(info.slot);
                        window.unrun.push(Unrun {
                            seq: info.seq,
                            why: Why::Failed {
                                line: info.line,
                                reason: why,
                            },
                        });
                        continue;
                    }
                },
            };
            match (place, pin) {
                (Some(place), _) => {
                    return Some((place, window.waiting.remove(i).expect("a waiting job")))
                }
                // No host has room: neither has it for the jobs behind.
                (None, None) if failed_on.is_empty() => return None,
                // A pinned job, or a retry waiting for a host it has not failed on: the jobs
                // behind may go where it cannot.
                (None, _) => i += 1,
            }
        }
        None
    }

    /// `-S`: submits a job at the place the hosts gave it (under the window's lock, as
    /// [`Feeder::step`] submits).
    fn submit_at(
        &mut self,
        window: &mut Window,
        hosts: &Hosts,
        place: Placement,
        mut info: JobInfo,
    ) -> Fed {
        let remote = info.remote.as_mut().expect("a job for the hosts");
        let job = if hosts.is_local(place) {
            remote.local.clone()
        } else {
            self.maker.settle(hosts.job(place, &remote.command))
        };
        remote.place = Some(place);
        remote.host = hosts.name(place);
        info.job = (self.maker.retries > 1 || self.keep_jobs).then(|| job.clone());
        info.started = std::time::Instant::now();
        let submitted = self.herd.upgrade().map(|herd| herd.submit(job));
        match submitted {
            Some(Ok(id)) => {
                window.running.insert(id, info);
                Fed::Progress
            }
            _ => {
                hosts.release(place);
                Fed::Done
            }
        }
    }

    /// On a thread of its own: waits for permits, feeds until done.
    pub fn run_thread(mut self, feed: &Feed) {
        loop {
            {
                let mut window = feed.window.lock().unwrap();
                while !window.stop && !self.input_done && !feed.has_room(&window) {
                    // Hosts wake this without the lock (they may be called under it): look
                    // again now and then so that no wake-up is lost.
                    window = feed.room.wait_timeout(window, GATE_CHECK).unwrap().0;
                }
            }
            match self.step(feed) {
                Fed::Done => break,
                // The gate is shut, or (-S) the room a host has is not room for the waiting
                // jobs (--onall pins them): look again shortly, or when a job ends.
                Fed::Wait => {
                    let window = feed.window.lock().unwrap();
                    let _ = feed.room.wait_timeout(window, GATE_CHECK).unwrap();
                }
                Fed::NoRoom if feed.hosts.is_some() => {
                    let window = feed.window.lock().unwrap();
                    let _ = feed.room.wait_timeout(window, GATE_CHECK).unwrap();
                }
                Fed::Progress | Fed::NoRoom => {}
            }
        }
        feed.hold.lock().unwrap().take();
    }

    /// On the main thread: submits while there is room. Returns false once done.
    pub fn fill(&mut self, feed: &Feed) -> bool {
        loop {
            match self.step(feed) {
                Fed::Progress => {}
                Fed::NoRoom | Fed::Wait => return true,
                Fed::Done => {
                    feed.hold.lock().unwrap().take();
                    return false;
                }
            }
        }
    }
}

/// `-S`: the host of a job that ended with ssh's status 255 because of its host rather than
/// itself (the connection is gone, or the host refused the session): the job runs again.
pub fn host_at_fault(
    hosts: Option<&Hosts>,
    info: &JobInfo,
    result: &herd_engine::JobResult,
) -> Option<Placement> {
    let remote = info.remote.as_ref()?;
    let place = remote.place?;
    let hosts = hosts?;
    if result.cancelled || result.exit_code() != Some(255) || hosts.is_local(place) {
        return None;
    }
    match hosts.ended_255(place) {
        Ended255::Job => None,
        // A job pinned to its host (--onall) fails with it.
        Ended255::HostFailed => remote.pin.is_none().then_some(place),
        Ended255::Refused => Some(place),
    }
}

/// `-S`: every host is down. The run stops; the jobs that were waiting for a host are
/// reported as not run, each with the reason.
pub fn no_host_left(feed: &Feed, why: String) -> bool {
    let mut window = feed.window.lock().unwrap();
    if !window.running.is_empty() {
        // Their ends will tell; they may yet bring their hosts' failures.
        return false;
    }
    let waiting = std::mem::take(&mut window.waiting);
    for info in waiting {
        window.unrun.push(Unrun {
            seq: info.seq,
            why: Why::Failed {
                line: info.line,
                reason: format!("not run: {why}"),
            },
        });
    }
    window.input_error = Some(why);
    drop(window);
    feed.stop();
    true
}
