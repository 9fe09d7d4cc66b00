//! Where captured output lives: in memory up to a bound, then in a temporary file.
//!
//! Each stream of each job collects into memory until either the stream passes the per-stream
//! cap or all jobs' in-memory output passes the herd-wide budget; from then on that stream
//! spills to an unnamed temporary file (`O_TMPFILE`, mode 0600) in a private directory (mode
//! 0700) created on first need and removed with the herd. Two jobs printing 300 MB each cost
//! the herd a few MB of memory, not 600.
//!
//! Disk failure never loses output: if a spill file cannot be created or written, the stream
//! goes back to memory (what was already on disk is read back) and carries on there. When that
//! memory passes the budget too, [`Capture::push`] says so and the engine stops reading the
//! stream until there is room (the child waits on its full pipe).
//!
//! A job with [`Job::max_output`](crate::Job::max_output) keeps only the head and the tail of
//! each stream: the first half of the limit is stored as above, the last half in a ring that
//! always holds the latest bytes; what fell between them is counted and reported as a [`Cut`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Memory held by collected output, shared by every job of a herd.
pub(crate) struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
    /// Told when output is dropped (the loop may be holding streams for lack of room).
    pub(crate) notify: std::sync::OnceLock<Arc<crate::herd::Shared>>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("used", &self.used)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            used: AtomicUsize::new(0),
            limit,
            notify: std::sync::OnceLock::new(),
        })
    }

    /// `n` bytes of collected output were dropped by whoever held them.
    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        if let (true, Some(shared)) = (n > 0, self.notify.get()) {
            shared.room_may_have_changed();
        }
    }

    /// Whether collected output holds all the memory it may (or more).
    pub(crate) fn full(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= self.limit
    }

    /// The memory collected output may still take.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }
}

/// The private spill directory, created the first time a stream spills.
pub(crate) struct SpillDir {
    parent: Option<PathBuf>,
    dir: Mutex<Option<Arc<tempfile::TempDir>>>,
    /// Told about the directory once it exists, to remove it should the herd be killed.
    containment: Arc<crate::sys::Containment>,
    /// The first failure to spill (a full or read-only disk), for [`Herd::spill_problem`].
    ///
    /// [`Herd::spill_problem`]: crate::Herd::spill_problem
    pub(crate) problem: Arc<Mutex<Option<String>>>,
    /// After a failure, no stream tries the disk again before this: a full disk must not
    /// cost a failed file per chunk of every stream.
    retry_at: Mutex<Option<std::time::Instant>>,
}

/// How long a full spill directory is left alone before it is tried again.
const SPILL_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl SpillDir {
    pub(crate) fn new(parent: Option<PathBuf>, containment: Arc<crate::sys::Containment>) -> Self {
        SpillDir {
            parent,
            dir: Mutex::new(None),
            containment,
            problem: Arc::default(),
            retry_at: Mutex::new(None),
        }
    }

    /// Records that spilling failed with `e`: said once, and the disk left alone for a while.
    fn failed(&self, e: &io::Error) {
        *self.retry_at.lock().unwrap() = Some(std::time::Instant::now() + SPILL_RETRY);
        let mut problem = self.problem.lock().unwrap();
        if problem.is_none() {
            let dir = match &self.parent {
                Some(p) => p.display().to_string(),
                None => std::env::temp_dir().display().to_string(),
            };
            *problem = Some(format!(
                "cannot spill output to {dir} ({e}): output is kept in memory, and jobs wait \
                 while it is full"
            ));
        }
    }

    fn create_file(&self) -> io::Result<File> {
        if let Some(at) = *self.retry_at.lock().unwrap() {
            if std::time::Instant::now() < at {
                return Err(io::Error::other("the spill directory failed a moment ago"));
            }
        }
        let made = self.create_file_now();
        if let Err(e) = &made {
            self.failed(e);
        }
        made
    }

    fn create_file_now(&self) -> io::Result<File> {
        let mut guard = self.dir.lock().unwrap();
        if guard.is_none() {
            let mut builder = tempfile::Builder::new();
            builder.prefix("herd-");
            // Private: other users may not even list it (its files are 0600 and unnamed).
            #[cfg(unix)]
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
            #[cfg(unix)]
            builder.permissions(private);
            let dir = match &self.parent {
                Some(p) => builder.tempdir_in(p)?,
                None => builder.tempdir()?,
            };
            self.containment.remove_when_gone(dir.path());
            *guard = Some(Arc::new(dir));
        }
        let dir: &Path = guard.as_ref().unwrap().path();
        tempfile::tempfile_in(dir)
    }
}

/// Limits that shape a capture.
pub(crate) struct CaptureLimits {
    pub per_stream: usize,
    pub budget: Arc<MemoryBudget>,
}

/// The tail of a capped stream: the latest bytes past the head.
#[derive(Default)]
struct Tail {
    ring: std::collections::VecDeque<u8>,
    capacity: usize,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.capacity {
            let skip = data.len() - self.capacity;
            self.dropped += skip as u64;
            &data[skip..]
        } else {
            data
        };
        let over = (self.ring.len() + data.len()).saturating_sub(self.capacity);
        self.ring.drain(..over);
        self.dropped += over as u64;
        self.ring.extend(data);
    }
}

/// One stream's output being collected, inside the engine.
#[derive(Default)]
pub(crate) struct Capture {
    mem: Vec<u8>,
    file: Option<File>,
    file_len: u64,
    total: u64,
    charged: usize,
    budget: Option<Arc<MemoryBudget>>,
    /// With a cap: how many bytes the head may hold, and the tail.
    head_capacity: Option<u64>,
    tail: Tail,
    /// The disk refused this stream once: the rest stays in memory.
    no_disk: bool,
    /// Bytes delivered as output events instead of kept (see [`Capture::let_through`]).
    passed: u64,
}

impl Capture {
    /// A capture that keeps everything, or with `max` only its first and last `max / 2` bytes.
    pub(crate) fn new(max: Option<u64>) -> Self {
        let mut capture = Capture::default();
        if let Some(max) = max {
            let tail = max / 2;
            capture.head_capacity = Some(max - tail);
            capture.tail.capacity = tail as usize;
        }
        capture
    }

    /// Keeps `data`. Returns true when it went to memory beyond the herd's budget because the
    /// disk refused it: the caller should read no more of this stream until there is room.
    pub(crate) fn push(
        &mut self,
        mut data: &[u8],
        keep: bool,
        limits: &CaptureLimits,
        spill: &SpillDir,
    ) -> bool {
        self.total += data.len() as u64;
        if !keep {
            return false;
        }
        if let Some(head) = self.head_capacity {
            let stored = self.file_len + self.mem.len() as u64;
            let room = head.saturating_sub(stored).min(data.len() as u64) as usize;
            self.tail.push(&data[room..]);
            data = &data[..room];
            if data.is_empty() {
                return false;
            }
        }
        self.store(data, limits, spill);
        self.no_disk && limits.budget.full()
    }

    /// Neither memory nor disk has room, and this job must go on: what the stream holds (in
    /// memory, since the disk refused it) is handed over to be delivered as an output event,
    /// and from now on [`passed`](Self::passed) counts its bytes instead of keeping them.
    /// `None` for a capped stream (its cap bounds it already).
    pub(crate) fn let_through(&mut self) -> Option<Vec<u8>> {
        if self.head_capacity.is_some() || self.file.is_some() {
            return None;
        }
        let held = std::mem::take(&mut self.mem);
        self.uncharge();
        self.passed += held.len() as u64;
        Some(held)
    }

    /// `bytes` of a let-through stream were delivered as an output event.
    pub(crate) fn passed(&mut self, bytes: usize) {
        self.total += bytes as u64;
        self.passed += bytes as u64;
    }

    /// The spill file, for the poller to append the rest of the stream to by itself: only
    /// once the stream spills, and not when it keeps a head and a tail (the tail must see
    /// every byte).
    pub(crate) fn direct_spill_file(&self) -> Option<File> {
        if self.head_capacity.is_some() {
            return None;
        }
        self.file.as_ref()?.try_clone().ok()
    }

    /// `bytes` were appended to the spill file by the poller.
    pub(crate) fn spilled(&mut self, bytes: usize) {
        self.total += bytes as u64;
        self.file_len += bytes as u64;
    }

    fn store(&mut self, data: &[u8], limits: &CaptureLimits, spill: &SpillDir) {
        if self.file.is_none() {
            let over_stream = self.mem.len() + data.len() > limits.per_stream;
            let used = limits.budget.used.load(Ordering::Relaxed);
            let over_budget = used + data.len() > limits.budget.limit;
            if !(over_stream || over_budget) || self.no_disk {
                self.keep_in_memory(data, &limits.budget);
                return;
            }
            match spill.create_file() {
                Ok(file) => {
                    self.file = Some(file);
                    let mem = std::mem::take(&mut self.mem);
                    self.uncharge();
                    if !self.write_file(&mem, &limits.budget, spill) {
                        self.keep_in_memory(&mem, &limits.budget);
                    }
                }
                Err(_) => {
                    // No room on disk: keep it in memory rather than lose it, and do not try
                    // the disk again for this stream (each try would rewrite all it holds).
                    self.no_disk = true;
                    self.keep_in_memory(data, &limits.budget);
                    return;
                }
            }
        }
        if self.file.is_some() && self.write_file(data, &limits.budget, spill) {
            return;
        }
        self.keep_in_memory(data, &limits.budget);
    }

    /// Appends to the spill file. On failure, reads the file back into memory, drops it, and
    /// returns false: the caller keeps `data` in memory.
    fn write_file(&mut self, data: &[u8], budget: &Arc<MemoryBudget>, spill: &SpillDir) -> bool {
        let file = self.file.as_mut().expect("spill file");
        match file.write_all(data) {
            Ok(()) => {
                self.file_len += data.len() as u64;
                return true;
            }
            Err(e) => spill.failed(&e),
        }
        self.no_disk = true;
        let mut back = Vec::new();
        let ok = file.seek(SeekFrom::Start(0)).is_ok()
            && file.take(self.file_len).read_to_end(&mut back).is_ok();
        self.file = None;
        self.file_len = 0;
        if ok {
            self.charge(back.len(), budget);
            back.extend_from_slice(&self.mem);
            self.mem = back;
        }
        false
    }

    /// Appends to the memory part, growing it by a quarter at a time rather than doubling:
    /// the budget counts bytes held, and a doubled buffer could hold twice what it counts.
    fn keep_in_memory(&mut self, data: &[u8], budget: &Arc<MemoryBudget>) {
        self.charge(data.len(), budget);
        let spare = self.mem.capacity() - self.mem.len();
        if spare < data.len() {
            self.mem.reserve_exact(data.len().max(self.mem.len() / 4));
        }
        self.mem.extend_from_slice(data);
    }

    fn charge(&mut self, n: usize, budget: &Arc<MemoryBudget>) {
        budget.used.fetch_add(n, Ordering::Relaxed);
        self.charged += n;
        if self.budget.is_none() {
            self.budget = Some(budget.clone());
        }
    }

    fn uncharge(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.charged, Ordering::Relaxed);
        }
        self.charged = 0;
    }

    pub(crate) fn finish(mut self, limits: &CaptureLimits, spill: &SpillDir) -> Captured {
        let cut = (self.tail.dropped > 0).then(|| Cut {
            offset: self.file_len + self.mem.len() as u64,
            bytes: self.tail.dropped,
        });
        if !self.tail.ring.is_empty() {
            let tail: Vec<u8> = std::mem::take(&mut self.tail.ring).into();
            self.store(&tail, limits, spill);
        }
        let stored = match self.file.take() {
            Some(file) => Stored::File(file, self.file_len, Mutex::new(())),
            None => Stored::Memory(std::mem::take(&mut self.mem)),
        };
        let charge = Charge {
            bytes: std::mem::take(&mut self.charged),
            budget: self.budget.take(),
        };
        Captured {
            stored,
            total: self.total,
            cut,
            passed: self.passed,
            _charge: charge,
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.uncharge();
    }
}

/// Gives memory back to the budget when the output that held it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    bytes: usize,
    budget: Option<Arc<MemoryBudget>>,
}

impl Charge {
    /// `bytes` more held against `budget`, until this is dropped.
    pub(crate) fn new(bytes: usize, budget: &Arc<MemoryBudget>) -> Charge {
        budget.used.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            bytes,
            budget: Some(budget.clone()),
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.bytes);
        }
    }
}

/// Copies the first `len` bytes of a spill file into `out`, from a `File` (not a `dyn Read`,
/// so that `io::copy` can hand the copy to the kernel). That copy moves the file position all
/// clones of the descriptor share, so `seeking` is held throughout: two threads writing out
/// one `Captured` would otherwise move each other's position and each get a truncated copy.
fn copy_from_start<W: Write + ?Sized>(
    file: &File,
    seeking: &Mutex<()>,
    len: u64,
    out: &mut W,
) -> io::Result<u64> {
    let _alone = seeking.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(0))?;
    io::copy(&mut f.take(len), out)
}

/// Reads a spill file at its own position (`pread`), so that readers of one file do not move
/// each other (a cloned descriptor would share one file position).
struct FileReader<'a> {
    file: &'a File,
    at: u64,
    len: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.len - self.at) as usize);
        if want == 0 {
            return Ok(0);
        }
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, &mut buf[..want], self.at)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, &mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[derive(Debug)]
enum Stored {
    Memory(Vec<u8>),
    /// The file, how many bytes of it are the output, and the lock of its file position.
    File(File, u64, Mutex<()>),
}

/// Where a capped stream lost bytes ([`Job::max_output`](crate::Job::max_output)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Where in the kept bytes the cut is: the length of the head.
    pub offset: u64,
    /// How many bytes were dropped there.
    pub bytes: u64,
}

/// The captured output of one stream of one job ([`JobResult::stdout`] and
/// [`JobResult::stderr`]).
///
/// Read it with [`text`](Self::text), [`bytes`](Self::bytes) or [`into_vec`](Self::into_vec):
/// they work wherever the bytes are. Small output is held in memory; output past the herd's
/// memory bounds ([`Builder::memory_per_stream`], [`Builder::memory_budget`]) was moved to an
/// unnamed temporary file as it arrived, which vanishes when this is dropped. Only a program
/// that cares where the bytes are needs [`in_memory`](Self::in_memory),
/// [`is_spilled`](Self::is_spilled), [`reader`](Self::reader) or [`write_to`](Self::write_to).
///
/// ```
/// # fn main() -> Result<(), herd_engine::Error> {
/// let herd = herd_engine::Herd::new()?;
/// let result = herd.spawn(herd_engine::Job::shell("echo hello"))?.wait();
/// assert_eq!(result.stdout.text()?.trim_end(), "hello");
/// # Ok(()) }
/// ```
///
/// [`JobResult::stdout`]: crate::JobResult::stdout
/// [`JobResult::stderr`]: crate::JobResult::stderr
/// [`Builder::memory_per_stream`]: crate::Builder::memory_per_stream
/// [`Builder::memory_budget`]: crate::Builder::memory_budget
#[derive(Debug)]
pub struct Captured {
    stored: Stored,
    total: u64,
    cut: Option<Cut>,
    /// Bytes delivered as output events instead of kept.
    passed: u64,
    _charge: Charge,
}

impl Captured {
    pub(crate) fn empty() -> Self {
        Captured {
            stored: Stored::Memory(Vec::new()),
            total: 0,
            cut: None,
            passed: 0,
            _charge: Charge::default(),
        }
    }

    /// How many bytes the stream produced (kept or not).
    pub fn len(&self) -> u64 {
        self.total
    }

    /// How many bytes are kept: [`len`](Self::len) less what a cap cut out and what was
    /// [`delivered as events`](Self::delivered_as_events).
    pub fn kept_len(&self) -> u64 {
        self.total - self.cut.map_or(0, |c| c.bytes) - self.passed
    }

    /// How many bytes of the stream came as [`Event::Output`](crate::Event::Output) events
    /// instead of being kept here: the whole stream, when it was let through because neither
    /// memory nor disk had room for it (see
    /// [`Builder::stream_when_full`](crate::Builder::stream_when_full)); else 0.
    pub fn delivered_as_events(&self) -> u64 {
        self.passed
    }

    /// Where bytes were cut out of the middle, when the job had a
    /// [`max_output`](crate::Job::max_output) and the stream passed it.
    pub fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// Whether the stream produced nothing.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The bytes: borrowed when they are in memory, read back when they were spilled to disk.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, crate::Error> {
        match &self.stored {
            Stored::Memory(v) => Ok(std::borrow::Cow::Borrowed(v)),
            Stored::File(..) => self.read_back().map(std::borrow::Cow::Owned),
        }
    }

    /// The bytes as text, any invalid UTF-8 replaced by `�` (see [`String::from_utf8_lossy`]).
    pub fn text(&self) -> Result<String, crate::Error> {
        Ok(match self.bytes()? {
            std::borrow::Cow::Borrowed(b) => String::from_utf8_lossy(b).into_owned(),
            std::borrow::Cow::Owned(v) => String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        })
    }

    /// The bytes, copied.
    pub fn to_vec(&self) -> Result<Vec<u8>, crate::Error> {
        self.bytes().map(std::borrow::Cow::into_owned)
    }

    /// The bytes, without a copy when they are in memory.
    pub fn into_vec(mut self) -> Result<Vec<u8>, crate::Error> {
        match &mut self.stored {
            Stored::Memory(v) => Ok(std::mem::take(v)),
            Stored::File(..) => self.read_back(),
        }
    }

    fn read_back(&self) -> Result<Vec<u8>, crate::Error> {
        let mut v = Vec::with_capacity(self.kept_len() as usize);
        self.reader()
            .and_then(|mut r| r.read_to_end(&mut v))
            .map_err(crate::Error::ReadOutput)?;
        Ok(v)
    }

    /// The bytes, when they are held in memory; `None` when they were spilled to disk (then
    /// [`bytes`](Self::bytes) reads them back).
    pub fn in_memory(&self) -> Option<&[u8]> {
        match &self.stored {
            Stored::Memory(v) => Some(v),
            Stored::File(..) => None,
        }
    }

    /// Whether the output was spilled to a temporary file.
    pub fn is_spilled(&self) -> bool {
        matches!(self.stored, Stored::File(..))
    }

    /// A reader over the bytes, from the start. Readers are independent: several may be read
    /// at once, from several threads, each at its own place.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        match &self.stored {
            Stored::Memory(v) => Ok(Box::new(&v[..])),
            Stored::File(file, len, _) => Ok(Box::new(FileReader {
                file,
                at: 0,
                len: *len,
            })),
        }
    }

    /// Copies the bytes into `out`; returns how many. When the bytes are in a file and `out`
    /// is a `File` (or a `BufWriter` of one), `std::io::copy` lets the kernel move them on
    /// Linux (`copy_file_range`, `sendfile` or `splice`) instead of reading them back through
    /// a buffer: pass the concrete type, not `&mut dyn Write`, to get that.
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<u64> {
        match &self.stored {
            Stored::Memory(v) => out.write_all(v).map(|_| v.len() as u64),
            Stored::File(file, len, seeking) => copy_from_start(file, seeking, *len, out),
        }
    }
}
