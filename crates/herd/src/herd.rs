//! The public face of the engine: [`Herd`], its [`Builder`], and [`JobHandle`].

use crate::engine::{Engine, Msg};
use crate::result::{Event, JobId, JobResult};
use crate::sys;
use crate::{Error, Job};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings of a herd. Every field has a sensible default; see [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub max_running: usize,
    pub spawners: usize,
    pub eof_grace: Duration,
    pub kill_grace: Duration,
    pub memory_per_stream: usize,
    pub memory_budget: usize,
    pub event_buffer: usize,
    pub spill_dir: Option<PathBuf>,
    pub kill_descendants: bool,
    pub use_cgroups: bool,
    pub adopt_orphans: bool,
    pub stream_when_full: bool,
    pub started_events: bool,
    pub poller: sys::PollerOptions,
    /// For tests: the spawn with this number (from 1) fails as for a passing shortage.
    pub inject_spawn_failure: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_running: std::thread::available_parallelism().map_or(2, |n| n.get()),
            spawners: 2,
            eof_grace: Duration::from_secs(1),
            kill_grace: Duration::from_secs(1),
            memory_per_stream: 1 << 20,
            memory_budget: 64 << 20,
            event_buffer: 16 << 20,
            spill_dir: None,
            kill_descendants: true,
            use_cgroups: true,
            adopt_orphans: false,
            stream_when_full: false,
            started_events: true,
            poller: sys::PollerOptions::default(),
            inject_spawn_failure: None,
        }
    }
}

/// Configures and starts a [`Herd`].
///
/// ```
/// use std::time::Duration;
/// let herd = herd::Herd::builder()
///     .max_running(500)
///     .eof_grace(Duration::from_millis(500))
///     .build()?;
/// # Ok::<(), herd::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Config,
}

impl Builder {
    /// How many jobs may run at once; the rest wait in submission order. Default: the number
    /// of CPUs. Values below 1 count as 1.
    pub fn max_running(mut self, n: usize) -> Self {
        self.config.max_running = n.max(1);
        self
    }

    /// How many threads create the processes whose creation blocks (default 2): all of them on
    /// Windows, where `CreateProcessW` takes milliseconds; on Linux only jobs whose stdin is a
    /// file, or every job where the kernel refuses `clone3` (then `posix_spawn` waits for each
    /// exec). The threads start with the first such job. More help only up to the number of
    /// cores.
    pub fn spawner_threads(mut self, n: usize) -> Self {
        self.config.spawners = n.clamp(1, 64);
        self
    }

    /// How long after a job's process exits herd keeps reading pipes that some descendant
    /// still holds open (default 1 s). Then the descendants are killed, the job completes, and
    /// its result says [`leaked`](crate::JobResult::leaked).
    pub fn eof_grace(mut self, d: Duration) -> Self {
        self.config.eof_grace = d;
        self
    }

    /// How long a timed-out or cancelled job's tree has between the polite signal (SIGTERM)
    /// and the forceful one (SIGKILL). Default 1 s.
    pub fn kill_grace(mut self, d: Duration) -> Self {
        self.config.kill_grace = d;
        self
    }

    /// In-memory bytes per stream per job before that stream spills to a temporary file
    /// (default 1 MiB).
    pub fn memory_per_stream(mut self, bytes: usize) -> Self {
        self.config.memory_per_stream = bytes;
        self
    }

    /// In-memory bytes of collected output across all jobs before further output spills to
    /// temporary files (default 64 MiB). Output still held in undropped results counts. If
    /// the disk refuses output too (full, read-only), a job's stream that does not fit is not
    /// read until dropped results make room (the job waits on its full pipe); the oldest
    /// running job is read regardless while every result has been taken, so jobs always end.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.config.memory_budget = bytes;
        self
    }

    /// Bytes of streamed output that may wait in the event queue (default 16 MiB). When the
    /// consumer falls behind, herd stops reading pipes until it catches up; children then
    /// block in `write`. Nothing is lost.
    pub fn event_buffer(mut self, bytes: usize) -> Self {
        self.config.event_buffer = bytes.max(1);
        self
    }

    /// Where the private spill directory is created (default: the system's temporary
    /// directory, `$TMPDIR`).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.spill_dir = Some(dir.into());
        self
    }

    /// Whether a finished job's remaining process group is killed (default true), so no
    /// descendant outlives its job. Turn off to let jobs leave daemons behind.
    pub fn kill_descendants(mut self, yes: bool) -> Self {
        self.config.kill_descendants = yes;
        self
    }

    /// Whether to contain jobs in cgroups where this process may create them (default true).
    /// Turn off to have process groups only, as on a machine without cgroup v2; see
    /// [`Containment`].
    pub fn use_cgroups(mut self, yes: bool) -> Self {
        self.config.use_cgroups = yes;
        self
    }

    /// Linux, where jobs are held by process groups only ([`Containment::ProcessGroup`]):
    /// make this process a child subreaper, so that a descendant that leaves its job's group
    /// (`setsid`, a daemon) comes back to this process when its parent dies, and is killed
    /// (default false). It is killed within two seconds of coming back, whether or not its
    /// job still runs (where it came from is no longer known), and at the latest when the
    /// herd ends. Turn on only in a program whose other children stay in its process group:
    /// a child that leaves it (other than herd's own) would be taken for an orphan too.
    /// Ignored with cgroups (which reach such descendants anyway) and on Windows.
    pub fn adopt_orphans(mut self, yes: bool) -> Self {
        self.config.adopt_orphans = yes;
        self
    }

    /// When neither memory nor disk has room for more output, the one job that is still read
    /// (see [`memory_budget`](Self::memory_budget)) delivers its stream as
    /// [`Event::Output`] events instead of keeping it in memory beyond the share (default
    /// false): first what it had collected, then each chunk as it comes. Only jobs given to
    /// [`submit`](Herd::submit) have events; the result's [`Output`](crate::Output) then says
    /// how much came so ([`Output::delivered_as_events`](crate::Output::delivered_as_events)).
    /// For a consumer that prints as it goes, this keeps memory within the share whatever
    /// one job prints.
    pub fn stream_when_full(mut self, yes: bool) -> Self {
        self.config.stream_when_full = yes;
        self
    }

    /// Whether submitted jobs produce [`Event::Started`] (default true). A consumer that has no
    /// use for it saves a wake-up per job: the start of a job rarely comes in the same turn
    /// of the event loop as anything else.
    pub fn started_events(mut self, yes: bool) -> Self {
        self.config.started_events = yes;
        self
    }

    /// Windows: deliver I/O completions through the system thread pool (`TP_IO`, as in the
    /// design herd comes from) instead of herd's own completion port (the default). Either way
    /// no thread waits on any one child. Ignored elsewhere.
    pub fn windows_thread_pool(mut self, yes: bool) -> Self {
        self.config.poller.windows_thread_pool = yes;
        self
    }

    /// For tests of the spawn retry: the `n`th spawn (from 1) fails once as if the system had
    /// been short of resources for a moment.
    #[doc(hidden)]
    pub fn inject_spawn_failure(mut self, n: u64) -> Self {
        self.config.inject_spawn_failure = Some(n);
        self
    }

    /// For tests of the back-off path: the first `n` pipe reads fail as "too many outstanding
    /// reads" before they are issued. Windows only; ignored elsewhere.
    #[doc(hidden)]
    pub fn inject_read_failures(mut self, n: u32) -> Self {
        self.config.poller.inject_read_failures = n;
        self
    }

    /// Starts the event loop.
    ///
    /// On Linux this also raises the soft `RLIMIT_NOFILE` to the hard limit, once per
    /// process; children inherit the raised limit. And if the process inherited SIGCHLD set
    /// to "ignore" (which makes the kernel discard every child's exit status), it is put back
    /// to its default; a handler of your own is left alone.
    pub fn build(self) -> Result<Herd, Error> {
        Herd::start(self.config)
    }
}

/// The queue the loop fills and [`Herd::next_event`] drains.
#[derive(Default)]
pub(crate) struct EventQueue {
    pub queue: VecDeque<Event>,
    /// Bytes of `Output` events waiting.
    pub bytes: usize,
    /// Jobs submitted with `submit` whose `Finished` event is not queued yet.
    pub outstanding: usize,
    /// `Finished` events queued and not yet taken: the consumer is behind.
    pub finished: usize,
    /// The loop is gone (shut down, or died): no more events will come.
    pub closed: bool,
    /// Live [`KeepOpen`] guards: while there are any, an empty stream waits instead of ending.
    pub holds: usize,
}

/// State shared by the API, the loop and the spawners.
pub(crate) struct Shared {
    inbox: Mutex<Vec<Msg>>,
    waker: Arc<sys::Waker>,
    pub events: Mutex<EventQueue>,
    pub events_cond: Condvar,
    /// The loop stopped reading pipes because the event queue is full.
    pub paused: AtomicBool,
    pub event_buffer: usize,
    /// Buffers for output events, reused as the consumer drops them.
    pub chunks: Arc<crate::chunk::ChunkPool>,
    /// The loop holds streams for lack of room (see `Engine::hold_streams`).
    pub room_wanted: AtomicBool,
    /// Output was dropped, or a result taken, since the loop last looked for room.
    pub room_changed: AtomicBool,
}

impl Shared {
    /// Sends a message to the loop and wakes it if it may be asleep.
    pub(crate) fn send(&self, msg: Msg) {
        let mut inbox = self.inbox.lock().unwrap();
        let was_empty = inbox.is_empty();
        inbox.push(msg);
        drop(inbox);
        // The loop takes the whole inbox at once, so only the first message needs a wake-up.
        if was_empty {
            self.waker.wake();
        }
    }

    pub(crate) fn take_inbox(&self, into: &mut Vec<Msg>) {
        std::mem::swap(&mut *self.inbox.lock().unwrap(), into);
    }

    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// Collected output was dropped or a result taken: a loop holding streams should look.
    pub(crate) fn room_may_have_changed(&self) {
        if self.room_wanted.load(Ordering::Relaxed) {
            self.room_changed.store(true, Ordering::Release);
            self.waker.wake();
        }
    }
}

/// Where a finished job's result goes.
pub(crate) enum Delivery {
    /// To the event queue, as [`Event::Finished`].
    Events,
    /// To a [`JobHandle`].
    Handle(HandleSender),
}

/// The engine's end of a [`JobHandle`]. If it is dropped without delivering (the loop thread
/// died), the handle gets a cancelled result instead of waiting for ever.
pub(crate) struct HandleSender {
    id: JobId,
    slot: Option<Arc<HandleSlot>>,
}

impl HandleSender {
    pub(crate) fn complete(mut self, result: JobResult) {
        if let Some(slot) = self.slot.take() {
            slot.complete(result);
        }
    }
}

impl Drop for HandleSender {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.complete(JobResult::not_run(self.id, crate::Outcome::Cancelled, true));
        }
    }
}

#[derive(Default)]
struct HandleState {
    result: Option<JobResult>,
    waker: Option<std::task::Waker>,
}

/// Where the loop puts a result for a [`JobHandle`].
#[derive(Default)]
pub(crate) struct HandleSlot {
    state: Mutex<HandleState>,
    cond: Condvar,
}

impl HandleSlot {
    pub(crate) fn complete(&self, result: JobResult) {
        let mut state = self.state.lock().unwrap();
        state.result = Some(result);
        let waker = state.waker.take();
        drop(state);
        self.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A job started with [`Herd::spawn`]: wait for it, or `.await` it on any executor.
///
/// ```
/// # fn main() -> Result<(), herd::Error> {
/// let herd = herd::Herd::new()?;
/// let handle = herd.spawn(herd::Job::new("echo").arg("hi"))?;
/// let result = handle.wait();
/// assert_eq!(result.stdout.as_bytes(), Some(&b"hi\n"[..]));
/// # Ok(()) }
/// ```
pub struct JobHandle {
    id: JobId,
    slot: Arc<HandleSlot>,
}

impl JobHandle {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Blocks until the job has finished.
    pub fn wait(self) -> JobResult {
        let mut state = self.slot.state.lock().unwrap();
        loop {
            if let Some(r) = state.result.take() {
                return r;
            }
            state = self.slot.cond.wait(state).unwrap();
        }
    }
}

impl Future for JobHandle {
    type Output = JobResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobResult> {
        let mut state = self.slot.state.lock().unwrap();
        match state.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A running engine: submit jobs, then collect their results or follow their events.
///
/// One event-loop thread owns every pipe and every exit notification, and on Linux also
/// creates the processes; a small fixed pool of spawner threads takes the spawns that block
/// (all of them on Windows). The thread count is the same for 10 or 10,000 running jobs.
///
/// Dropping a `Herd` cancels what has not finished (killing each job's process tree), waits
/// for that, and stops the threads: no child outlives its herd.
pub struct Herd {
    shared: Arc<Shared>,
    next_id: AtomicU64,
    /// The event loop; it owns the spawner threads and stops them as it ends.
    loop_thread: Option<JoinHandle<()>>,
    max_running: usize,
    containment: Containment,
    spill_problem: Arc<Mutex<Option<String>>>,
}

/// How a herd keeps its jobs' processes from outliving their job, and the herd itself.
///
/// Chosen when the herd starts, the best this process may use: [`Herd::containment`] says
/// which. In every case a job's tree is killed when it completes (unless
/// [`Builder::kill_descendants`] is off), when it times out and when it is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Containment {
    /// Linux with cgroup v2 where this process may create a cgroup (root, or a delegated
    /// subtree such as a systemd user service): each job runs in a cgroup of its own, inside
    /// one per herd, and is killed with `cgroup.kill`. A guardian process kills the herd's
    /// cgroup if the herd dies, even by SIGKILL. Every descendant is reached, also one that
    /// calls `setsid`.
    Cgroup,
    /// Linux elsewhere: each job leads a process group, and a guardian process kills the groups
    /// of the running jobs if the herd dies. A descendant that leaves its job's group
    /// (`setsid`, `setpgid`) is not reached.
    ProcessGroup,
    /// Windows: each job is a job object, which the system kills when the herd's handles
    /// close, also when the herd is killed. Every descendant is reached.
    JobObject,
    /// Not contained: [`Builder::kill_descendants`] is off, so jobs may leave processes behind.
    None,
}

impl Herd {
    /// A herd with the default settings.
    pub fn new() -> Result<Herd, Error> {
        Builder::default().build()
    }

    /// Configures a herd.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn start(config: Config) -> Result<Herd, Error> {
        sys::raise_fd_limit();
        sys::reset_ignored_sigchld();
        let poller = sys::Poller::new(&config.poller).map_err(Error::Setup)?;
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Vec::new()),
            waker: poller.waker(),
            events: Mutex::new(EventQueue::default()),
            events_cond: Condvar::new(),
            paused: AtomicBool::new(false),
            event_buffer: config.event_buffer,
            chunks: Arc::new(crate::chunk::ChunkPool::new(
                config.event_buffer.min(crate::chunk::KEEP_BYTES),
            )),
            room_wanted: AtomicBool::new(false),
            room_changed: AtomicBool::new(false),
        });
        let max_running = config.max_running;
        let containment = Arc::new(sys::Containment::new(
            config.kill_descendants,
            config.use_cgroups,
            config.adopt_orphans,
        ));
        let level = containment.level();
        let engine = Engine::new(poller, shared.clone(), config, containment);
        let spill_problem = engine.spill_problem();
        let loop_thread = std::thread::Builder::new()
            .name("herd-loop".into())
            .spawn(move || engine.run())
            .map_err(Error::Setup)?;
        Ok(Herd {
            shared,
            next_id: AtomicU64::new(1),
            loop_thread: Some(loop_thread),
            max_running,
            containment: level,
            spill_problem,
        })
    }

    /// Why output could not be spilled to disk, if it could not (a full or read-only spill
    /// directory): the first such failure, in one line. Output is never lost for it; what
    /// did not fit on disk is kept in memory, and the disk is tried again a second later.
    pub fn spill_problem(&self) -> Option<String> {
        self.spill_problem.lock().unwrap().clone()
    }

    /// How this herd contains its jobs' processes.
    pub fn containment(&self) -> Containment {
        self.containment
    }

    /// The bound on running jobs this herd was built with.
    pub fn max_running(&self) -> usize {
        self.max_running
    }

    fn next_id(&self) -> JobId {
        JobId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a job. Its events (start, streamed output, and its [`JobResult`] as
    /// [`Event::Finished`]) come out of [`next_event`](Self::next_event).
    pub fn submit(&self, job: impl Into<Job>) -> Result<JobId, Error> {
        let id = self.next_id();
        {
            let mut events = self.shared.events.lock().unwrap();
            if events.closed {
                return Err(Error::ShutDown);
            }
            events.outstanding += 1;
        }
        self.shared.send(Msg::Submit {
            id,
            job: Arc::new(job.into()),
            delivery: Delivery::Events,
        });
        Ok(id)
    }

    /// Queues a job and returns a handle that yields its result, blocking
    /// ([`JobHandle::wait`]) or as a future. Such a job produces no events.
    pub fn spawn(&self, job: impl Into<Job>) -> Result<JobHandle, Error> {
        if self.shared.events.lock().unwrap().closed {
            return Err(Error::ShutDown);
        }
        let id = self.next_id();
        let slot = Arc::new(HandleSlot::default());
        let sender = HandleSender {
            id,
            slot: Some(slot.clone()),
        };
        self.shared.send(Msg::Submit {
            id,
            job: Arc::new(job.into()),
            delivery: Delivery::Handle(sender),
        });
        Ok(JobHandle { id, slot })
    }

    /// The next event, waiting for it if need be. `None` once every job submitted with
    /// [`submit`](Self::submit) has finished and its events have been taken.
    pub fn next_event(&self) -> Option<Event> {
        self.next_event_inner(None)
    }

    /// Like [`next_event`](Self::next_event), but gives up after `timeout` (returning `None`).
    pub fn next_event_timeout(&self, timeout: Duration) -> Option<Event> {
        self.next_event_inner(Some(timeout))
    }

    fn next_event_inner(&self, timeout: Option<Duration>) -> Option<Event> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut events = self.shared.events.lock().unwrap();
        loop {
            if let Some(event) = events.queue.pop_front() {
                if let Event::Finished(_) = &event {
                    events.finished -= 1;
                    self.shared.room_may_have_changed();
                }
                if let Event::Output { data, .. } = &event {
                    events.bytes -= data.len();
                    if events.bytes < self.shared.event_buffer / 2
                        && self.shared.paused.load(Ordering::Acquire)
                    {
                        self.shared.paused.store(false, Ordering::Release);
                        self.shared.wake();
                    }
                }
                return Some(event);
            }
            if (events.outstanding == 0 && events.holds == 0) || events.closed {
                return None;
            }
            events = match deadline {
                None => self.shared.events_cond.wait(events).unwrap(),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.shared
                        .events_cond
                        .wait_timeout(events, d - now)
                        .unwrap()
                        .0
                }
            };
        }
    }

    /// An iterator over [`next_event`](Self::next_event).
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Keeps the event stream open while the returned guard lives: [`next_event`] then waits
    /// for more events instead of returning `None` when no job is outstanding. Hold one while
    /// another thread is still submitting jobs (reading them from a slow input, say).
    ///
    /// [`next_event`]: Self::next_event
    pub fn keep_open(&self) -> KeepOpen {
        self.shared.events.lock().unwrap().holds += 1;
        KeepOpen {
            shared: self.shared.clone(),
        }
    }

    /// Cancels one job: a queued job finishes at once as cancelled; a running one has its
    /// process tree signalled (SIGTERM, then SIGKILL after the kill grace).
    pub fn cancel(&self, id: JobId) {
        self.shared.send(Msg::Cancel(id));
    }

    /// Cancels every job submitted so far.
    pub fn cancel_all(&self) {
        self.shared.send(Msg::CancelAll);
    }
}

/// Keeps a herd's event stream open; see [`Herd::keep_open`].
pub struct KeepOpen {
    shared: Arc<Shared>,
}

impl Drop for KeepOpen {
    fn drop(&mut self) {
        self.shared.events.lock().unwrap().holds -= 1;
        self.shared.events_cond.notify_all();
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        self.shared.send(Msg::Shutdown);
        if let Some(t) = self.loop_thread.take() {
            let _ = t.join();
        }
    }
}
