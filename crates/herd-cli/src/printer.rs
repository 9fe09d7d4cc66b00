//! Where job output goes: herd's stdout and stderr, in the chosen output mode, and `--json`.
//!
//! Streamed output (`-u`, `--line-buffer`) is written chunk by chunk as it arrives; grouped
//! output (`--group`, `-k`) is written whole when the job finishes, from what the engine
//! collected (in memory or a spill file). With `--max-output`, a streamed job passes its head
//! through and its tail comes from the collected output at the end, after the cut mark.

use crate::json::{self, OutputForm, Segment};
use crate::options::OutputMode;
use crate::parked::{Backlog, Parked, WriteTo};
use herd_engine::{Captured, JobId, JobResult, Stream};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

/// What herd remembers of a job while it runs.
pub struct JobInfo {
    pub seq: u64,
    pub slot: usize,
    /// What `--tag` puts before each line: the values joined by spaces (or `--tagstring`),
    /// then a TAB.
    pub tag: Vec<u8>,
    /// The command line as GNU parallel shows it (`--dry-run`, `-v`, the joblog).
    pub line: Vec<u8>,
    /// What runs: the program and its arguments (a shell, `-c` and `line`, when one is needed).
    pub argv: Vec<Vec<u8>>,
    /// The job, kept to run it again (`--retries`), and how many times it has run.
    pub job: Option<herd_engine::Job>,
    pub runs: u32,
    /// `--results`: where its output goes.
    pub results: Option<crate::results::ResultFiles>,
    /// Its values, kept for a `--results` table (else empty).
    pub values: Vec<Vec<u8>>,
    /// When it (or its latest run, under `--retries`) started (`--timeout N%`).
    pub started: std::time::Instant,
    /// `-S`: where it runs, and how to run it elsewhere.
    pub remote: Option<Box<Remote>>,
    /// Its earlier runs, when it ran again (`--json` lists them).
    pub attempts: Vec<crate::json::Attempt>,
    /// `--cat`, `--fifo`: its block's file, removed when this is dropped (after its last run).
    pub _block_file: Option<crate::blockfile::BlockFile>,
}

/// A job of a run with hosts (`-S`).
pub struct Remote {
    /// Where it runs now; `None` while it waits for a host.
    pub place: Option<crate::remote::Placement>,
    /// The sshlogin, as the joblog's Host column shows it.
    pub host: String,
    pub command: crate::remote::RemoteCommand,
    /// The job as it runs on this machine (the `:` host).
    pub local: herd_engine::Job,
    /// `--onall`: the host it must run on.
    pub pin: Option<usize>,
    /// `--retries`: the hosts where it has failed, to run on another while one can take it.
    pub failed_on: Vec<usize>,
}

impl JobInfo {
    /// The joblog's Host column: the sshlogin, or `:` for this machine.
    pub fn host(&self) -> &str {
        self.remote_host().unwrap_or(":")
    }

    /// `-S`: the sshlogin the job runs on (`--json`, `--events`).
    pub fn remote_host(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.host.as_str())
    }
}

impl JobInfo {
    /// The command line, whole (the joblog).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.line).into_owned()
    }

    /// The command line for a message: a line of herd's stays readable, however long the
    /// command (a value may be megabytes), so it is cut after 1000 characters.
    pub fn shown(&self) -> String {
        const MOST: usize = 1000;
        let text = String::from_utf8_lossy(&self.line);
        match text.char_indices().nth(MOST) {
            Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], self.line.len()),
            None => text.into_owned(),
        }
    }
}

/// How the printer is set up.
pub struct PrinterOptions<'a> {
    pub mode: OutputMode,
    pub tag: bool,
    pub json: Option<&'a std::path::Path>,
    pub json_timeline: bool,
    /// `--max-output`, per stream.
    pub max_output: Option<u64>,
    /// Job output is not printed: another writer (`--events -`) has stdout, or `--results`
    /// keeps it.
    pub stdout_taken: bool,
    pub bar: Option<ProgressBar>,
    /// `-v`: each job's command line before its output.
    pub verbose: bool,
    /// `--files`: each job's output is in a file; its name is printed instead.
    pub files: bool,
    /// `--tmpdir`: where `-k`'s backlog of waiting output goes.
    pub tmpdir: Option<&'a std::path::Path>,
}

/// The state of one stream of one job whose output is printed as it arrives.
#[derive(Default)]
struct Streaming {
    /// `--line-buffer`: the unfinished last line.
    partial: Vec<u8>,
    /// Bytes passed through so far (with `--max-output`, at most the head).
    passed: u64,
    /// `--line-buffer`: the line being printed was longer than [`LONG_LINE`], so its start is
    /// out already and the rest passes through up to its newline.
    mid_line: bool,
}

/// `--line-buffer` keeps an unfinished line up to this length; a longer line is printed in
/// pieces as it comes (other jobs' lines may then land inside it), so that memory stays
/// bounded whatever a job prints. herd says so once per job.
pub const LONG_LINE: usize = 1 << 20;

/// `-k --line-buffer`: a running job's output while it is not yet its turn. It waits here up
/// to a bound; beyond that it is printed from the engine's capture when the job finishes.
struct Held {
    seq: u64,
    tag: Vec<u8>,
    out: Vec<u8>,
    err: Vec<u8>,
    /// Past the bound: this job prints whole when it finishes.
    overflowed: bool,
    /// Its turn has come: its output passes through live.
    live: bool,
}

/// `-k`: a finished job waiting for its turn.
enum Waiting {
    /// As the bytes it will print (see [`crate::parked`]).
    Parked(Parked),
    /// As it finished, when the backlog could not take it (a full disk): its output stays in
    /// the engine's memory, counted there, so the engine reads less until it is printed.
    Kept(Box<(JobInfo, JobResult)>),
}

/// How a job's output is shown.
#[derive(Clone, Copy)]
struct Look {
    verbose: bool,
    tag: bool,
    files: bool,
}

/// What a job prints on one stream, in grouped and `-k` modes: for stdout, `-v`'s command
/// line first (and with `--files` only its file's name); the output, with `--tag`'s prefix
/// on every line and a line where `--max-output` cut it.
fn render_stream(
    w: &mut dyn WriteTo,
    look: Look,
    info: &JobInfo,
    result: &JobResult,
    stream: Stream,
) -> io::Result<()> {
    // (A stdout let through printed the line before its first bytes.)
    if look.verbose && stream == Stream::Stdout && result.stdout.delivered_as_events() == 0 {
        w.write_all(&info.line)?;
        w.write_all(b"\n")?;
    }
    let tag = look.tag.then_some(&info.tag[..]);
    if let (true, Some(files)) = (look.files, &info.results) {
        if stream == Stream::Stdout {
            let mut name = files.stdout.as_os_str().as_encoded_bytes().to_vec();
            name.push(b'\n');
            write_lines(w, tag, &name)?;
        }
        return Ok(());
    }
    let output = result.output(stream);
    if output.is_empty() {
        return Ok(());
    }
    let marked = with_cut_mark(output, stream)?;
    match (tag, marked.as_deref().or(output.in_memory())) {
        (_, Some(bytes)) => write_lines(w, tag, bytes),
        (None, None) => w.output(output),
        (Some(tag), None) => {
            // In buffers, the tag at each line's start: never a whole line in memory (a job
            // may print 300 MB without a newline).
            let mut reader = output.reader()?;
            let mut buf = vec![0u8; 64 << 10];
            let mut at_line_start = true;
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                for piece in buf[..n].split_inclusive(|&b| b == b'\n') {
                    if at_line_start {
                        w.write_all(tag)?;
                    }
                    w.write_all(piece)?;
                    at_line_start = piece.ends_with(b"\n");
                }
            }
        }
    }
}

/// `e`, saying where the write went (keeping its kind: a closed pipe stays one).
fn named(e: io::Error, destination: &str) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return e;
    }
    io::Error::new(e.kind(), format!("cannot write to {destination}: {e}"))
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Held output per job, and in all.
const HELD_PER_JOB: usize = 1 << 20;
const HELD_IN_ALL: usize = 64 << 20;

/// herd's stdout for job output. On Unix a duplicate of descriptor 1 rather than
/// `io::stdout()`, whose line buffering scans every write for a newline (a tenth of herd's CPU
/// when a job streams a gigabyte); herd buffers and flushes itself. Being a `File`, it also
/// lets the kernel copy spilled output to it (see `Output::write_to`). On Windows
/// `io::stdout()`, which also writes Unicode to a console correctly.
#[cfg(unix)]
type Stdout = File;
#[cfg(not(unix))]
type Stdout = io::Stdout;

#[cfg(unix)]
fn stdout() -> io::Result<Stdout> {
    use std::os::fd::AsFd;
    match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Ok(File::from(fd)),
        // Descriptor 1 is closed: discard, as `io::stdout()` does then.
        Err(_) => File::options().write(true).open("/dev/null"),
    }
}

#[cfg(not(unix))]
fn stdout() -> io::Result<Stdout> {
    Ok(io::stdout())
}

/// Writes output and results.
pub struct Printer {
    mode: OutputMode,
    tag: bool,
    verbose: bool,
    /// Job output goes to herd's stdout/stderr (not when `--json -` or `--events -` has it).
    print_output: bool,
    /// `--files`: the name of each job's output file is printed instead of its output.
    files: bool,
    out: BufWriter<Stdout>,
    err: BufWriter<io::Stderr>,
    json: Option<Box<dyn Write>>,
    json_timeline: bool,
    /// How many bytes of a stream pass through before the tail is held back.
    head: Option<u64>,
    bar: Option<ProgressBar>,
    /// `-k`: finished (or skipped, `None`) jobs waiting for their turn, by sequence number.
    waiting: BTreeMap<u64, Option<Waiting>>,
    /// Where parked jobs' bytes are kept.
    backlog: Backlog,
    next_seq: u64,
    streaming: HashMap<(JobId, Stream), Streaming>,
    /// `--json-timeline`: each running job's chunks so far, as (stream, length).
    timelines: HashMap<JobId, Vec<Segment>>,
    /// `-k --line-buffer`: running jobs' output waiting for their turn.
    held: HashMap<JobId, Held>,
    held_bytes: usize,
    /// Our stdout is gone (a closed pipe): stop writing to it.
    pub broken: bool,
    /// Why output stopped, when it was not a closed pipe.
    pub failure: Option<String>,
    /// `--json FILE`: the name to give in errors.
    json_name: String,
    /// Jobs told about a line longer than [`LONG_LINE`].
    long_lines: HashSet<JobId>,
    /// Grouped and `-k`: the job whose output the engine lets through as it comes, because
    /// neither memory nor disk had room for it (see [`Printer::lets_through`]): printed live.
    live: Option<JobId>,
    /// Grouped: jobs that finished while another was live, printed after it.
    deferred: Vec<(JobInfo, JobResult)>,
    /// The engine may let output through (set when jobs are not streamed otherwise): an
    /// output chunk in grouped or `-k` mode is such output.
    pub letting_through: bool,
    /// Let-through output of a job whose turn had not come (`-k` after a retry): kept until
    /// it has.
    early: HashMap<JobId, [Vec<u8>; 2]>,
    /// Let-through streams begun, each with whether it stands at a line's start (`--tag`).
    through: HashMap<(JobId, Stream), bool>,
}

fn write_lines<W: Write + ?Sized>(w: &mut W, prefix: Option<&[u8]>, data: &[u8]) -> io::Result<()> {
    match prefix {
        None => w.write_all(data),
        Some(prefix) => {
            for line in data.split_inclusive(|&b| b == b'\n') {
                w.write_all(prefix)?;
                w.write_all(line)?;
            }
            Ok(())
        }
    }
}

/// The kept bytes of a cut stream with a line marking the cut, or `None` when nothing was
/// cut. (A cut stream holds at most `--max-output` bytes, so reading it whole is bounded.)
fn with_cut_mark(output: &Captured, stream: Stream) -> io::Result<Option<Vec<u8>>> {
    let Some(cut) = output.cut() else {
        return Ok(None);
    };
    let kept = output.to_vec()?;
    let (head, tail) = kept.split_at(cut.offset as usize);
    let mut v = Vec::with_capacity(kept.len() + 64);
    v.extend_from_slice(head);
    if !head.is_empty() && !head.ends_with(b"\n") {
        v.push(b'\n');
    }
    let name = if stream == Stream::Stdout {
        "stdout"
    } else {
        "stderr"
    };
    v.extend_from_slice(format!("[herd: {} bytes of {name} cut]\n", cut.bytes).as_bytes());
    v.extend_from_slice(tail);
    Ok(Some(v))
}

impl Printer {
    pub fn new(o: PrinterOptions<'_>) -> io::Result<Printer> {
        let json_to_stdout = o.json.is_some_and(|p| p.as_os_str() == "-");
        let json: Option<Box<dyn Write>> = match o.json {
            None => None,
            Some(_) if json_to_stdout => Some(Box::new(io::stdout())),
            Some(p) => Some(Box::new(BufWriter::new(File::create(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write {}: {e}", p.display()))
            })?))),
        };
        Ok(Printer {
            mode: o.mode,
            tag: o.tag,
            verbose: o.verbose,
            print_output: !json_to_stdout && !o.stdout_taken,
            files: o.files,
            out: BufWriter::with_capacity(64 * 1024, stdout()?),
            err: BufWriter::with_capacity(64 * 1024, io::stderr()),
            json,
            json_timeline: o.json_timeline,
            head: o.max_output.map(|m| m - m / 2),
            bar: o.bar,
            waiting: BTreeMap::new(),
            backlog: Backlog::new(o.tmpdir.map(std::path::Path::to_path_buf)),
            next_seq: 1,
            streaming: HashMap::new(),
            timelines: HashMap::new(),
            held: HashMap::new(),
            held_bytes: 0,
            broken: false,
            failure: None,
            json_name: o.json.map_or(String::new(), |p| p.display().to_string()),
            long_lines: HashSet::new(),
            live: None,
            deferred: Vec::new(),
            letting_through: false,
            through: HashMap::new(),
            early: HashMap::new(),
        })
    }

    /// Whether this printer can print a grouped job's output as it comes, when the engine
    /// lets it through for lack of room (`Builder::stream_when_full`): grouped and `-k`
    /// output (with `--tag` and `-v` too), unless the whole output is needed at the end
    /// (`--files`, `--max-output`, `--json`).
    pub fn lets_through(&self) -> bool {
        matches!(self.mode, OutputMode::Group | OutputMode::KeepOrder)
            && self.print_output
            && !self.files
            && self.head.is_none()
            && self.json.is_none()
    }

    fn streams_output(&self) -> bool {
        self.print_output
            && !self.files
            && matches!(
                self.mode,
                OutputMode::Ungroup | OutputMode::LineBuffer | OutputMode::KeepOrderLines
            )
    }

    /// Whether jobs must stream their output to us as it arrives.
    pub fn wants_stream(&self) -> bool {
        self.streams_output() || self.json_timeline
    }

    /// Whether jobs must keep their output for the end.
    pub fn wants_collect(&self) -> bool {
        self.json.is_some()
            || (self.print_output
                && !self.files
                && matches!(
                    self.mode,
                    OutputMode::Group | OutputMode::KeepOrder | OutputMode::KeepOrderLines
                ))
            || (self.streams_output() && self.head.is_some())
    }

    /// Runs `f` with the progress bar (if any) cleared, so that output and bar do not mix.
    fn suspended<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        match self.bar.clone() {
            Some(bar) => bar.suspend(|| f(self)),
            None => f(self),
        }
    }

    /// A failed write stops all output. A closed pipe (the reader left) is silent and ends
    /// herd with 141, as a shell's pipeline expects; anything else (a full disk, an I/O error)
    /// is said, naming where, and ends herd with 255.
    fn check(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if !self.broken {
                self.broken = true;
                if e.kind() != io::ErrorKind::BrokenPipe {
                    self.failure = Some(e.to_string());
                    self.message(&e.to_string());
                }
            }
        }
    }

    /// A chunk of streamed output.
    pub fn chunk(&mut self, id: JobId, info: &JobInfo, stream: Stream, data: &[u8]) {
        if self.letting_through {
            // Grouped jobs are not streamed: this is output let through for lack of room.
            self.let_through(id, info, stream, data);
            return;
        }
        if self.json_timeline {
            let segments = self.timelines.entry(id).or_default();
            json::add_segment(segments, stream, data.len() as u64);
        }
        if !self.streams_output() || self.broken {
            return;
        }
        if self.mode == OutputMode::KeepOrderLines && !self.hold(id, info, stream, data) {
            return;
        }
        self.stream_chunk(id, &info.tag, stream, data);
    }

    /// Output the engine let through: printed now if this job may print now (grouped: no
    /// other job is live; `-k`: its turn), else kept for when it may. Rendered as
    /// [`render_stream`] would: `-v`'s command line before the first stdout, `--tag`'s prefix
    /// at each line's start.
    fn let_through(&mut self, id: JobId, info: &JobInfo, stream: Stream, data: &[u8]) {
        if self.broken {
            return;
        }
        let its_turn = match self.mode {
            OutputMode::KeepOrder => info.seq == self.next_seq,
            _ => self.live.is_none_or(|live| live == id),
        };
        if its_turn {
            self.live = Some(id);
        }
        let first = !self.through.contains_key(&(id, stream));
        let at_line_start = self.through.entry((id, stream)).or_insert(true);
        let (verbose, tag) = (self.verbose, self.tag.then_some(&info.tag[..]));
        // Written straight to the stream (no copy of a chunk that may be large), or kept.
        let render = |w: &mut dyn Write, at_line_start: &mut bool| -> io::Result<()> {
            if first && verbose && stream == Stream::Stdout {
                w.write_all(&info.line)?;
                w.write_all(b"\n")?;
            }
            let Some(tag) = tag else {
                return w.write_all(data);
            };
            for piece in data.split_inclusive(|&b| b == b'\n') {
                if *at_line_start {
                    w.write_all(tag)?;
                }
                w.write_all(piece)?;
                *at_line_start = piece.ends_with(b"\n");
            }
            Ok(())
        };
        if !its_turn {
            let early = &mut self.early.entry(id).or_default()[stream as usize];
            let _ = render(early, at_line_start);
            return;
        }
        let mut state = *at_line_start;
        let r = self.suspended(|p| {
            let w = p.writer(stream);
            render(w, &mut state).and_then(|()| w.flush())
        });
        self.through.insert((id, stream), state);
        self.check(r.map_err(|e| named(e, stream_name(stream))));
    }

    /// A finished job's whole output: what was let through before its turn, then its
    /// collected output.
    fn write_whole(&mut self, info: &JobInfo, result: &JobResult) -> io::Result<()> {
        self.write_early(result.id)?;
        self.write_job(info, result)
    }

    /// Let-through output kept for `id` (its turn had not come).
    fn write_early(&mut self, id: JobId) -> io::Result<()> {
        let Some(early) = self.early.remove(&id) else {
            return Ok(());
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            let w = self.writer(stream);
            w.write_all(&early[stream as usize])
                .and_then(|()| w.flush())
                .map_err(|e| named(e, stream_name(stream)))?;
        }
        Ok(())
    }

    /// `-k --line-buffer`: keeps a chunk of a job whose turn has not come. Returns whether the
    /// chunk is to be printed now instead.
    fn hold(&mut self, id: JobId, info: &JobInfo, stream: Stream, data: &[u8]) -> bool {
        let next = self.next_seq;
        let held = self.held.entry(id).or_insert_with(|| Held {
            seq: info.seq,
            tag: info.tag.clone(),
            out: Vec::new(),
            err: Vec::new(),
            overflowed: false,
            live: false,
        });
        if held.overflowed {
            return false;
        }
        if held.live || info.seq == next {
            held.live = true;
            return true;
        }
        let size = held.out.len() + held.err.len() + data.len();
        if size > HELD_PER_JOB || self.held_bytes + data.len() > HELD_IN_ALL {
            // Too much to hold: the job prints whole from its capture when it finishes.
            self.held_bytes -= held.out.len() + held.err.len();
            held.overflowed = true;
            held.out = Vec::new();
            held.err = Vec::new();
            return false;
        }
        match stream {
            Stream::Stdout => held.out.extend_from_slice(data),
            Stream::Stderr => held.err.extend_from_slice(data),
        }
        self.held_bytes += data.len();
        false
    }

    /// Streams a chunk: all of it, or with `--max-output` only the head.
    fn stream_chunk(&mut self, id: JobId, tag: &[u8], stream: Stream, data: &[u8]) {
        let entry = self.streaming.entry((id, stream)).or_default();
        let take = match self.head {
            Some(head) => head.saturating_sub(entry.passed).min(data.len() as u64) as usize,
            None => data.len(),
        };
        entry.passed += take as u64;
        if take == 0 {
            return;
        }
        let r = self.suspended(|p| p.pass(id, tag, stream, &data[..take]));
        self.check(r.map_err(|e| named(e, stream_name(stream))));
    }

    fn writer(&mut self, stream: Stream) -> &mut dyn Write {
        match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Writes streamed bytes: as they are (`-u`), or whole lines only (`--line-buffer`, see
    /// [`LONG_LINE`] for a line too long to hold).
    fn pass(&mut self, id: JobId, tag: &[u8], stream: Stream, data: &[u8]) -> io::Result<()> {
        if self.mode == OutputMode::Ungroup {
            let w = self.writer(stream);
            return w.write_all(data).and_then(|_| w.flush());
        }
        let tag = self.tag.then_some(tag);
        let (out, err) = (&mut self.out, &mut self.err);
        let w: &mut dyn Write = match stream {
            Stream::Stdout => out,
            Stream::Stderr => err,
        };
        let entry = self.streaming.entry((id, stream)).or_default();
        let mut data = data;
        if entry.mid_line {
            // The rest of a long line: through to its newline, as it comes.
            let end = data.iter().position(|&b| b == b'\n');
            let (now, rest) = data.split_at(end.map_or(data.len(), |i| i + 1));
            w.write_all(now)?;
            entry.mid_line = end.is_none();
            data = rest;
        }
        match data.iter().rposition(|&b| b == b'\n') {
            Some(last_nl) => {
                let mut lines = std::mem::take(&mut entry.partial);
                lines.extend_from_slice(&data[..=last_nl]);
                write_lines(w, tag, &lines)?;
                entry.partial = data[last_nl + 1..].to_vec();
            }
            None => entry.partial.extend_from_slice(data),
        }
        if entry.partial.len() > LONG_LINE {
            write_lines(w, tag, &entry.partial)?;
            entry.partial = Vec::new();
            entry.mid_line = true;
            if self.long_lines.insert(id) {
                self.message(&format!(
                    "a job printed a line longer than {} MiB: it is printed in pieces as it \
                     comes, and other jobs' lines may appear inside it",
                    LONG_LINE >> 20
                ));
            }
        }
        self.writer(stream).flush()
    }

    /// A failed run that will be run again: what it streamed but did not print is dropped.
    pub fn discard(&mut self, id: JobId) {
        self.long_lines.remove(&id);
        if let Some(held) = self.held.remove(&id) {
            self.held_bytes -= held.out.len() + held.err.len();
        }
        self.streaming.remove(&(id, Stream::Stdout));
        self.streaming.remove(&(id, Stream::Stderr));
        self.timelines.remove(&id);
        self.early.remove(&id);
        self.through.remove(&(id, Stream::Stdout));
        self.through.remove(&(id, Stream::Stderr));
        if self.live == Some(id) {
            self.live = None;
        }
    }

    /// `--resume`: a job that will not run. Under `-k` the jobs after it need not wait for it.
    pub fn skip(&mut self, seq: u64) {
        if matches!(
            self.mode,
            OutputMode::KeepOrder | OutputMode::KeepOrderLines
        ) {
            self.waiting.insert(seq, None);
            self.release_in_order();
        }
    }

    /// A job finished. Its JSON record (if any) is written, then its output.
    pub fn finish(&mut self, info: JobInfo, result: JobResult) {
        // No more of its output will be let through.
        self.through.remove(&(result.id, Stream::Stdout));
        self.through.remove(&(result.id, Stream::Stderr));
        let segments = self.timelines.remove(&result.id).unwrap_or_default();
        if self.json.is_some() {
            let form = if self.json_timeline {
                OutputForm::Timeline(&segments)
            } else {
                OutputForm::Separate
            };
            let json = self.json.as_mut().expect("json");
            let r = json::write_record(
                &mut *json,
                info.seq,
                info.remote_host(),
                &info.attempts,
                &info.argv,
                &result,
                form,
            )
            .and_then(|()| json.flush())
            .map_err(|e| named(e, &format!("--json {}", self.json_name)));
            self.check(r);
        }
        if !self.print_output || self.broken {
            self.discard(result.id);
            return;
        }
        let r = self.suspended(|p| match p.mode {
            OutputMode::Ungroup | OutputMode::LineBuffer if p.files => p.write_job(&info, &result),
            OutputMode::Ungroup | OutputMode::LineBuffer => p.finish_streamed(&info, &result),
            OutputMode::Group => p.finish_grouped(info, result),
            OutputMode::KeepOrder => p.keep_in_order(info, result),
            OutputMode::KeepOrderLines => {
                let held = p.held.remove(&result.id);
                if held.as_ref().is_some_and(|h| h.live) {
                    // Its turn came while it ran: the rest of its lines, then the next job.
                    p.finish_streamed(&info, &result)?;
                    p.next_seq = p.next_seq.max(info.seq + 1);
                } else {
                    if let Some(h) = held {
                        p.held_bytes -= h.out.len() + h.err.len();
                    }
                    return p.keep_in_order(info, result);
                }
                p.release_in_order();
                Ok(())
            }
        });
        self.check(r);
    }

    /// Grouped: a finished job prints now, unless another job's output is going through live;
    /// then it waits for that job's end.
    fn finish_grouped(&mut self, info: JobInfo, result: JobResult) -> io::Result<()> {
        if self.live.is_some_and(|live| live != result.id) {
            self.deferred.push((info, result));
            return Ok(());
        }
        self.live = None;
        let deferred = std::mem::take(&mut self.deferred);
        for (info, result) in std::iter::once((info, result)).chain(deferred) {
            self.write_whole(&info, &result)?;
        }
        Ok(())
    }

    /// `-k`: a finished job prints now if its turn has come, else it is parked.
    fn keep_in_order(&mut self, info: JobInfo, result: JobResult) -> io::Result<()> {
        if self.live == Some(result.id) {
            self.live = None;
        }
        if info.seq == self.next_seq {
            self.write_whole(&info, &result)?;
            self.next_seq += 1;
        } else {
            let seq = info.seq;
            let waiting = match self.park(&info, &result) {
                Ok(parked) => Waiting::Parked(parked),
                // The backlog's disk is full (or gone): keep the result as it is.
                Err(_) => Waiting::Kept(Box::new((info, result))),
            };
            self.waiting.insert(seq, Some(waiting));
        }
        self.release_in_order();
        Ok(())
    }

    /// `-k`: writes the finished jobs whose turn has come; with `--line-buffer`, the running
    /// job whose turn has come then prints what it held and goes on live.
    fn release_in_order(&mut self) {
        while let Some(entry) = self.waiting.remove(&self.next_seq) {
            self.next_seq += 1;
            if let Some(parked) = entry {
                let r = self.suspended(|p| p.unpark(parked));
                self.check(r);
            }
            if self.broken {
                return;
            }
        }
        let next = self.next_seq;
        let Some((&id, held)) = self
            .held
            .iter_mut()
            .find(|(_, h)| h.seq == next && !h.live && !h.overflowed)
        else {
            return;
        };
        held.live = true;
        let (tag, out, err) = (
            std::mem::take(&mut held.tag),
            std::mem::take(&mut held.out),
            std::mem::take(&mut held.err),
        );
        held.tag = tag.clone();
        self.held_bytes -= out.len() + err.len();
        self.stream_chunk(id, &tag, Stream::Stdout, &out);
        self.stream_chunk(id, &tag, Stream::Stderr, &err);
    }

    /// The end of a streamed job: its unfinished last line, and with `--max-output` the part
    /// held back (the cut mark and the tail).
    fn finish_streamed(&mut self, info: &JobInfo, result: &JobResult) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let key = (result.id, stream);
            if self.head.is_some() {
                let output = result.output(stream);
                let rest = match with_cut_mark(output, stream)? {
                    Some(marked) => marked,
                    None => output.to_vec()?,
                };
                let passed = self.streaming.get(&key).map_or(0, |s| s.passed);
                let from = (passed as usize).min(rest.len());
                self.pass(result.id, &info.tag, stream, &rest[from..])
                    .map_err(|e| named(e, stream_name(stream)))?;
            }
            self.long_lines.remove(&result.id);
            let state = self.streaming.remove(&key).unwrap_or_default();
            self.write_rest(info, stream, &state.partial)
                .map_err(|e| named(e, stream_name(stream)))?;
        }
        Ok(())
    }

    fn write_rest(&mut self, info: &JobInfo, stream: Stream, partial: &[u8]) -> io::Result<()> {
        if partial.is_empty() {
            return Ok(());
        }
        let tag = self.tag.then_some(&info.tag[..]);
        let w = self.writer(stream);
        write_lines(w, tag, partial)?;
        w.flush()
    }

    /// One job's collected output, as one block per stream (with `--files`, its file's name).
    fn write_job(&mut self, info: &JobInfo, result: &JobResult) -> io::Result<()> {
        self.write_job_to(info, result, Stream::Stdout)
            .map_err(|e| named(e, "stdout"))?;
        self.write_job_to(info, result, Stream::Stderr)
            .map_err(|e| named(e, "stderr"))
    }

    /// [`write_job`](Self::write_job)'s part for one stream (stdout also gets `-v`'s command
    /// line and `--files`' names).
    fn write_job_to(
        &mut self,
        info: &JobInfo,
        result: &JobResult,
        which: Stream,
    ) -> io::Result<()> {
        let look = self.look();
        match which {
            Stream::Stdout => {
                render_stream(&mut self.out, look, info, result, which)?;
                self.out.flush()
            }
            Stream::Stderr => {
                render_stream(&mut self.err, look, info, result, which)?;
                self.err.flush()
            }
        }
    }

    fn look(&self) -> Look {
        Look {
            verbose: self.verbose,
            tag: self.tag,
            files: self.files,
        }
    }

    /// `-k`: a finished job whose turn has not come waits as the bytes it will print.
    fn park(&mut self, info: &JobInfo, result: &JobResult) -> io::Result<Parked> {
        let look = self.look();
        let none = [Vec::new(), Vec::new()];
        let early = self.early.get(&result.id).unwrap_or(&none);
        let backlog = &mut self.backlog;
        let mut piece = |stream: Stream| {
            let large = result.output(stream).is_spilled();
            let early = &early[stream as usize];
            backlog.park(large, |w| {
                w.write_all(early)?;
                render_stream(w, look, info, result, stream)
            })
        };
        let out = piece(Stream::Stdout)?;
        let err = match piece(Stream::Stderr) {
            Ok(err) => err,
            Err(e) => {
                self.backlog.forget(out);
                return Err(e);
            }
        };
        self.early.remove(&result.id);
        Ok(Parked { out, err })
    }

    /// Prints a waiting job.
    fn unpark(&mut self, waiting: Waiting) -> io::Result<()> {
        let parked = match waiting {
            Waiting::Parked(parked) => parked,
            Waiting::Kept(kept) => {
                let (info, result) = *kept;
                return self.write_whole(&info, &result);
            }
        };
        self.backlog
            .print(parked.out, &mut self.out)
            .and_then(|()| self.out.flush())
            .map_err(|e| named(e, "stdout"))?;
        self.backlog
            .print(parked.err, &mut self.err)
            .and_then(|()| self.err.flush())
            .map_err(|e| named(e, "stderr"))
    }

    /// A message from herd itself, on stderr, in order with job output.
    pub fn message(&mut self, text: &str) {
        self.suspended(|p| {
            let _ = p.err.flush();
            let _ = writeln!(p.err, "herd: {text}");
            let _ = p.err.flush();
        });
    }

    /// The end of the run: under `-k`, jobs still waiting (behind a job that never came, when
    /// the run was stopped) are written in order.
    pub fn flush(&mut self) {
        self.live = None;
        for (info, result) in std::mem::take(&mut self.deferred) {
            let r = self.suspended(|p| p.finish_grouped(info, result));
            self.check(r);
        }
        for id in self.early.keys().copied().collect::<Vec<_>>() {
            // A job stopped before it finished: what it printed still goes out.
            let r = self.suspended(|p| p.write_early(id));
            self.check(r);
        }
        let waiting = std::mem::take(&mut self.waiting);
        for parked in waiting.into_values().flatten() {
            if self.broken {
                break;
            }
            let r = self.suspended(|p| p.unpark(parked));
            self.check(r);
        }
        let r = self.out.flush();
        self.check(r.map_err(|e| named(e, "stdout")));
        let _ = self.err.flush();
        if let Some(json) = self.json.as_mut() {
            let _ = json.flush();
        }
    }
}
