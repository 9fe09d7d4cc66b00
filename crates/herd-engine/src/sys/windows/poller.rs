//! One I/O completion port for everything a child does.
//!
//! Each output pipe always has one overlapped `ReadFile` outstanding, into a buffer that lives
//! in a heap-allocated [`Op`] together with its `OVERLAPPED`; the `OVERLAPPED` pointer that a
//! completion carries *is* the op. An op is freed only after its completion (or the completion
//! of its cancellation) has been dequeued, never while the kernel may still write into it.
//!
//! Two completion modes:
//! - **Port** (default): the pipes are bound to herd's own port, drained by the event loop with
//!   `GetQueuedCompletionStatusEx`.
//! - **Thread pool**: the seeds' design. Each pipe gets a `TP_IO`; `StartThreadpoolIo` comes
//!   before *every* `ReadFile`, `CancelThreadpoolIo` whenever a read will produce no completion
//!   (it failed synchronously, EOF included), and `WaitForThreadpoolIoCallbacks` before
//!   closing. The pool's callback forwards each completion to herd's port, so the engine sees
//!   one stream of completions either way.
//!
//! The rules of the seeds and their pitfalls: EOF is `ERROR_BROKEN_PIPE` (or `ERROR_HANDLE_EOF`,
//! `ERROR_PIPE_NOT_CONNECTED`), whether it comes in a completion or straight from `ReadFile`; a
//! 0-byte success is not EOF; `ERROR_INVALID_USER_BUFFER`, `ERROR_NOT_ENOUGH_MEMORY`,
//! `ERROR_NOT_ENOUGH_QUOTA` and `ERROR_WORKING_SET_QUOTA` mean too many reads are outstanding
//! system-wide, and the read is retried after a capped, doubling back-off.
//!
//! Exit: each child's job object posts its messages to the same port (under a key naming the
//! job); they are hints, which the engine confirms on the process handle. Because their
//! delivery is not guaranteed, a sweep checks every unreported process handle (without
//! waiting) a few times a second. No thread waits on any child.

use super::super::{Stream, SysEvent, Token, TokenTable};
use super::process::Process;
use crate::feed::Feed;
use std::fs::File;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_INVALID_USER_BUFFER, ERROR_IO_PENDING,
    ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_ENOUGH_QUOTA, ERROR_NO_DATA, ERROR_OPERATION_ABORTED,
    ERROR_PIPE_NOT_CONNECTED, ERROR_WORKING_SET_QUOTA, HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::JobObjects::{
    JobObjectAssociateCompletionPortInformation, SetInformationJobObject,
    JOBOBJECT_ASSOCIATE_COMPLETION_PORT,
};
use windows_sys::Win32::System::Pipes::PeekNamedPipe;

// Job messages (winnt.h; in windows-sys they sit behind the large SystemServices feature).
const JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO: u32 = 4;
const JOB_OBJECT_MSG_EXIT_PROCESS: u32 = 7;
const JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS: u32 = 8;
use windows_sys::Win32::System::Threading::{
    CancelThreadpoolIo, CloseThreadpoolIo, CreateThreadpoolIo, StartThreadpoolIo,
    WaitForSingleObject, WaitForThreadpoolIoCallbacks, PTP_CALLBACK_INSTANCE, PTP_IO,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    OVERLAPPED, OVERLAPPED_ENTRY,
};

/// The parent's ends of one child's pipes.
pub(crate) struct Pipes {
    pub stdout: OwnedHandle,
    pub stderr: OwnedHandle,
    /// herd's end of the child's stdin and what to write into it.
    pub stdin: Option<(OwnedHandle, Feed)>,
}

/// Wakes the poller from another thread. It owns the completion port, so a wake-up from a
/// spawner that outlives the loop never posts to a closed (or reused) handle.
pub(crate) struct Waker {
    port: OwnedHandle,
    /// Test hook: how long the pool's callback waits before forwarding a completion.
    completion_delay: Duration,
    /// A stream's sender sent bytes, or went, after its feed found nothing to write.
    streams: AtomicBool,
}

// SAFETY: a completion port handle may be used from any thread.
unsafe impl Send for Waker {}
// SAFETY: as above; posting is thread-safe.
unsafe impl Sync for Waker {}

impl Waker {
    fn port(&self) -> HANDLE {
        self.port.as_raw_handle() as HANDLE
    }

    /// A stream has bytes again, or ended: the poller writes its starved stdins.
    pub(crate) fn stream_ready(&self) {
        self.streams.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        // SAFETY: a valid port; a null OVERLAPPED is allowed for posted packets.
        unsafe { PostQueuedCompletionStatus(self.port(), 0, KEY_WAKE, ptr::null()) };
    }
}

const KEY_WAKE: usize = 0;
/// A pipe operation completed on our port (port mode).
const KEY_IO: usize = 1;
/// A pipe operation completed in the thread pool and was forwarded (thread-pool mode).
const KEY_FORWARDED: usize = 2;
/// A job object's message; the job's token is in the high bits.
const KEY_JOB: usize = 3;

fn job_key(token: Token) -> usize {
    (((token.gen as usize) << 32 | token.slot as usize) << 2) | KEY_JOB
}

fn job_token(key: usize) -> Token {
    let v = key >> 2;
    Token {
        slot: (v & 0xffff_ffff) as u32,
        gen: (v >> 32) as u32,
    }
}

const READ_SIZE: usize = 64 * 1024;
const SWEEP_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read(Stream),
    Write,
}

/// One overlapped operation and everything it touches. `overlapped` comes first so that the
/// `OVERLAPPED*` of a completion is a pointer to the whole op.
#[repr(C)]
struct Op {
    overlapped: OVERLAPPED,
    kind: OpKind,
    token: Token,
    handle: OwnedHandle,
    /// The thread pool's I/O object, in thread-pool mode.
    tp_io: PTP_IO,
    /// The result the pool's callback saw (thread-pool mode), read after its packet arrives.
    tp_result: AtomicU32,
    pending: bool,
    /// Deregistered while pending: free it when its completion arrives.
    closing: bool,
    retries: u32,
    /// Where a read lands: its spare capacity while the read is pending, its length once the
    /// read completes. The engine may take it with the bytes (see [`SysEvent::Output`]).
    buf: Vec<u8>,
    /// For the stdin writer: what to write.
    feed: Option<Feed>,
}

/// The pool's completion callback: records the result and forwards the completion to our port.
unsafe extern "system" fn forward_completion(
    _instance: PTP_CALLBACK_INSTANCE,
    context: *mut core::ffi::c_void,
    overlapped: *mut core::ffi::c_void,
    io_result: u32,
    bytes: usize,
    _io: PTP_IO,
) {
    let op = overlapped as *mut Op;
    // SAFETY: the op stays allocated until its forwarded packet is dequeued, which happens
    // after this store; only this field is touched here.
    unsafe { (*op).tp_result.store(io_result, Ordering::Release) };
    // SAFETY: `context` is the poller's `callback_waker`, a reference released only once no
    // op can call back (see `Poller::drop`), so the port it owns is open and still ours.
    let waker = unsafe { &*(context as *const Waker) };
    if !waker.completion_delay.is_zero() {
        std::thread::sleep(waker.completion_delay);
    }
    // SAFETY: a valid port; the op's OVERLAPPED is what the engine's poll expects.
    unsafe {
        PostQueuedCompletionStatus(
            waker.port(),
            bytes as u32,
            KEY_FORWARDED,
            overlapped as *const OVERLAPPED,
        )
    };
}

struct Registration {
    /// Output readers; `None` once the stream reached EOF.
    reads: [Option<*mut Op>; 2],
    stdin: Option<*mut Op>,
    /// The process handle, borrowed: the engine deregisters before it closes the handle.
    process: HANDLE,
    exit_reported: bool,
}

/// What a failed or completed operation means.
enum Outcome {
    Data,
    Eof,
    TooManyOutstanding,
    Aborted,
}

fn outcome_of(error: u32) -> Outcome {
    match error {
        0 => Outcome::Data,
        ERROR_BROKEN_PIPE | ERROR_HANDLE_EOF | ERROR_PIPE_NOT_CONNECTED | ERROR_NO_DATA => {
            Outcome::Eof
        }
        ERROR_INVALID_USER_BUFFER
        | ERROR_NOT_ENOUGH_MEMORY
        | ERROR_NOT_ENOUGH_QUOTA
        | ERROR_WORKING_SET_QUOTA => Outcome::TooManyOutstanding,
        ERROR_OPERATION_ABORTED => Outcome::Aborted,
        // Anything else on a pipe ends the stream.
        _ => Outcome::Eof,
    }
}

/// The Win32 error of a completed operation, from the NTSTATUS the kernel left in it.
fn ntstatus_to_error(status: usize) -> u32 {
    match status as u32 {
        0 => 0,
        0xC000_014B | 0xC000_00B1 => ERROR_BROKEN_PIPE, // STATUS_PIPE_BROKEN, STATUS_PIPE_CLOSING
        0xC000_0011 => ERROR_HANDLE_EOF,                // STATUS_END_OF_FILE
        0xC000_00B0 => ERROR_PIPE_NOT_CONNECTED,        // STATUS_PIPE_DISCONNECTED
        0xC000_0120 => ERROR_OPERATION_ABORTED,         // STATUS_CANCELLED
        0xC000_009A => ERROR_NOT_ENOUGH_MEMORY,         // STATUS_INSUFFICIENT_RESOURCES
        0xC000_0044 => ERROR_NOT_ENOUGH_QUOTA,          // STATUS_QUOTA_EXCEEDED
        0xC000_0017 => ERROR_NOT_ENOUGH_MEMORY,         // STATUS_NO_MEMORY
        _ => ERROR_BROKEN_PIPE,
    }
}

pub(crate) struct Poller {
    waker: Arc<Waker>,
    /// The thread pool's callbacks' context: a reference to the waker (which owns the port)
    /// of their own. A callback may come after the poller is gone, when an op cancelled at
    /// the end never completed in time; it must then post to this port, still open, and
    /// never to a closed handle whose value may name another herd's port by then.
    callback_waker: *const Waker,
    /// How long the drop waits for cancelled ops (5 s; tests shorten it).
    drop_wait: Duration,
    thread_pool: bool,
    regs: TokenTable<Registration>,
    /// Events found outside `poll` (a synchronous EOF at registration), reported by the next.
    deferred: Vec<(Token, Stream)>,
    /// Reads waiting out a back-off after "too many outstanding reads".
    retries: Vec<(Instant, Token, Stream)>,
    /// Reads not re-armed because the consumer is behind.
    parked: Vec<(Token, Stream)>,
    /// Jobs whose stdin stream had nothing to write: written again when the waker says a
    /// stream has more.
    starved: Vec<Token>,
    /// Ops cancelled at deregistration whose completion has not been dequeued yet.
    closing: usize,
    entries: Vec<OVERLAPPED_ENTRY>,
    next_sweep: Instant,
    /// Test hook: fail this many reads as "too many outstanding" before issuing them.
    inject_read_failures: u32,
}

// SAFETY: the raw op pointers are owned by the poller and only used on the thread that holds
// it; the pool's callback touches only an op's atomic result field.
unsafe impl Send for Poller {}

impl Poller {
    pub(crate) fn new(options: &super::super::PollerOptions) -> io::Result<Self> {
        // SAFETY: creating a new port (no file handle yet), one concurrent thread.
        let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, ptr::null_mut(), 0, 1) };
        if port.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new handle we own.
        let port = unsafe { OwnedHandle::from_raw_handle(port as _) };
        let waker = Arc::new(Waker {
            port,
            completion_delay: options.inject_completion_delay,
            streams: AtomicBool::new(false),
        });
        Ok(Poller {
            callback_waker: Arc::into_raw(waker.clone()),
            drop_wait: Duration::from_secs(5),
            waker,
            starved: Vec::new(),
            thread_pool: options.windows_thread_pool,
            regs: TokenTable::new(),
            deferred: Vec::new(),
            retries: Vec::new(),
            parked: Vec::new(),
            closing: 0,
            entries: Vec::with_capacity(256),
            next_sweep: Instant::now() + SWEEP_EVERY,
            inject_read_failures: options.inject_read_failures,
        })
    }

    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    fn port(&self) -> HANDLE {
        self.waker.port()
    }

    /// Windows has no `splice`: a spilling stream keeps arriving as [`SysEvent::Output`], and
    /// the engine writes its spill file.
    pub(crate) fn spill_into(&mut self, _token: Token, _stream: Stream, _file: File) {}

    /// Not yet on Windows: a stream with no room in memory or on disk keeps being read into
    /// memory.
    pub(crate) fn hold(&mut self, _token: Token, _stream: Stream) {}

    /// See [`hold`](Self::hold).
    pub(crate) fn release(&mut self, _token: Token, _stream: Stream) {}

    fn reg(&mut self, token: Token) -> Option<&mut Registration> {
        self.regs.get_mut(token)
    }

    /// Binds a handle to our port, or gives it a thread-pool I/O object.
    fn new_op(&self, kind: OpKind, token: Token, handle: OwnedHandle) -> io::Result<*mut Op> {
        let raw = handle.as_raw_handle() as HANDLE;
        let mut tp_io: PTP_IO = 0;
        if self.thread_pool {
            // SAFETY: a valid overlapped handle; the context is `callback_waker`, which
            // outlives every callback.
            tp_io = unsafe {
                CreateThreadpoolIo(
                    raw,
                    Some(forward_completion),
                    self.callback_waker as *mut _,
                    ptr::null(),
                )
            };
            if tp_io == 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            // SAFETY: associating a valid overlapped handle with our port.
            if unsafe { CreateIoCompletionPort(raw, self.port(), KEY_IO, 0) }.is_null() {
                return Err(io::Error::last_os_error());
            }
        }
        let op = Box::new(Op {
            // SAFETY: an all-zero OVERLAPPED is the documented initial value.
            overlapped: unsafe { std::mem::zeroed() },
            kind,
            token,
            handle,
            tp_io,
            tp_result: AtomicU32::new(0),
            pending: false,
            closing: false,
            retries: 0,
            buf: if matches!(kind, OpKind::Read(_)) {
                Vec::with_capacity(READ_SIZE)
            } else {
                Vec::new()
            },
            feed: None,
        });
        Ok(Box::into_raw(op))
    }

    /// Starts watching a new child: its output pipes, its stdin (if herd feeds it) and its job.
    pub(crate) fn register(
        &mut self,
        token: Token,
        process: &Process,
        pipes: Pipes,
    ) -> io::Result<()> {
        let out = self.new_op(OpKind::Read(Stream::Stdout), token, pipes.stdout)?;
        let err = match self.new_op(OpKind::Read(Stream::Stderr), token, pipes.stderr) {
            Ok(op) => op,
            Err(e) => {
                // SAFETY: `out` was just created, never issued.
                unsafe { free_op(out) };
                return Err(e);
            }
        };
        let stdin = match pipes.stdin {
            Some((handle, mut feed)) => {
                feed.wake_through(&self.waker);
                let op = self.new_op(OpKind::Write, token, handle)?;
                // SAFETY: a new op, not issued yet.
                unsafe { (*op).feed = Some(feed) };
                Some(op)
            }
            None => None,
        };
        let association = JOBOBJECT_ASSOCIATE_COMPLETION_PORT {
            CompletionKey: job_key(token) as *mut _,
            CompletionPort: self.port(),
        };
        // SAFETY: a valid job handle and a correctly sized struct. Failure only costs the
        // hints: the sweep still finds the exit.
        unsafe {
            SetInformationJobObject(
                process.raw_job(),
                JobObjectAssociateCompletionPortInformation,
                &association as *const _ as *const _,
                size_of::<JOBOBJECT_ASSOCIATE_COMPLETION_PORT>() as u32,
            )
        };
        self.regs.insert(
            token,
            Registration {
                reads: [Some(out), Some(err)],
                stdin,
                process: process.raw_handle(),
                exit_reported: false,
            },
        );
        self.start_read(token, Stream::Stdout);
        self.start_read(token, Stream::Stderr);
        if let Some(op) = stdin {
            self.start_write(op);
        }
        Ok(())
    }

    /// Issues the next read of a stream.
    fn start_read(&mut self, token: Token, stream: Stream) {
        let inject = if self.inject_read_failures > 0 {
            self.inject_read_failures -= 1;
            true
        } else {
            false
        };
        let thread_pool = self.thread_pool;
        let Some(reg) = self.reg(token) else { return };
        let Some(op) = reg.reads[stream as usize] else {
            return;
        };
        let error = if inject {
            ERROR_NOT_ENOUGH_QUOTA
        } else {
            // SAFETY: the op is ours and not pending; its buffer and OVERLAPPED stay put until
            // the completion is dequeued (nothing touches the buffer meanwhile). The read fills
            // the buffer's spare capacity. The byte count pointer is null, as required for
            // overlapped reads.
            let issued = unsafe {
                let buf = &mut (*op).buf;
                buf.clear();
                buf.reserve(READ_SIZE);
                let capacity = buf.capacity().min(u32::MAX as usize) as u32;
                issue(op, thread_pool, |handle, overlapped| {
                    ReadFile(
                        handle,
                        (*op).buf.as_mut_ptr(),
                        capacity,
                        ptr::null_mut(),
                        overlapped,
                    )
                })
            };
            match issued {
                None => return,
                Some(error) => error,
            }
        };
        self.read_failed(token, stream, op, error);
    }

    /// A read that produced no completion, or completed with an error.
    fn read_failed(&mut self, token: Token, stream: Stream, op: *mut Op, error: u32) {
        match outcome_of(error) {
            Outcome::TooManyOutstanding => {
                // SAFETY: our op, not pending.
                let retries = unsafe {
                    (*op).retries += 1;
                    (*op).retries
                };
                let delay =
                    Duration::from_millis(10u64 << retries.min(7)).min(Duration::from_secs(1));
                self.retries.push((Instant::now() + delay, token, stream));
            }
            _ => {
                // EOF, or an error that ends the stream.
                if let Some(reg) = self.reg(token) {
                    reg.reads[stream as usize] = None;
                }
                // SAFETY: not pending, and no longer referenced.
                unsafe { free_op(op) };
                self.deferred.push((token, stream));
            }
        }
    }

    fn start_write(&mut self, op: *mut Op) {
        // SAFETY: our op, not pending; the feed lives in the op and its bytes outlive the
        // write (a file range's piece is only replaced after the write completes).
        let issued = unsafe {
            let feed = (*op).feed.as_mut().expect("stdin op has a feed");
            let rest = match feed.next() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A stream with nothing yet: the op waits, idle, for its sender's next
                    // bytes to wake the poller.
                    let token = (*op).token;
                    if !self.starved.contains(&token) {
                        self.starved.push(token);
                    }
                    return;
                }
                // A file that cannot be read ends the job's input where it failed.
                Err(_) => &[][..],
                Ok(rest) => rest,
            };
            if rest.is_empty() {
                Some(0)
            } else {
                let len = rest.len().min(1 << 30) as u32;
                issue(op, self.thread_pool, |handle, overlapped| {
                    WriteFile(handle, rest.as_ptr(), len, ptr::null_mut(), overlapped)
                })
            }
        };
        if issued.is_none() {
            return;
        }
        // All written, or the child closed its stdin: close ours, which gives the child EOF.
        // SAFETY: our op.
        let token = unsafe { (*op).token };
        if let Some(reg) = self.reg(token) {
            reg.stdin = None;
        }
        // SAFETY: not pending, no longer referenced.
        unsafe { free_op(op) };
    }

    /// Whether a job's output is on its way: a read the system has completed whose completion
    /// herd has not taken yet (it waits in the port or in the thread pool's callback), or a
    /// pipe that holds bytes or whose every writer has closed it (its end of file not taken
    /// yet). Only a pipe a live writer holds open with nothing in it is not.
    pub(crate) fn output_in_transit(&self, token: Token) -> bool {
        const STATUS_PENDING: usize = 0x103;
        let Some(reg) = self.regs.get(token) else {
            return false;
        };
        reg.reads.iter().flatten().any(|&op| {
            // SAFETY: our op. `Internal` leaves STATUS_PENDING when the I/O completes, before
            // its completion is queued (HasOverlappedIoCompleted); a volatile read, since the
            // system writes it.
            let (pending, completed, handle) = unsafe {
                (
                    (*op).pending,
                    std::ptr::read_volatile(&(*op).overlapped.Internal) != STATUS_PENDING,
                    (*op).handle.as_raw_handle() as HANDLE,
                )
            };
            // Wine writes `Internal` only once a pool thread takes the completion, so with the
            // pool's threads busy a completed read still looks pending (one run in eight of
            // `output_in_transit_outlives_the_eof_grace` in thread-pool mode): the pipe says
            // what the read cannot.
            pending && (completed || pipe_has_more(handle))
        })
    }

    /// Stops watching a child and closes what is left of its pipes.
    pub(crate) fn deregister(&mut self, token: Token) {
        let Some(reg) = self.regs.remove(token) else {
            return;
        };
        for op in reg.reads.into_iter().chain([reg.stdin]).flatten() {
            // SAFETY: our op; a pending one is cancelled and freed when its completion arrives.
            unsafe {
                if (*op).pending {
                    (*op).closing = true;
                    CancelIoEx((*op).handle.as_raw_handle() as HANDLE, &(*op).overlapped);
                    self.closing += 1;
                } else {
                    free_op(op);
                }
            }
        }
        self.retries.retain(|(_, t, _)| *t != token);
        self.parked.retain(|(t, _)| *t != token);
        self.deferred.retain(|(t, _)| *t != token);
        self.starved.retain(|t| *t != token);
    }

    /// Waits for events (at most `timeout`; `None` waits for ever) and reports them to `on`.
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        budget: usize,
        on: &mut dyn FnMut(SysEvent<'_>),
    ) -> io::Result<()> {
        let now = Instant::now();
        if self.waker.streams.swap(false, Ordering::AcqRel) {
            for token in std::mem::take(&mut self.starved) {
                if let Some(op) = self.reg(token).and_then(|reg| reg.stdin) {
                    self.start_write(op);
                }
            }
        }
        if budget > 0 {
            for (token, stream) in std::mem::take(&mut self.parked) {
                self.start_read(token, stream);
            }
        }
        let due: Vec<(Token, Stream)> = {
            let (due, later): (Vec<_>, Vec<_>) =
                self.retries.drain(..).partition(|(at, _, _)| *at <= now);
            self.retries = later;
            due.into_iter().map(|(_, t, s)| (t, s)).collect()
        };
        for (token, stream) in due {
            self.start_read(token, stream);
        }
        let had_deferred = !self.deferred.is_empty();
        for (token, stream) in std::mem::take(&mut self.deferred) {
            on(SysEvent::Eof { token, stream });
        }
        // Wake up for the next retry or sweep, whichever comes first.
        let mut deadline = timeout.map(|t| now + t);
        let mut consider = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
        if let Some(at) = self.retries.iter().map(|r| r.0).min() {
            consider(at);
        }
        if self.regs.iter_mut().any(|(_, r)| !r.exit_reported) {
            consider(self.next_sweep);
        }
        if had_deferred {
            // The engine must see those events before anything else happens.
            deadline = Some(now);
        }
        let wait_ms = match deadline {
            None => u32::MAX, // INFINITE
            Some(d) => d
                .saturating_duration_since(now)
                .as_millis()
                .min(u32::MAX as u128 - 1) as u32,
        };
        let mut removed = 0u32;
        self.entries.clear();
        // SAFETY: the entry buffer has `capacity` slots; the port is valid.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.port(),
                self.entries.as_mut_ptr(),
                self.entries.capacity() as u32,
                &mut removed,
                wait_ms,
                0,
            )
        };
        if ok != 0 {
            // SAFETY: the call initialised `removed` entries.
            unsafe { self.entries.set_len(removed as usize) };
        } else {
            // SAFETY: reads the thread's last error.
            let e = unsafe { GetLastError() };
            if e != WAIT_TIMEOUT {
                return Err(io::Error::from_raw_os_error(e as i32));
            }
        }
        let mut budget = budget;
        let entries = std::mem::take(&mut self.entries);
        for entry in &entries {
            match entry.lpCompletionKey & 3 {
                KEY_WAKE => {}
                KEY_JOB => {
                    let message = entry.dwNumberOfBytesTransferred;
                    if [
                        JOB_OBJECT_MSG_EXIT_PROCESS,
                        JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS,
                        JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO,
                    ]
                    .contains(&message)
                    {
                        // Route by key; `lpOverlapped` here is a process id, not a pointer.
                        on(SysEvent::Exited {
                            token: job_token(entry.lpCompletionKey),
                        });
                    }
                }
                key => {
                    let op = entry.lpOverlapped as *mut Op;
                    let error = if key == KEY_FORWARDED {
                        // SAFETY: the callback stored the result before posting this packet.
                        unsafe { (*op).tp_result.load(Ordering::Acquire) }
                    } else {
                        // SAFETY: the op is ours and complete; the kernel wrote its status.
                        ntstatus_to_error(unsafe { (*op).overlapped.Internal })
                    };
                    self.completed(
                        op,
                        error,
                        entry.dwNumberOfBytesTransferred as usize,
                        &mut budget,
                        on,
                    );
                }
            }
        }
        self.entries = entries;
        if Instant::now() >= self.next_sweep {
            self.next_sweep = Instant::now() + SWEEP_EVERY;
            self.sweep(on);
        }
        Ok(())
    }

    /// Reports processes that have exited but whose job message did not come (yet).
    fn sweep(&mut self, on: &mut dyn FnMut(SysEvent<'_>)) {
        for (token, reg) in self.regs.iter_mut() {
            if reg.exit_reported {
                continue;
            }
            // SAFETY: the process handle is valid while registered; a zero timeout never blocks.
            if unsafe { WaitForSingleObject(reg.process, 0) } == WAIT_OBJECT_0 {
                reg.exit_reported = true;
                on(SysEvent::Exited { token });
            }
        }
    }

    fn completed(
        &mut self,
        op: *mut Op,
        error: u32,
        bytes: usize,
        budget: &mut usize,
        on: &mut dyn FnMut(SysEvent<'_>),
    ) {
        // SAFETY: a dequeued completion's op is ours again, and no longer pending.
        let (kind, token, closing) = unsafe {
            (*op).pending = false;
            ((*op).kind, (*op).token, (*op).closing)
        };
        if closing {
            self.closing -= 1;
            // SAFETY: deregistered, and its completion has now arrived.
            unsafe { free_op(op) };
            return;
        }
        match kind {
            OpKind::Read(stream) => match outcome_of(error) {
                Outcome::Data => {
                    // SAFETY: a successful read wrote `bytes` into the buffer.
                    unsafe { (*op).retries = 0 };
                    if bytes > 0 {
                        // SAFETY: the read wrote `bytes` (at most the capacity it was given)
                        // into the buffer, which nothing else refers to until the next read.
                        let data = unsafe {
                            (*op).buf.set_len(bytes);
                            &mut (*op).buf
                        };
                        on(SysEvent::Output {
                            token,
                            stream,
                            data,
                        });
                        *budget = budget.saturating_sub(bytes);
                    }
                    // A 0-byte success is not EOF: read again.
                    if *budget > 0 {
                        self.start_read(token, stream);
                    } else {
                        self.parked.push((token, stream));
                    }
                }
                Outcome::Aborted => {}
                _ => self.read_failed(token, stream, op, error),
            },
            OpKind::Write => {
                if error == 0 {
                    // SAFETY: our op; `bytes` were written.
                    unsafe {
                        if let Some(feed) = (*op).feed.as_mut() {
                            feed.advance(bytes);
                        }
                    }
                    self.start_write(op);
                } else {
                    // The child closed its stdin: nothing more to write.
                    if let Some(reg) = self.reg(token) {
                        reg.stdin = None;
                    }
                    // SAFETY: not pending, no longer referenced.
                    unsafe { free_op(op) };
                }
            }
        }
    }
}

/// Issues one overlapped operation on an op, keeping the thread pool's books: the pool must
/// expect a completion before *every* operation (`StartThreadpoolIo`) and be told when one
/// will not come (`CancelThreadpoolIo`). Returns `None` when a completion will come (even for
/// a synchronous success: the handle does not skip the port on success, so it is handled
/// there, once), or the error of an operation that failed at once.
///
/// # Safety
/// The op must be ours and not pending, and `io` must start an overlapped operation on the
/// given handle and OVERLAPPED.
unsafe fn issue(
    op: *mut Op,
    thread_pool: bool,
    io: impl FnOnce(HANDLE, *mut OVERLAPPED) -> windows_sys::core::BOOL,
) -> Option<u32> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*op).overlapped = std::mem::zeroed();
        if thread_pool {
            StartThreadpoolIo((*op).tp_io);
        }
        let ok = io(
            (*op).handle.as_raw_handle() as HANDLE,
            &mut (*op).overlapped,
        );
        let error = if ok != 0 {
            ERROR_IO_PENDING
        } else {
            GetLastError()
        };
        if error == ERROR_IO_PENDING {
            (*op).pending = true;
            return None;
        }
        if thread_pool {
            // No completion will come for this operation: tell the pool.
            CancelThreadpoolIo((*op).tp_io);
        }
        Some(error)
    }
}

/// Frees an op that is not pending: waits out any pool callback, closes the handle.
unsafe fn free_op(op: *mut Op) {
    // SAFETY: the caller guarantees the op is ours, not pending, and referenced nowhere else.
    let op = unsafe { Box::from_raw(op) };
    if op.tp_io != 0 {
        // SAFETY: a valid TP_IO with no I/O outstanding.
        unsafe {
            WaitForThreadpoolIoCallbacks(op.tp_io, 0);
            CloseThreadpoolIo(op.tp_io);
        }
    }
    drop(op);
}

impl Drop for Poller {
    fn drop(&mut self) {
        let tokens: Vec<Token> = self.regs.iter_mut().map(|(t, _)| t).collect();
        for token in tokens {
            self.deregister(token);
        }
        // Cancelled ops must see their completion before their memory goes.
        let mut budget = usize::MAX;
        let deadline = Instant::now() + self.drop_wait;
        while self.closing > 0 && Instant::now() < deadline {
            let _ = self.poll(Some(Duration::from_millis(100)), budget, &mut |_| {});
            budget = usize::MAX;
        }
        if self.closing == 0 {
            // SAFETY: the reference made in `new`; no op is left to call back with it.
            drop(unsafe { Arc::from_raw(self.callback_waker) });
        }
        // Else an op never completed (it should not happen; Wine has lost a completion): its
        // memory and the callbacks' reference stay, so a late callback posts to this port,
        // still open, instead of to a handle value another herd may own by then.
    }
}

/// Whether a pipe holds bytes, or has no writer left (its end of file is on its way).
fn pipe_has_more(handle: HANDLE) -> bool {
    let mut available = 0u32;
    // SAFETY: a pipe handle of ours; no buffer is read, only the count.
    let ok = unsafe {
        PeekNamedPipe(
            handle,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            &mut available,
            std::ptr::null_mut(),
        )
    };
    if ok != 0 {
        return available > 0;
    }
    // SAFETY: no arguments.
    matches!(
        unsafe { GetLastError() },
        ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::windows::pipe::{self, Direction};
    use windows_sys::Win32::System::IO::GetQueuedCompletionStatus;

    #[test]
    fn a_late_thread_pool_callback_posts_to_its_own_port_never_to_a_reused_handle() {
        let mut poller = Poller::new(&crate::sys::PollerOptions {
            windows_thread_pool: true,
            ..Default::default()
        })
        .unwrap();
        // A read that will not complete by itself: nobody writes to the pipe.
        let (server, _client) = pipe::create(Direction::FromChild).unwrap();
        let token = Token { slot: 7, gen: 1 };
        let op = poller
            .new_op(OpKind::Read(Stream::Stdout), token, server)
            .unwrap();
        poller.regs.insert(
            token,
            Registration {
                reads: [Some(op), None],
                stdin: None,
                process: ptr::null_mut(),
                exit_reported: false,
            },
        );
        poller.start_read(token, Stream::Stdout);
        // SAFETY: our op.
        assert!(unsafe { (*op).pending });
        // The drop cancels the read and, not waiting, gives up before its completion comes.
        poller.drop_wait = Duration::ZERO;
        let old_port = poller.port() as usize;
        drop(poller);
        // Ports made now cannot take the old port's handle value: it is still open.
        let new_ports: Vec<OwnedHandle> = (0..8)
            .map(|_| {
                // SAFETY: a new port.
                let port =
                    unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, ptr::null_mut(), 0, 1) };
                assert!(!port.is_null());
                // SAFETY: a new handle we own.
                unsafe { OwnedHandle::from_raw_handle(port as _) }
            })
            .collect();
        for port in &new_ports {
            assert_ne!(
                port.as_raw_handle() as usize,
                old_port,
                "the port's value was reused"
            );
        }
        // The cancelled read's completion arrives late, on the old port.
        let (mut bytes, mut key, mut overlapped) = (0u32, 0usize, ptr::null_mut());
        // SAFETY: the old port is open (above); out-pointers to locals.
        let got = unsafe {
            GetQueuedCompletionStatus(
                old_port as HANDLE,
                &mut bytes,
                &mut key,
                &mut overlapped,
                10_000,
            )
        };
        assert!(
            got != 0 || !overlapped.is_null(),
            "no late completion in 10 s"
        );
        assert_eq!(key, KEY_FORWARDED);
        assert_eq!(overlapped as usize, op as usize);
    }
}
