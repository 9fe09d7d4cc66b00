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
    pub max_queued: usize,
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
            max_queued: usize::MAX,
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
/// let herd = herd_engine::Herd::builder()
///     .max_running(500)
///     .eof_grace(Duration::from_millis(500))
///     .build()?;
/// # Ok::<(), herd_engine::Error>(())
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

    /// How many submitted jobs may wait for a slot (default: no bound). Past it,
    /// [`Herd::submit`] and [`Herd::spawn`] wait until a waiting job starts: a program can feed
    /// a million jobs in the memory of `n`, the way a bounded channel paces its sender.
    /// [`Herd::queued`] says how many wait. Values below 1 count as 1.
    ///
    /// ```
    /// # fn main() -> Result<(), herd_engine::Error> {
    /// let herd = herd_engine::Herd::builder().max_running(8).max_queued(64).build()?;
    /// for i in 0..1000 {
    ///     // Waits here whenever 64 jobs are waiting for one of the 8 slots.
    ///     herd.submit(herd_engine::Job::shell(format!("echo {i}")))?;
    ///     assert!(herd.queued() <= 64);
    /// }
    /// assert_eq!(herd.results().filter(|r| r.success()).count(), 1000);
    /// # Ok(()) }
    /// ```
    pub fn max_queued(mut self, n: usize) -> Self {
        self.config.max_queued = n.max(1);
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
    /// its result says [`leaked`](crate::JobResult::leaked). Output still on its way when the
    /// grace ends (in the pipe, or a read completed but not yet delivered, as on a loaded
    /// machine) is taken first, for up to 10 s after the exit: the grace never cuts what the
    /// job wrote.
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

    /// Keeps all collected output in memory, never in temporary files: lifts both
    /// [`memory_per_stream`](Self::memory_per_stream) and
    /// [`memory_budget`](Self::memory_budget) (a later call of either sets that bound again).
    /// For programs that know their jobs print little, or that want the bytes in memory
    /// whatever it costs; [`Job::max_output`](crate::Job::max_output) still bounds a job.
    pub fn keep_in_memory(mut self) -> Self {
        self.config.memory_per_stream = usize::MAX;
        self.config.memory_budget = usize::MAX;
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
    /// [`submit`](Herd::submit) have events; the result's [`Captured`](crate::Captured) then says
    /// how much came so ([`Captured::delivered_as_events`](crate::Captured::delivered_as_events)).
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

    /// For tests of the EOF grace: in the Windows thread-pool mode, each completion waits this
    /// long in the pool before it is forwarded (as if the machine were heavily loaded).
    /// Ignored elsewhere.
    #[doc(hidden)]
    pub fn inject_completion_delay(mut self, delay: Duration) -> Self {
        self.config.poller.inject_completion_delay = delay;
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
    /// Tasks waiting in [`Herd::next_event_async`], woken with the blocked threads.
    pub wakers: Vec<std::task::Waker>,
}

impl EventQueue {
    /// Whether the stream has ended: nothing queued and nothing more to come.
    fn ended(&self) -> bool {
        self.queue.is_empty() && ((self.outstanding == 0 && self.holds == 0) || self.closed)
    }
}

/// Jobs waiting for a slot, and the tasks waiting in [`Herd::submit_async`] for room among them.
#[derive(Default)]
struct Waiting {
    count: usize,
    tasks: Vec<std::task::Waker>,
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
    /// Jobs submitted that wait for a slot ([`Builder::max_queued`]), and its bound.
    waiting: Mutex<Waiting>,
    waiting_changed: Condvar,
    max_queued: usize,
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

    /// Counts a job in as waiting for a slot, first waiting for room among the waiting ones.
    fn enter_queue(&self) -> Result<(), Error> {
        let mut waiting = self.waiting.lock().unwrap();
        loop {
            if let Poll::Ready(entered) = self.try_enter_queue(&mut waiting) {
                return entered;
            }
            waiting = self.waiting_changed.wait(waiting).unwrap();
        }
    }

    /// [`enter_queue`](Self::enter_queue) for a task: `Pending` (the task to be woken) while
    /// the queue is full.
    fn poll_enter_queue(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut waiting = self.waiting.lock().unwrap();
        let entered = self.try_enter_queue(&mut waiting);
        if entered.is_pending() {
            register_waker(&mut waiting.tasks, cx);
        }
        entered
    }

    /// Counts a job in if there is room; fails once the herd has shut down; else `Pending`.
    fn try_enter_queue(&self, waiting: &mut Waiting) -> Poll<Result<(), Error>> {
        if waiting.count < self.max_queued {
            waiting.count += 1;
            Poll::Ready(Ok(()))
        } else if self.events.lock().unwrap().closed {
            Poll::Ready(Err(Error::ShutDown))
        } else {
            Poll::Pending
        }
    }

    /// A job stopped waiting for a slot (it started, or ended without starting).
    pub(crate) fn job_left_queue(&self) {
        let mut waiting = self.waiting.lock().unwrap();
        waiting.count -= 1;
        if self.max_queued == usize::MAX {
            return;
        }
        let tasks = std::mem::take(&mut waiting.tasks);
        drop(waiting);
        self.waiting_changed.notify_one();
        tasks.into_iter().for_each(std::task::Waker::wake);
    }

    /// Wakes whoever waits for events, blocked ([`Herd::next_event`]) or as a task
    /// ([`Herd::next_event_async`]).
    pub(crate) fn announce_events(&self) {
        let (wakers, closed) = match self.events.lock() {
            Ok(mut events) => (std::mem::take(&mut events.wakers), events.closed),
            Err(_) => (Vec::new(), true),
        };
        self.events_cond.notify_all();
        wakers.into_iter().for_each(std::task::Waker::wake);
        // The loop ended: a submitter waiting for queue room must hear it (and fail).
        if closed {
            let tasks = match self.waiting.lock() {
                Ok(mut waiting) => std::mem::take(&mut waiting.tasks),
                Err(_) => Vec::new(),
            };
            self.waiting_changed.notify_all();
            tasks.into_iter().for_each(std::task::Waker::wake);
        }
    }

    /// Takes the next queued event, and lets the loop read again if it paused for room.
    fn take_event(&self, events: &mut EventQueue) -> Option<Event> {
        let event = events.queue.pop_front()?;
        if let Event::Finished(_) = &event {
            events.finished -= 1;
            self.room_may_have_changed();
        }
        if let Event::Output { data, .. } = &event {
            events.bytes -= data.len();
            if events.bytes < self.event_buffer / 2 && self.paused.load(Ordering::Acquire) {
                self.paused.store(false, Ordering::Release);
                self.wake();
            }
        }
        Some(event)
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
            slot.complete(JobResult::not_run(
                self.id,
                None,
                crate::Outcome::Cancelled,
                true,
            ));
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
/// Dropping a handle does not stop its job, as dropping a `std::thread::JoinHandle` does not
/// stop its thread: the job runs to its end and its result is discarded. That makes a handle
/// safe to lose (in a `select!` that another branch won, say) without killing work; to stop
/// the job, call [`cancel`](Self::cancel), or build it with
/// [`Job::cancel_on_drop`](crate::Job::cancel_on_drop) to have the drop cancel it (as
/// `tokio::process::Command::kill_on_drop` does).
///
/// ```
/// # fn main() -> Result<(), herd_engine::Error> {
/// let herd = herd_engine::Herd::new()?;
/// let handle = herd.spawn(herd_engine::Job::shell("echo hi"))?;
/// let result = handle.wait();
/// assert_eq!(result.stdout.text()?.trim_end(), "hi");
/// # Ok(()) }
/// ```
pub struct JobHandle {
    id: JobId,
    slot: Arc<HandleSlot>,
    shared: Arc<Shared>,
    cancel_on_drop: bool,
    /// The result was handed out: nothing left to cancel.
    done: bool,
}

impl JobHandle {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Cancels the job: a queued job finishes at once as cancelled; a running one has its
    /// process tree killed. Its result (saying so) still comes from the handle.
    pub fn cancel(&self) {
        self.shared.send(Msg::Cancel(self.id));
    }

    /// Whether the job has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.done || self.slot.state.lock().unwrap().result.is_some()
    }

    /// Blocks until the job has finished.
    pub fn wait(mut self) -> JobResult {
        let mut state = self.slot.state.lock().unwrap();
        loop {
            if let Some(r) = state.result.take() {
                drop(state);
                self.done = true;
                return r;
            }
            state = self.slot.cond.wait(state).unwrap();
        }
    }
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("cancel_on_drop", &self.cancel_on_drop)
            .finish_non_exhaustive()
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if self.cancel_on_drop && !self.is_finished() {
            self.cancel();
        }
    }
}

impl Future for JobHandle {
    type Output = JobResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobResult> {
        let mut state = self.slot.state.lock().unwrap();
        match state.result.take() {
            Some(r) => {
                drop(state);
                self.done = true;
                Poll::Ready(r)
            }
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
/// A `Herd` is cheap to clone, and every clone is the same herd: share it between threads
/// (it is `Send` and `Sync`) or clone it into tasks. Dropping the last clone cancels what has
/// not finished (killing each job's process tree), waits for that, and stops the threads: no
/// child outlives its herd.
#[derive(Clone)]
pub struct Herd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Herd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Herd")
            .field("max_running", &self.inner.max_running)
            .field("containment", &self.inner.containment)
            .finish_non_exhaustive()
    }
}

/// What the clones of a [`Herd`] share; dropping it shuts the herd down.
struct Inner {
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
            waiting: Mutex::new(Waiting::default()),
            waiting_changed: Condvar::new(),
            max_queued: config.max_queued,
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
            inner: Arc::new(Inner {
                shared,
                next_id: AtomicU64::new(1),
                loop_thread: Some(loop_thread),
                max_running,
                containment: level,
                spill_problem,
            }),
        })
    }

    /// Why output could not be spilled to disk, if it could not (a full or read-only spill
    /// directory): the first such failure, in one line. Output is never lost for it; what
    /// did not fit on disk is kept in memory, and the disk is tried again a second later.
    pub fn spill_problem(&self) -> Option<String> {
        self.inner.spill_problem.lock().unwrap().clone()
    }

    /// How this herd contains its jobs' processes.
    pub fn containment(&self) -> Containment {
        self.inner.containment
    }

    /// How many submitted jobs wait for a slot now (see [`Builder::max_queued`]).
    pub fn queued(&self) -> usize {
        self.inner.shared.waiting.lock().unwrap().count
    }

    /// The bound on running jobs this herd was built with.
    pub fn max_running(&self) -> usize {
        self.inner.max_running
    }

    fn next_id(&self) -> JobId {
        JobId(self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a job. Its events (start, streamed output, and its [`JobResult`] as
    /// [`Event::Finished`]) come out of [`next_event`](Self::next_event).
    pub fn submit(&self, job: impl Into<Job>) -> Result<JobId, Error> {
        self.inner.shared.enter_queue()?;
        self.submit_entered(job.into())
    }

    /// [`submit`](Self::submit) for async code: waits without blocking a thread while
    /// [`Builder::max_queued`] jobs wait for a slot.
    ///
    /// ```
    /// # async fn feed(herd: herd_engine::Herd) -> Result<(), herd_engine::Error> {
    /// for i in 0..1_000_000 {
    ///     herd.submit_async(herd_engine::Job::shell(format!("echo {i}"))).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn submit_async(&self, job: impl Into<Job>) -> SubmitAsync<'_> {
        SubmitAsync {
            herd: self,
            job: Some(job.into()),
        }
    }

    /// The id of a job already counted among the waiting ones, unless the herd has shut down
    /// (then the job is counted out again). A job with events is counted in the stream's
    /// outstanding jobs under the same lock, so the stream cannot end before its events.
    fn admit(&self, with_events: bool) -> Result<JobId, Error> {
        let shared = &self.inner.shared;
        let mut events = shared.events.lock().unwrap();
        if events.closed {
            drop(events);
            shared.job_left_queue();
            return Err(Error::ShutDown);
        }
        if with_events {
            events.outstanding += 1;
        }
        Ok(self.next_id())
    }

    /// Submits a job already counted among the waiting ones.
    fn submit_entered(&self, job: Job) -> Result<JobId, Error> {
        let id = self.admit(true)?;
        self.inner.shared.send(Msg::Submit {
            id,
            job: Arc::new(job),
            delivery: Delivery::Events,
        });
        Ok(id)
    }

    /// Queues a job and returns a handle that yields its result, blocking
    /// ([`JobHandle::wait`]) or as a future. Such a job produces no events.
    pub fn spawn(&self, job: impl Into<Job>) -> Result<JobHandle, Error> {
        self.inner.shared.enter_queue()?;
        let id = self.admit(false)?;
        let slot = Arc::new(HandleSlot::default());
        let sender = HandleSender {
            id,
            slot: Some(slot.clone()),
        };
        let job: Job = job.into();
        let cancel_on_drop = job.cancel_on_drop;
        self.inner.shared.send(Msg::Submit {
            id,
            job: Arc::new(job),
            delivery: Delivery::Handle(sender),
        });
        Ok(JobHandle {
            id,
            slot,
            shared: self.inner.shared.clone(),
            cancel_on_drop,
            done: false,
        })
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
        let shared = &self.inner.shared;
        let mut events = shared.events.lock().unwrap();
        loop {
            if let Some(event) = shared.take_event(&mut events) {
                return Some(event);
            }
            if events.ended() {
                return None;
            }
            events = match deadline {
                None => shared.events_cond.wait(events).unwrap(),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return None;
                    }
                    shared.events_cond.wait_timeout(events, d - now).unwrap().0
                }
            };
        }
    }

    /// [`next_event`](Self::next_event) for async code: a future that resolves to the next
    /// event (or `None` at the stream's end) without blocking a thread, on any executor.
    ///
    /// ```
    /// # async fn follow(herd: herd_engine::Herd) {
    /// while let Some(event) = herd.next_event_async().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn next_event_async(&self) -> NextEvent<'_> {
        NextEvent { herd: self }
    }

    /// The results of the jobs given to [`submit`](Self::submit), in the order they finish
    /// (their other events are dropped): the loop for a program that only wants results.
    ///
    /// ```
    /// # fn main() -> Result<(), herd_engine::Error> {
    /// let herd = herd_engine::Herd::new()?;
    /// for seconds in [2, 0, 1] {
    ///     herd.submit(herd_engine::Job::shell(format!("echo {seconds}")))?;
    /// }
    /// let finished: Vec<_> = herd.results().map(|r| r.id.get()).collect();
    /// assert_eq!(finished.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn results(&self) -> impl Iterator<Item = JobResult> + '_ {
        self.events().filter_map(|event| match event {
            Event::Finished(result) => Some(*result),
            _ => None,
        })
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
        self.inner.shared.events.lock().unwrap().holds += 1;
        KeepOpen {
            shared: self.inner.shared.clone(),
        }
    }

    /// Cancels one job: a queued job finishes at once as cancelled; a running one has its
    /// process tree signalled (SIGTERM, then SIGKILL after the kill grace).
    pub fn cancel(&self, id: JobId) {
        self.inner.shared.send(Msg::Cancel(id));
    }

    /// Cancels every job submitted so far.
    pub fn cancel_all(&self) {
        self.inner.shared.send(Msg::CancelAll);
    }
}

/// Keeps a herd's event stream open; see [`Herd::keep_open`].
pub struct KeepOpen {
    shared: Arc<Shared>,
}

impl Drop for KeepOpen {
    fn drop(&mut self) {
        self.shared.events.lock().unwrap().holds -= 1;
        self.shared.announce_events();
    }
}

/// Adds the polling task to those to wake, once.
fn register_waker(wakers: &mut Vec<std::task::Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

/// The future of [`Herd::submit_async`].
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct SubmitAsync<'a> {
    herd: &'a Herd,
    job: Option<Job>,
}

impl Future for SubmitAsync<'_> {
    type Output = Result<JobId, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<JobId, Error>> {
        match self.herd.inner.shared.poll_enter_queue(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let job = self
                    .job
                    .take()
                    .expect("SubmitAsync polled after it finished");
                Poll::Ready(self.herd.submit_entered(job))
            }
        }
    }
}

/// The future of [`Herd::next_event_async`].
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct NextEvent<'a> {
    herd: &'a Herd,
}

impl Future for NextEvent<'_> {
    type Output = Option<Event>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let shared = &self.herd.inner.shared;
        let mut events = shared.events.lock().unwrap();
        if let Some(event) = shared.take_event(&mut events) {
            return Poll::Ready(Some(event));
        }
        if events.ended() {
            return Poll::Ready(None);
        }
        register_waker(&mut events.wakers, cx);
        Poll::Pending
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.send(Msg::Shutdown);
        if let Some(t) = self.loop_thread.take() {
            let _ = t.join();
        }
    }
}
