//! The event loop: the one thread that owns every running job.
//!
//! A byte's path: the child writes to its pipe; the [`Poller`](crate::sys::Poller) reads it and
//! reports [`SysEvent::Output`]; [`Engine::on_sys_event`] appends it to the job's
//! [`Capture`] (memory, then a spill file) and, for streamed jobs, queues an
//! [`Event::Output`]. (Once a stream that is not streamed spills, Linux's poller moves the
//! rest from the pipe into the spill file with `splice` and reports only the count,
//! [`SysEvent::Spilled`].) When the job completes, [`Engine::complete`] turns the captures into
//! the [`JobResult`]'s [`Captured`](crate::Captured) outputs and delivers it to the event queue
//! or to the job's [`JobHandle`](crate::JobHandle).
//!
//! A job is complete when its process has exited **and** both pipes reached EOF, or when the
//! EOF grace after exit has passed with a pipe still held by a descendant. Exit and EOF are
//! tracked independently: a child may close its output and keep running, and a grandchild may
//! keep the output open after the child exits.

use crate::herd::{Config, Delivery, Shared};
use crate::job::Job;
use crate::output::{Capture, CaptureLimits, MemoryBudget, SpillDir};
use crate::result::{Event, JobId, JobResult, Outcome, ResourceUsage};
use crate::spawner::Spawners;
use crate::sys::{self, Kill, Process, SpawnFailure, Spawned, Stream, SysEvent, Token};
use crate::SpawnError;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A message to the loop.
pub(crate) enum Msg {
    Submit {
        id: JobId,
        job: Arc<Job>,
        delivery: Delivery,
    },
    Spawned {
        token: Token,
        result: Result<Spawned, SpawnFailure>,
    },
    Cancel(JobId),
    CancelAll,
    Shutdown,
}

/// A job waiting for a place to run.
struct Queued {
    id: JobId,
    job: Arc<Job>,
    delivery: Delivery,
    /// Spawns that failed for lack of resources while nothing else was running.
    idle_retries: u32,
    /// Spawns that failed for lack of resources in all: the retry timer's back-off.
    spawn_retries: u32,
    /// Counted out of the herd's waiting jobs ([`Builder::max_queued`]): it got a slot or
    /// an end. (A job put back after a failed spawn is not counted in again.)
    ///
    /// [`Builder::max_queued`]: crate::Builder::max_queued
    left_queue: bool,
}

impl Queued {
    /// An output event of this job: its bytes, with its id and tag.
    fn output_event(&self, stream: Stream, data: crate::Chunk) -> Event {
        Event::Output {
            id: self.id,
            stream,
            data,
            tag: self.job.tag.clone(),
        }
    }

    /// The job no longer waits for a slot: a submitter held back by `max_queued` may go on.
    fn leave_queue(&mut self, shared: &Shared) {
        if !std::mem::replace(&mut self.left_queue, true) {
            shared.job_left_queue();
        }
    }
}

struct Running {
    process: Process,
    start_time: SystemTime,
    started: Instant,
    /// [`Stdin::HeldOpen`](crate::Stdin::HeldOpen): dropped (closed) to tell the job to stop.
    held_stdin: Option<sys::HeldStdin>,
}

impl Running {
    /// Tells the job to stop: its held stdin reaches end of file, then its tree is signalled.
    fn stop(&mut self, kill: Kill) {
        self.held_stdin = None;
        self.process.signal_tree(kill);
    }
}

/// A job that holds a slot: being spawned, or running.
struct Entry {
    queued: Queued,
    running: Option<Running>,
    stdout: Capture,
    stderr: Capture,
    /// Output streams not yet at EOF, one bit per [`Stream`].
    open: u8,
    /// Streams handed to the poller to move into their spill files itself, one bit each.
    spilling_direct: u8,
    exited_at: Option<Instant>,
    timed_out: bool,
    cancelled: bool,
    leaked: bool,
    /// Stopped for the terminal (SIGTTIN/SIGTTOU) and killed for it.
    stopped_for_terminal: bool,
    grace_armed: bool,
    /// Streams not read for lack of room (see [`Engine::release_held`]), one bit each.
    held: u8,
    /// Streams delivered as events for lack of room (see [`Engine::hold_streams`]).
    let_through: u8,
}

struct Slot {
    gen: u32,
    entry: Option<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// The job's timeout: SIGTERM its tree.
    Timeout,
    /// The kill grace after SIGTERM: SIGKILL its tree.
    Kill,
    /// The EOF grace after exit: kill what holds the pipes, and complete.
    EofGrace,
    /// Retry spawning after resource exhaustion with nothing running.
    Retry,
    /// Look at the running jobs: stops by the terminal, orphans (see [`Engine::watch_running`]).
    StopCheck,
    /// Read held streams again where there is room (see [`Engine::release_held`]).
    HeldCheck,
}

/// How often running jobs are looked at for a stop by the terminal.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// After the EOF grace, how often a job with output still on its way is looked at again, and
/// for how long after its exit: output still coming 10 s later is a descendant writing, not
/// what the job left behind.
const TRANSIT_CHECK: Duration = Duration::from_millis(20);
const TRANSIT_LIMIT: Duration = Duration::from_secs(10);

/// How often held streams are looked at for room to read them again.
const HELD_CHECK: Duration = Duration::from_millis(20);

/// About what one read of a released stream adds to memory.
const READ_ROOM: usize = 64 * 1024;

type Timer = Reverse<(Instant, TimerKind, Token)>;

/// Closes the event stream when the loop thread ends.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        if let Ok(mut events) = self.0.events.lock() {
            events.closed = true;
        }
        self.0.announce_events();
    }
}

pub(crate) struct Engine {
    poller: sys::Poller,
    state: State,
}

/// Everything but the poller, so that poller callbacks can borrow it.
struct State {
    shared: Arc<Shared>,
    spawners: Spawners,
    config: Config,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_id: HashMap<JobId, Token>,
    queue: VecDeque<Queued>,
    /// Jobs holding a slot (spawning or running).
    active: usize,
    /// Spawn requests handed to the spawner threads and not yet answered.
    spawning: usize,
    /// A spawn ran out of resources: start nothing until a job finishes (or a retry timer).
    exhausted: bool,
    /// A [`TimerKind::Retry`] is pending.
    retry_armed: bool,
    /// Spawns attempted so far, for [`Config::inject_spawn_failure`](crate::herd::Config).
    spawns: u64,
    timers: BinaryHeap<Timer>,
    limits: CaptureLimits,
    spill: SpillDir,
    shutting_down: bool,
    /// Tokens whose completion must be checked after the current poll.
    check: Vec<Token>,
    exit_hints: Vec<Token>,
    /// Streams that began spilling, each with its spill file: after the poll, the poller is
    /// asked to move their bytes into the file itself.
    direct_spills: Vec<(Token, Stream, std::fs::File)>,
    /// Events were queued since the consumers were last woken. One wake-up per turn of the
    /// loop, not one per event: a job's Started, Output and Finished often come in one turn,
    /// and each needless wake-up of the consumer is a context switch.
    events_to_announce: std::cell::Cell<bool>,
    /// A [`TimerKind::StopCheck`] is pending.
    stop_check_armed: bool,
    /// A [`TimerKind::HeldCheck`] is pending.
    held_check_armed: bool,
    /// Streams that went to memory beyond the budget because the disk refused them: after
    /// the poll, held unless their job is the oldest running.
    to_hold: Vec<(Token, Stream)>,
    /// Streams held, in the order they were.
    held: Vec<(Token, Stream)>,
    /// Last: dropped after every job's process, so its guardian cleans up after all of them.
    containment: Arc<sys::Containment>,
}

impl Engine {
    pub(crate) fn new(
        poller: sys::Poller,
        shared: Arc<Shared>,
        config: Config,
        containment: Arc<sys::Containment>,
    ) -> Self {
        let limits = CaptureLimits {
            per_stream: config.memory_per_stream,
            budget: MemoryBudget::new(config.memory_budget),
        };
        let spill = SpillDir::new(config.spill_dir.clone(), containment.clone());
        let _ = limits.budget.notify.set(shared.clone());
        Engine {
            poller,
            state: State {
                spawners: Spawners::new(config.spawners, shared.clone(), containment.clone()),
                shared,
                config,
                slots: Vec::new(),
                free: Vec::new(),
                by_id: HashMap::new(),
                queue: VecDeque::new(),
                active: 0,
                spawning: 0,
                exhausted: false,
                retry_armed: false,
                spawns: 0,
                timers: BinaryHeap::new(),
                limits,
                spill,
                shutting_down: false,
                check: Vec::new(),
                exit_hints: Vec::new(),
                direct_spills: Vec::new(),
                events_to_announce: std::cell::Cell::new(false),
                stop_check_armed: false,
                held_check_armed: false,
                to_hold: Vec::new(),
                held: Vec::new(),
                containment,
            },
        }
    }

    /// Where the first failure to spill output is kept (see [`Herd::spill_problem`]).
    ///
    /// [`Herd::spill_problem`]: crate::Herd::spill_problem
    pub(crate) fn spill_problem(&self) -> Arc<Mutex<Option<String>>> {
        self.state.spill.problem.clone()
    }

    pub(crate) fn run(mut self) {
        // However the loop ends (a panic included), the event stream closes (and, as the state
        // drops, the spawner threads stop), so no caller waits for ever.
        let _closer = CloseOnExit(self.state.shared.clone());
        let mut inbox = Vec::new();
        loop {
            self.state.shared.take_inbox(&mut inbox);
            for msg in inbox.drain(..) {
                self.handle(msg);
            }
            self.fire_timers();
            if self.state.shared.room_changed.swap(false, Ordering::AcqRel) {
                self.release_held(Instant::now());
            }
            let more_to_start = self.start_queued();
            let s = &self.state;
            if s.events_to_announce.take() {
                s.shared.announce_events();
            }
            if s.shutting_down && s.active == 0 && s.queue.is_empty() {
                break;
            }
            let timeout = if more_to_start {
                // Read what has arrived, then come back to start the rest.
                Some(Duration::ZERO)
            } else {
                s.timers
                    .peek()
                    .map(|Reverse((at, _, _))| at.saturating_duration_since(Instant::now()))
            };
            let budget = self.state.read_budget();
            let state = &mut self.state;
            if let Err(e) = self
                .poller
                .poll(timeout, budget, &mut |ev| state.on_sys_event(ev))
            {
                // epoll_wait does not fail on a valid instance; if it does, do not spin.
                eprintln!("herd: event loop: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.after_poll();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Submit { id, job, delivery } => {
                let queued = Queued {
                    id,
                    job,
                    delivery,
                    idle_retries: 0,
                    spawn_retries: 0,
                    left_queue: false,
                };
                if self.state.shutting_down {
                    self.state.give_up(queued, Outcome::Cancelled, true);
                } else {
                    self.state.queue.push_back(queued);
                }
            }
            Msg::Spawned { token, result } => self.on_spawned(token, result),
            Msg::Cancel(id) => self.cancel(id),
            Msg::CancelAll => self.cancel_all(),
            Msg::Shutdown => {
                self.state.shutting_down = true;
                self.cancel_all();
            }
        }
    }

    fn cancel(&mut self, id: JobId) {
        let s = &mut self.state;
        if let Some(pos) = s.queue.iter().position(|q| q.id == id) {
            let queued = s.queue.remove(pos).unwrap();
            s.give_up(queued, Outcome::Cancelled, true);
        } else if let Some(&token) = s.by_id.get(&id) {
            s.cancel_running(token);
        }
    }

    fn cancel_all(&mut self) {
        let s = &mut self.state;
        for queued in std::mem::take(&mut s.queue) {
            s.give_up(queued, Outcome::Cancelled, true);
        }
        let tokens: Vec<Token> = s.by_id.values().copied().collect();
        for token in tokens {
            s.cancel_running(token);
        }
    }

    fn on_spawned(&mut self, token: Token, result: Result<Spawned, SpawnFailure>) {
        let s = &mut self.state;
        s.spawning -= 1;
        match result {
            Ok(spawned) => {
                let Spawned {
                    process,
                    pipes,
                    start_time,
                    started,
                    held_stdin,
                } = spawned;
                if let Err(e) = self.poller.register(token, &process, pipes) {
                    // Dropping `process` kills and reaps it: no child is ever left behind.
                    drop(process);
                    let queued = s.release(token).queued;
                    s.on_exhausted(queued, e);
                    return;
                }
                let pid = process.id();
                let started_events = s.config.started_events;
                let entry = s.entry_mut(token).expect("spawning job has a slot");
                entry.running = Some(Running {
                    process,
                    start_time,
                    started,
                    held_stdin,
                });
                let id = entry.queued.id;
                let timeout = entry.queued.job.timeout;
                let cancelled = entry.cancelled;
                if matches!(entry.queued.delivery, Delivery::Events) && started_events {
                    let tag = entry.queued.job.tag.clone();
                    s.push_event(Event::Started { id, pid, tag }, false);
                }
                s.arm_check(TimerKind::StopCheck, Instant::now());
                if cancelled {
                    s.cancel_running(token);
                } else if let Some(t) = timeout {
                    s.timers
                        .push(Reverse((started + t, TimerKind::Timeout, token)));
                }
            }
            Err(SpawnFailure::Exhausted(e)) => {
                let queued = s.release(token).queued;
                s.on_exhausted(queued, e);
            }
            Err(SpawnFailure::Job(e)) => {
                let entry = s.release(token);
                s.give_up(entry.queued, Outcome::SpawnFailed(e), false);
            }
        }
    }

    /// Starts queued jobs while there is room: here, when the spawn does not block (Linux's
    /// `clone3`), else through the spawner threads. Returns whether more could start now but
    /// were left for the next turn, so that output keeps being read during a burst of starts.
    fn start_queued(&mut self) -> bool {
        // Spawning here costs the loop some tens of microseconds each.
        const STARTS_PER_TURN: usize = 32;
        // A few requests in flight per spawner thread keep them busy without handing them a
        // backlog that a shortage of descriptors would only bounce back.
        let max_spawning = self.state.config.spawners * 4;
        let mut started_here = 0;
        loop {
            let s = &mut self.state;
            if s.exhausted
                || s.shutting_down
                || s.active >= s.config.max_running
                || s.spawning >= max_spawning
                || s.queue.is_empty()
            {
                return false;
            }
            let inline = sys::spawns_without_blocking(&s.queue[0].job);
            if inline && started_here == STARTS_PER_TURN {
                return true;
            }
            let queued = s.queue.pop_front().expect("checked above");
            let job = queued.job.clone();
            let token = s.occupy(queued);
            s.spawning += 1;
            s.spawns += 1;
            if s.config.inject_spawn_failure == Some(s.spawns) {
                let e = std::io::Error::other("injected passing spawn failure");
                self.on_spawned(token, Err(SpawnFailure::Exhausted(e)));
                continue;
            }
            let job = if inline {
                started_here += 1;
                job
            } else {
                match s.spawners.push(token, job) {
                    Ok(()) => continue,
                    // No spawner thread could be started: spawn here after all.
                    Err(job) => job,
                }
            };
            let result = sys::spawn(&job, &self.state.containment);
            self.on_spawned(token, result);
        }
    }

    /// A job reading (or, with `stty tostop`, writing) the terminal is stopped by the kernel
    /// (SIGTTIN, SIGTTOU): it runs in a process group of its own, not the terminal's
    /// foreground one, and would wait for ever with nothing to say why (GNU parallel hangs
    /// so). Once a second while jobs run, each job's process is asked whether it is stopped
    /// (`waitid` with `WSTOPPED|WNOWAIT`, which reaps nothing), and the backend looks for a
    /// descendant stopped so; such a job is killed and its result says why. The same tick
    /// sweeps for orphans where the containment adopts them.
    fn watch_running(&mut self, now: Instant) {
        let s = &mut self.state;
        s.stop_check_armed = false;
        let groups: std::collections::HashSet<u32> = s
            .slots
            .iter()
            .filter_map(|slot| Some(slot.entry.as_ref()?.running.as_ref()?.process.id()))
            .collect();
        let stopped_inside = sys::groups_stopped_at_terminal(&groups);
        for slot in &mut s.slots {
            let Some(entry) = slot.entry.as_mut() else {
                continue;
            };
            let Some(run) = &entry.running else { continue };
            if !entry.stopped_for_terminal
                && (stopped_inside.contains(&run.process.id())
                    || run.process.stopped_for_terminal())
            {
                entry.stopped_for_terminal = true;
                run.process.signal_tree(Kill::Kill);
            }
        }
        s.containment.sweep_orphans();
        if !groups.is_empty() {
            s.arm_check(TimerKind::StopCheck, now);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, kind, token))) = self.state.timers.peek() {
            if at > now {
                break;
            }
            self.state.timers.pop();
            if kind == TimerKind::Retry {
                self.state.exhausted = false;
                self.state.retry_armed = false;
                continue;
            }
            if kind == TimerKind::StopCheck {
                self.watch_running(now);
                continue;
            }
            if kind == TimerKind::HeldCheck {
                self.state.held_check_armed = false;
                self.release_held(now);
                continue;
            }
            let kill_grace = self.state.config.kill_grace;
            let Some(entry) = self.state.entry_mut(token) else {
                continue;
            };
            let Some(running) = &mut entry.running else {
                continue;
            };
            match kind {
                TimerKind::Timeout => {
                    entry.timed_out = true;
                    running.stop(Kill::Term);
                    self.state
                        .timers
                        .push(Reverse((now + kill_grace, TimerKind::Kill, token)));
                }
                TimerKind::Kill => running.process.signal_tree(Kill::Kill),
                TimerKind::EofGrace if entry.held != 0 => {
                    // Unread output is no sign of a descendant holding the pipe: wait.
                    self.state
                        .timers
                        .push(Reverse((now + HELD_CHECK, TimerKind::EofGrace, token)));
                }
                TimerKind::EofGrace
                    if self.poller.output_in_transit(token)
                        && entry.exited_at.is_some_and(|at| now < at + TRANSIT_LIMIT) =>
                {
                    // The grace is for descendants that keep a pipe open, not for bytes the
                    // job wrote before it exited that herd has not taken yet (a loaded
                    // machine, a slow hop through the Windows thread pool): take them first.
                    self.state.timers.push(Reverse((
                        now + TRANSIT_CHECK,
                        TimerKind::EofGrace,
                        token,
                    )));
                }
                TimerKind::EofGrace => {
                    entry.leaked = true;
                    self.complete(token);
                }
                TimerKind::Retry | TimerKind::StopCheck | TimerKind::HeldCheck => {
                    unreachable!()
                }
            }
        }
    }

    /// Memory and disk both full: stop reading a stream (its child blocks on its full pipe)
    /// until there is room, except for the oldest running job's, so that one job always
    /// progresses, ends and, once its output is consumed, frees memory. While a result
    /// waits in the event queue the consumer is behind: it will free memory as it catches
    /// up, and the oldest job waits too (else, one oldest after another, every job would run
    /// to its end in memory while the consumer is stuck).
    fn hold_streams(&mut self) {
        let s = &mut self.state;
        if s.to_hold.is_empty() {
            return;
        }
        let oldest = s.exempt_from_holding();
        for (token, stream) in std::mem::take(&mut s.to_hold) {
            if Some(token) == oldest {
                s.let_through(token, stream);
                continue;
            }
            let Some(entry) = s.entry_mut(token) else {
                continue;
            };
            let bit = 1 << stream as u8;
            if entry.held & bit != 0 {
                continue;
            }
            entry.held |= bit;
            self.poller.hold(token, stream);
            s.shared.room_wanted.store(true, Ordering::Relaxed);
            s.arm_check(TimerKind::HeldCheck, Instant::now());
            s.held.push((token, stream));
        }
    }

    /// Reads held streams again, as many as the memory budget has room for a read of each
    /// (output consumed and dropped gives room back), oldest jobs first so that they finish
    /// and free their share; and always the oldest running job's.
    fn release_held(&mut self, now: Instant) {
        let s = &mut self.state;
        let oldest = s.exempt_from_holding();
        let mut room = s.limits.budget.room();
        let mut held: Vec<(u64, Token, Stream)> = std::mem::take(&mut s.held)
            .into_iter()
            .filter_map(|(token, stream)| Some((s.entry_mut(token)?.queued.id.0, token, stream)))
            .collect();
        held.sort_unstable_by_key(|&(id, _, _)| id);
        held.retain(|&(_, token, stream)| {
            if Some(token) != oldest && room < READ_ROOM {
                return true;
            }
            room = room.saturating_sub(READ_ROOM);
            if let Some(entry) = s.entry_mut(token) {
                entry.held &= !(1 << stream as u8);
            }
            self.poller.release(token, stream);
            false
        });
        s.held = held.into_iter().map(|(_, t, st)| (t, st)).collect();
        s.shared
            .room_wanted
            .store(!s.held.is_empty(), Ordering::Relaxed);
        if !s.held.is_empty() {
            s.arm_check(TimerKind::HeldCheck, now);
        }
    }

    fn after_poll(&mut self) {
        for (token, stream, file) in self.state.direct_spills.drain(..) {
            self.poller.spill_into(token, stream, file);
        }
        self.hold_streams();
        let hints = std::mem::take(&mut self.state.exit_hints);
        for token in &hints {
            if let Some(entry) = self.state.entry_mut(*token) {
                if entry.exited_at.is_none()
                    && entry
                        .running
                        .as_ref()
                        .is_some_and(|r| r.process.has_exited())
                {
                    entry.exited_at = Some(Instant::now());
                    self.state.check.push(*token);
                }
            }
        }
        self.state.exit_hints = hints;
        self.state.exit_hints.clear();
        let check = std::mem::take(&mut self.state.check);
        for &token in &check {
            let eof_grace = self.state.config.eof_grace;
            let Some(entry) = self.state.entry_mut(token) else {
                continue;
            };
            let Some(running) = &entry.running else {
                continue;
            };
            if entry.open == 0 && entry.exited_at.is_none() && running.process.has_exited() {
                // Both pipes closed: the child has most likely exited; no need to wait for
                // the pidfd's event.
                entry.exited_at = Some(Instant::now());
            }
            match (entry.exited_at, entry.open) {
                (Some(_), 0) => self.complete(token),
                (Some(at), _) if !entry.grace_armed => {
                    entry.grace_armed = true;
                    self.state
                        .timers
                        .push(Reverse((at + eof_grace, TimerKind::EofGrace, token)));
                }
                _ => {}
            }
        }
        self.state.check = check;
        self.state.check.clear();
    }

    /// Finishes a job: kills what is left of its tree, reaps it, closes its pipes, and
    /// delivers its result.
    fn complete(&mut self, token: Token) {
        let s = &mut self.state;
        let mut entry = s.release(token);
        self.poller.deregister(token);
        let running = entry.running.take().expect("completing a running job");
        if s.config.kill_descendants || entry.leaked {
            running.process.signal_tree(Kill::Kill);
        }
        let end = entry.exited_at.unwrap_or_else(Instant::now);
        let pid = running.process.id();
        let info = running.process.reap();
        if let Some(e) = info.spawn_error {
            // The child never reached its program: reported as if the spawn had failed.
            let result = JobResult::not_run(
                entry.queued.id,
                entry.queued.job.tag.clone(),
                Outcome::SpawnFailed(e),
                entry.cancelled,
            );
            s.deliver(entry.queued.delivery, result);
            return;
        }
        let outcome = match (info.code, info.signal) {
            (Some(c), _) => Outcome::Exited(c),
            (None, Some(sig)) => Outcome::Signaled(sig),
            (None, None) => Outcome::Unknown,
        };
        let result = JobResult {
            id: entry.queued.id,
            tag: entry.queued.job.tag.clone(),
            pid: Some(pid),
            outcome,
            timed_out: entry.timed_out,
            cancelled: entry.cancelled,
            leaked: entry.leaked,
            stopped_for_terminal: entry.stopped_for_terminal,
            start_time: running.start_time,
            duration: end.saturating_duration_since(running.started),
            usage: ResourceUsage {
                user_time: info.user_time,
                system_time: info.system_time,
                max_rss_kb: info.max_rss_kb,
            },
            stdout: std::mem::take(&mut entry.stdout).finish(&s.limits, &s.spill),
            stderr: std::mem::take(&mut entry.stderr).finish(&s.limits, &s.spill),
        };
        s.deliver(entry.queued.delivery, result);
    }
}

impl State {
    /// The oldest running job's stream has no room in memory or on disk: with
    /// `stream_when_full`, it goes on as output events (what it collected first), so that
    /// memory stays within the share; else it goes on in memory.
    fn let_through(&mut self, token: Token, stream: Stream) {
        let events = self.config.stream_when_full;
        let Some(entry) = self.entry_mut(token) else {
            return;
        };
        let bit = 1 << stream as u8;
        if !events || entry.let_through & bit != 0 {
            return;
        }
        if !matches!(entry.queued.delivery, Delivery::Events) {
            return;
        }
        let capture = match stream {
            Stream::Stdout => &mut entry.stdout,
            Stream::Stderr => &mut entry.stderr,
        };
        let Some(mut held) = capture.let_through() else {
            return;
        };
        entry.let_through |= bit;
        // A streamed job delivered these bytes as events already.
        if !entry.queued.job.stream_output && !held.is_empty() {
            let (id, tag) = (entry.queued.id, entry.queued.job.tag.clone());
            let data = self.shared.chunks.chunk(&mut held);
            let data = data.charged(&self.limits.budget);
            self.push_event(
                Event::Output {
                    id,
                    stream,
                    data,
                    tag,
                },
                false,
            );
        }
    }

    /// The job whose streams are read even without room: the oldest running one, unless a
    /// result waits for the consumer (see [`Engine::hold_streams`]).
    fn exempt_from_holding(&self) -> Option<Token> {
        if self.shared.events.lock().unwrap().finished > 0 {
            return None;
        }
        self.oldest_running()
    }

    /// The running job submitted first.
    fn oldest_running(&self) -> Option<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let entry = slot.entry.as_ref()?;
                entry.running.as_ref()?;
                let token = Token {
                    slot: i as u32,
                    gen: slot.gen,
                };
                Some((entry.queued.id.0, token))
            })
            .min()
            .map(|(_, token)| token)
    }

    /// Schedules the next periodic check of `kind` ([`TimerKind::StopCheck`] or
    /// [`TimerKind::HeldCheck`]), unless one is pending: one timer of each kind at a time,
    /// however often it is asked for.
    fn arm_check(&mut self, kind: TimerKind, now: Instant) {
        let (armed, every) = match kind {
            TimerKind::StopCheck => (&mut self.stop_check_armed, STOP_CHECK),
            TimerKind::HeldCheck => (&mut self.held_check_armed, HELD_CHECK),
            _ => unreachable!("not a periodic check"),
        };
        if !*armed {
            *armed = true;
            let token = Token { slot: 0, gen: 0 };
            self.timers.push(Reverse((now + every, kind, token)));
        }
    }

    fn entry_mut(&mut self, token: Token) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(token.slot as usize)?;
        if slot.gen != token.gen {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Takes a slot for a job about to be spawned.
    fn occupy(&mut self, mut queued: Queued) -> Token {
        queued.leave_queue(&self.shared);
        let max_output = queued.job.max_output;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let token = Token {
            slot: index,
            gen: slot.gen,
        };
        self.by_id.insert(queued.id, token);
        slot.entry = Some(Entry {
            queued,
            running: None,
            stdout: Capture::new(max_output),
            stderr: Capture::new(max_output),
            open: 0b11,
            exited_at: None,
            timed_out: false,
            cancelled: false,
            leaked: false,
            stopped_for_terminal: false,
            grace_armed: false,
            held: 0,
            let_through: 0,
            spilling_direct: 0,
        });
        self.active += 1;
        token
    }

    /// Frees a job's slot and returns its entry.
    fn release(&mut self, token: Token) -> Entry {
        let slot = &mut self.slots[token.slot as usize];
        debug_assert_eq!(slot.gen, token.gen);
        let entry = slot.entry.take().expect("releasing an empty slot");
        slot.gen = slot.gen.wrapping_add(1) & 0x3fff_ffff;
        self.free.push(token.slot);
        self.by_id.remove(&entry.queued.id);
        self.active -= 1;
        // A slot came free: resources may have come back too.
        self.exhausted = false;
        entry
    }

    /// A spawn failed for lack of descriptors, processes or memory, or for a passing reason
    /// (Wine's `ERROR_INTERNAL_ERROR` under load): put the job back and try again when a
    /// running job finishes or on a timer, whichever comes first. The timer backs off (10 ms,
    /// doubling to 1.28 s), so a real shortage is not retried busily. The timer is always
    /// armed: waiting only for a job to finish once stalled a run for a whole sibling's
    /// lifetime (600 s) after one passing failure. With nothing running, the job fails with
    /// the system's error after 8 tries.
    fn on_exhausted(&mut self, mut queued: Queued, error: std::io::Error) {
        queued.spawn_retries += 1;
        let delay = Duration::from_millis(10 << queued.spawn_retries.min(7));
        if self.active > 0 && !self.shutting_down {
            self.exhausted = true;
            self.queue.push_front(queued);
            self.arm_retry(delay);
            return;
        }
        queued.idle_retries += 1;
        if queued.idle_retries > 8 || self.shutting_down {
            let program = queued.job.program.to_string_lossy().into_owned();
            self.give_up(
                queued,
                Outcome::SpawnFailed(SpawnError::Io {
                    program,
                    source: error,
                }),
                false,
            );
            return;
        }
        self.exhausted = true;
        self.queue.push_front(queued);
        self.arm_retry(delay);
    }

    /// Starts trying queued jobs again after `delay`, unless a retry is already due.
    fn arm_retry(&mut self, delay: Duration) {
        if self.retry_armed {
            return;
        }
        self.retry_armed = true;
        self.timers.push(Reverse((
            Instant::now() + delay,
            TimerKind::Retry,
            Token { slot: 0, gen: 0 },
        )));
    }

    fn cancel_running(&mut self, token: Token) {
        let kill_grace = self.config.kill_grace;
        let Some(entry) = self.entry_mut(token) else {
            return;
        };
        entry.cancelled = true;
        if let Some(running) = &mut entry.running {
            running.stop(Kill::Term);
            self.timers.push(Reverse((
                Instant::now() + kill_grace,
                TimerKind::Kill,
                token,
            )));
        }
    }

    /// Delivers a result for a job that never ran.
    fn give_up(&mut self, mut queued: Queued, outcome: Outcome, cancelled: bool) {
        queued.leave_queue(&self.shared);
        let result = JobResult::not_run(queued.id, queued.job.tag.clone(), outcome, cancelled);
        self.deliver(queued.delivery, result);
    }

    fn deliver(&mut self, delivery: Delivery, result: JobResult) {
        match delivery {
            Delivery::Events => self.push_event(Event::Finished(Box::new(result)), true),
            Delivery::Handle(slot) => slot.complete(result),
        }
    }

    fn push_event(&self, event: Event, finishes_job: bool) {
        let mut events = self.shared.events.lock().unwrap();
        if let Event::Output { data, .. } = &event {
            events.bytes += data.len();
        }
        events.queue.push_back(event);
        if finishes_job {
            events.outstanding -= 1;
            events.finished += 1;
        }
        drop(events);
        // The consumers are woken before the loop next waits (see `events_to_announce`).
        self.events_to_announce.set(true);
    }

    /// How many bytes the poller may read now: none while the event queue is full.
    fn read_budget(&self) -> usize {
        let events = self.shared.events.lock().unwrap();
        if events.bytes >= self.shared.event_buffer {
            self.shared.paused.store(true, Ordering::Release);
            0
        } else {
            usize::MAX
        }
    }

    fn on_sys_event(&mut self, ev: SysEvent<'_>) {
        match ev {
            SysEvent::Output {
                token,
                stream,
                data,
            } => {
                let Some(slot) = self.slots.get_mut(token.slot as usize) else {
                    return;
                };
                let Some(entry) = slot.entry.as_mut().filter(|_| slot.gen == token.gen) else {
                    return;
                };
                let job = &entry.queued.job;
                let capture = match stream {
                    Stream::Stdout => &mut entry.stdout,
                    Stream::Stderr => &mut entry.stderr,
                };
                let streamed =
                    job.stream_output && matches!(entry.queued.delivery, Delivery::Events);
                let bit = 1 << stream as u8;
                if entry.let_through & bit != 0 {
                    // Counted against the budget until the consumer drops it, so that the
                    // other jobs wait while the consumer catches up.
                    capture.passed(data.len());
                    let data = self.shared.chunks.chunk(data).charged(&self.limits.budget);
                    let event = entry.queued.output_event(stream, data);
                    self.push_event(event, false);
                    return;
                }
                if capture.push(data, job.collect_output, &self.limits, &self.spill) {
                    self.to_hold.push((token, stream));
                }
                if !streamed && entry.spilling_direct & bit == 0 {
                    // Spilling, and nobody wants the bytes before the job ends: the poller
                    // may move the rest from the pipe to the file without reading it.
                    if let Some(file) = capture.direct_spill_file() {
                        entry.spilling_direct |= bit;
                        self.direct_spills.push((token, stream, file));
                    }
                }
                if streamed {
                    let event = entry
                        .queued
                        .output_event(stream, self.shared.chunks.chunk(data));
                    self.push_event(event, false);
                }
            }
            SysEvent::Spilled {
                token,
                stream,
                bytes,
            } => {
                if let Some(entry) = self.entry_mut(token) {
                    match stream {
                        Stream::Stdout => entry.stdout.spilled(bytes),
                        Stream::Stderr => entry.stderr.spilled(bytes),
                    }
                }
            }
            SysEvent::Eof { token, stream } => {
                if let Some(entry) = self.entry_mut(token) {
                    entry.open &= !(1 << stream as u8);
                    if entry.open == 0 {
                        self.check.push(token);
                    }
                }
            }
            SysEvent::Exited { token } => self.exit_hints.push(token),
        }
    }
}
