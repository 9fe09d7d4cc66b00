//! `--pipe` and `--pipepart`: input cut into blocks of whole records, one block per job's
//! stdin.
//!
//! `--pipe` reads a stream: a block is about `--block` bytes, what was read less the last,
//! partial record, which starts the next block (GNU parallel's rule). A record longer than a
//! block makes its block longer, never cut. Records end with `--recend` (a newline by
//! default) and, when `--recstart` is given, the next starts with it: a block is cut only
//! between the two.
//!
//! `--pipepart` never reads a file through herd: each block's end is found by reading a little
//! at its nominal end and moving on to the next record boundary, and the job's stdin is that
//! byte range of the file ([`herd_engine::Stdin::FileRange`]), which the engine moves from the
//! page cache into the job's pipe.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// How input is cut.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    /// `--block`: the size to aim at.
    pub size: usize,
    /// `--recend`: what ends a record (empty: anything may end one).
    pub recend: Vec<u8>,
    /// `--recstart`: what starts a record (empty: anything may start one).
    pub recstart: Vec<u8>,
    /// `-N`: exactly this many records a block (the last may have fewer), whatever its size.
    pub records: Option<usize>,
    /// `-L n` without `-N`: a record is `n` lines (with `-N m`, `records` is `m` x `n`).
    pub lines_per_record: Option<usize>,
    /// `--pipepart --block -N`: the size is the files' total size over N blocks per job slot.
    pub blocks_per_slot: Option<usize>,
    /// `--pipepart`: the files are cut in place, not read.
    pub part: bool,
    /// `--header`: what starts the input is given to every job before its block.
    pub header: Option<Header>,
    /// `--round-robin`: blocks are dealt to one long-lived job per slot.
    pub round_robin: bool,
    /// `--regexp`: `(?:RECEND)(RECSTART)`; a block may be cut where group 1 starts (in place
    /// of `recend`/`recstart` as strings).
    pub pattern: Option<regex::bytes::Regex>,
    /// `--rrs`: the separators are taken out of each block.
    pub remove_separators: Option<Separators>,
    /// `--cat`, `--fifo`: each job gets its block as a file (see blockfile.rs).
    pub as_file: Option<crate::blockfile::AsFile>,
    /// `--tee`: nothing is cut; every job gets the whole input (see tee.rs).
    pub tee: bool,
    /// `--group-by`: the input is marked where groups start (see groupby.rs).
    pub group_by: Option<crate::groupby::GroupBy>,
    /// `--shard`, `--bin`: lines routed to one job per slot by a column (see shard.rs).
    pub shard: Option<crate::shard::ShardSpec>,
    /// `--block-timeout`: a block is given out when reading it took this long (see timed.rs).
    pub block_timeout: Option<std::time::Duration>,
}

/// `--rrs`: what is taken out of a block, in GNU parallel's order: every --recend followed by
/// a --recstart (the boundaries between its records), then a --recstart at the block's start
/// and a --recend at its end.
#[derive(Debug, Clone)]
pub enum Separators {
    /// `recend` and `recstart` as strings.
    Strings,
    /// `--regexp`: the boundaries are [`BlockSpec::pattern`]'s matches; `start` and `end`
    /// match a --recstart at the start and a --recend at the end.
    Patterns {
        start: regex::bytes::Regex,
        end: regex::bytes::Regex,
    },
}

impl Separators {
    pub fn patterns(recend: &str, recstart: &str) -> Result<Separators, String> {
        let compile = |pattern: String| {
            regex::bytes::Regex::new(&pattern).map_err(|e| {
                let why = crate::options::regex_problem(&e);
                format!("invalid --recend '{recend}' or --recstart '{recstart}' for --rrs: {why}")
            })
        };
        Ok(Separators::Patterns {
            start: compile(format!("\\A(?:{recstart})"))?,
            end: compile(format!("(?:{recend})\\z"))?,
        })
    }
}

/// `--rrs`: `block` without its record separators.
fn remove_separators(block: Vec<u8>, spec: &BlockSpec) -> Vec<u8> {
    let Some(how) = &spec.remove_separators else {
        return block;
    };
    let (end, start) = (&spec.recend[..], &spec.recstart[..]);
    let mut out = match (how, &spec.pattern) {
        (Separators::Patterns { .. }, Some(pair)) => {
            pair.replace_all(&block, &b""[..]).into_owned()
        }
        _ => {
            let pair = [end, start].concat();
            if pair.is_empty() {
                block
            } else {
                let mut out = Vec::with_capacity(block.len());
                let mut at = 0;
                for i in memchr::memmem::find_iter(&block, &pair) {
                    out.extend_from_slice(&block[at..i]);
                    at = i + pair.len();
                }
                out.extend_from_slice(&block[at..]);
                out
            }
        }
    };
    let (head, tail) = match how {
        Separators::Strings => (
            (!start.is_empty() && out.starts_with(start)).then_some(start.len()),
            (!end.is_empty() && out.ends_with(end)).then_some(end.len()),
        ),
        Separators::Patterns { start, end } => (
            start.find(&out).map(|m| m.end()),
            end.find(&out).map(|m| out.len() - m.start()),
        ),
    };
    if let Some(n) = head {
        out.drain(..n);
    }
    if let Some(n) = tail {
        out.truncate(out.len().saturating_sub(n));
    }
    out
}

/// `--regexp`: the pattern of a record boundary, --recend then --recstart (as regular
/// expressions), the cut going between the two.
pub fn record_pattern(recend: &str, recstart: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(&format!("(?:{recend})({recstart})")).map_err(|e| {
        let why = crate::options::regex_problem(&e);
        format!("invalid --recend '{recend}' or --recstart '{recstart}' for --regexp: {why}")
    })
}

/// `--regexp`: where `data` may be cut, in order (never at its very start).
fn pattern_cuts<'a>(
    pattern: &'a regex::bytes::Regex,
    data: &'a [u8],
) -> impl Iterator<Item = usize> + 'a {
    pattern
        .captures_iter(data)
        .filter_map(|c| c.get(1).map(|m| m.start()))
        .filter(|&cut| cut > 0)
}

/// `--header` with `--pipe`/`--pipepart`: how the header at the start of the input is found.
#[derive(Debug, Clone)]
pub enum Header {
    /// This many lines (`--header 2`; `--header :` is one).
    Lines(usize),
    /// What this regular expression matches at the very start.
    Regex(regex::bytes::Regex),
}

impl Header {
    /// GNU parallel's values: a number of lines, `:` for one, else a regular expression; `0`
    /// is no header.
    pub fn parse(text: &str) -> Result<Option<Header>, String> {
        Ok(match text {
            "0" => None,
            ":" => Some(Header::Lines(1)),
            _ => match text.parse::<usize>() {
                Ok(n) => Some(Header::Lines(n)),
                Err(_) => Some(Header::Regex(
                    regex::bytes::Regex::new(&format!("\\A(?:{text})")).map_err(|e| {
                        let why = crate::options::regex_problem(&e);
                        format!("invalid value '{text}' for --header: {why}")
                    })?,
                )),
            },
        })
    }

    /// The header's length at the start of `data`, once `data` is enough to tell (`eof`: it
    /// is all there is). A regular expression is matched against what was read first.
    fn length(&self, data: &[u8], eof: bool) -> Option<usize> {
        match self {
            Header::Lines(n) => match memchr::memchr_iter(b'\n', data).nth(n.max(&1) - 1) {
                Some(i) => Some(i + 1),
                None => eof.then_some(data.len()),
            },
            Header::Regex(re) => Some(re.find(data).map_or(0, |m| m.end())),
        }
    }
}

/// The header at the start of `file`, read a window at a time.
fn file_header(file: &File, len: u64, header: &Header) -> io::Result<Vec<u8>> {
    let mut data = vec![0; (len as usize).min(1 << 20)];
    loop {
        let n = read_full_at(file, &mut data, 0)?;
        data.truncate(n);
        let eof = n as u64 >= len;
        if let Some(h) = header.length(&data, eof) {
            data.truncate(h);
            return Ok(data);
        }
        data.resize(n * 2, 0);
    }
}

/// Where `--pipe` and `--pipepart` jobs get their stdin from.
pub enum BlockSource {
    /// `--pipe`: blocks read from a stream.
    Stream(Blocks<Box<dyn Read + Send>>),
    /// `--pipepart`: byte ranges of files.
    Parts(Parts),
    /// `--pipe --round-robin`: blocks dealt to one job per slot.
    Dealt(crate::deal::Dealer),
    /// `--pipe --shard`, `--bin`: lines routed to one job per slot.
    Routed(crate::shard::Router),
}

/// The block source for `sources` (what -a, :::: or standard input gave): `--pipe` reads
/// standard input or one file; `--pipepart` cuts files.
pub fn open_source(
    sources: &[crate::input::Source],
    spec: &BlockSpec,
    slots: usize,
) -> Result<BlockSource, String> {
    use crate::input::SourceSpec;
    let files: Option<Vec<PathBuf>> = sources
        .iter()
        .map(|s| match &s.spec {
            SourceSpec::File(p) if p.as_os_str() != "-" => Some(p.clone()),
            _ => None,
        })
        .collect();
    if spec.part {
        return match files {
            Some(files) if !files.is_empty() => {
                Ok(BlockSource::Parts(Parts::open(&files, spec, slots)?))
            }
            _ => Err(
                "--pipepart cuts files given with -a or ::::, not standard input or \
                      values (read a stream with --pipe)"
                    .into(),
            ),
        };
    }
    let mut data: Box<dyn Read + Send> = match (sources, files.as_deref()) {
        (_, Some([path])) => {
            Box::new(File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
        }
        ([source], _) if matches!(source.spec, SourceSpec::Stdin | SourceSpec::File(_)) => {
            widen_stdin_pipe();
            Box::new(crate::input::stdin_said("the blocks' data"))
        }
        _ => {
            return Err(
                "--pipe reads standard input, or one file given with -a or ::::, not values".into(),
            )
        }
    };
    if let Some(shard) = &spec.shard {
        let router = crate::shard::Router::new(data, shard.clone(), slots)?;
        return Ok(BlockSource::Routed(router));
    }
    if let Some(g) = &spec.group_by {
        let header_lines = match spec.header {
            Some(Header::Lines(n)) => n,
            _ => 0,
        };
        let (column, colsep, marker) = (g.column.clone(), g.colsep.clone(), g.marker.clone());
        data = Box::new(crate::groupby::Marked::new(
            data,
            column,
            colsep,
            marker,
            header_lines,
        ));
    }
    let mut deadline = None;
    if let Some(timeout) = spec.block_timeout {
        let timed = crate::timed::TimedInput::new(data, timeout)
            .map_err(|e| format!("cannot start the input thread: {e}"))?;
        deadline = Some(timed.deadline());
        data = Box::new(timed);
    }
    let mut blocks = Blocks::new(data, spec.clone());
    if let Some(d) = deadline {
        blocks = blocks.with_deadline(d);
    }
    Ok(if spec.round_robin {
        BlockSource::Dealt(crate::deal::Dealer::new(blocks, slots, spec.size))
    } else {
        BlockSource::Stream(blocks)
    })
}

/// When standard input is a pipe, grows it to 1 MiB (the default limit for unprivileged
/// users), from 64 KiB: the writer on the far side then fills 16 times more between two of
/// herd's reads, and the two processes hand the CPU back and forth 16 times less (`cat 2G |
/// herd --pipe --block 16M wc -l` ran 1.3 to 1.7 times faster here). Best effort: not a
/// pipe, or past the per-user limit on pipe memory, it stays as it is.
fn widen_stdin_pipe() {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{fcntl, FcntlArg};
        let _ = fcntl(io::stdin(), FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
}

impl BlockSource {
    /// The next job's stdin, or `None` when the input is all given out; the error says what
    /// could not be read.
    pub fn next_stdin(&mut self) -> Result<Option<herd_engine::Stdin>, String> {
        self.next_input()
            .map_err(|e| format!("cannot read the input: {e}"))
    }

    fn next_input(&mut self) -> io::Result<Option<herd_engine::Stdin>> {
        match self {
            BlockSource::Stream(blocks) => {
                let Some(block) = blocks.next_bare_block()? else {
                    return Ok(None);
                };
                Ok(Some(headed(
                    blocks.header.as_ref(),
                    herd_engine::Stdin::bytes(block),
                )))
            }
            BlockSource::Parts(parts) => parts.next_part(),
            BlockSource::Dealt(dealer) => dealer.next_stdin(),
            BlockSource::Routed(router) => router.next_stdin(),
        }
    }

    /// `--shard`, `--bin`: where the routing thread says what went wrong, for the run's end.
    pub fn failure(&self) -> Option<std::sync::Arc<std::sync::Mutex<Option<String>>>> {
        match self {
            BlockSource::Routed(router) => Some(router.failure.clone()),
            _ => None,
        }
    }

    /// `--round-robin`: how far the dealing thread got, for the run's end.
    pub fn dealt(&self) -> Option<std::sync::Arc<std::sync::Mutex<crate::deal::Dealt>>> {
        match self {
            BlockSource::Dealt(dealer) => Some(dealer.state.clone()),
            _ => None,
        }
    }
}

/// A job's input with `--header`'s header first: the header is shared by every job, never
/// copied into each block.
fn headed(
    header: Option<&std::sync::Arc<Vec<u8>>>,
    input: herd_engine::Stdin,
) -> herd_engine::Stdin {
    match header {
        Some(header) if !header.is_empty() => {
            herd_engine::Stdin::Concat(vec![herd_engine::Stdin::Bytes(header.clone()), input])
        }
        _ => input,
    }
}

/// `--pipepart`: regular files (anything seekable) cut into ranges of whole records.
pub struct Parts {
    /// The files left, the first being cut: its path, handle and size.
    files: std::collections::VecDeque<(PathBuf, File, u64)>,
    /// `--header`: the first file's header, given before each of its parts.
    header: Option<std::sync::Arc<Vec<u8>>>,
    /// Where the next range of the first file starts.
    at: u64,
    size: u64,
    spec: BlockSpec,
}

impl Parts {
    /// Opens the files; `slots` (the number of job slots) sets the size for `--block -N`.
    pub fn open(paths: &[PathBuf], spec: &BlockSpec, slots: usize) -> Result<Parts, String> {
        let mut files = std::collections::VecDeque::new();
        for path in paths {
            let cannot = |e: io::Error| format!("cannot read {}: {e}", path.display());
            // Checked before opening: opening a FIFO would wait for a writer.
            let kind = std::fs::metadata(path).map_err(cannot)?.file_type();
            #[cfg(unix)]
            let device = std::os::unix::fs::FileTypeExt::is_block_device(&kind);
            #[cfg(not(unix))]
            let device = false;
            if !kind.is_file() && !device {
                return Err(format!(
                    "--pipepart cuts a regular file in place; {} is not one (read it with --pipe)",
                    path.display()
                ));
            }
            let mut file = File::open(path).map_err(cannot)?;
            // The size by seeking, which a block device has too (its metadata says 0).
            let size = file.seek(SeekFrom::End(0)).map_err(cannot)?;
            files.push_back((path.clone(), file, size));
        }
        let total: u64 = files.iter().map(|f| f.2).sum();
        let size = match spec.blocks_per_slot {
            // GNU parallel's size: one more than an even share, so the last part is the short one.
            Some(n) => 1 + total / (slots.max(1) * n.max(1)) as u64,
            None => spec.size.max(1) as u64,
        };
        Ok(Parts {
            files,
            header: None,
            at: 0,
            size,
            spec: spec.clone(),
        })
    }

    fn next_part(&mut self) -> io::Result<Option<herd_engine::Stdin>> {
        loop {
            let Some((path, file, len)) = self.files.front() else {
                return Ok(None);
            };
            if let (Some(header), 0) = (&self.spec.header, self.at) {
                // Each file starts with its header, given to each of its parts.
                let found = file_header(file, *len, header)?;
                self.at = found.len() as u64;
                self.header = Some(std::sync::Arc::new(found));
            }
            if self.at >= *len {
                self.files.pop_front();
                self.at = 0;
                continue;
            }
            let start = self.at;
            let nominal = start.saturating_add(self.size);
            let end = if nominal >= *len {
                *len
            } else {
                boundary_at_or_after(file, start, nominal, *len, &self.spec)?
            };
            self.at = end;
            let part = if self.spec.remove_separators.is_some() {
                // --rrs: the part is changed, so it is read.
                let mut data = vec![0; (end - start) as usize];
                let got = read_full_at(file, &mut data, start)?;
                data.truncate(got);
                herd_engine::Stdin::bytes(remove_separators(data, &self.spec))
            } else {
                herd_engine::Stdin::file_range(path, start, end - start)
            };
            return Ok(Some(headed(self.header.as_ref(), part)));
        }
    }
}

/// The first record boundary of `file` at or after `from` (and past `start`, so a block is
/// never empty), reading a window at a time; the file's end when there is none.
fn boundary_at_or_after(
    file: &File,
    start: u64,
    from: u64,
    len: u64,
    spec: &BlockSpec,
) -> io::Result<u64> {
    // The boundary is usually within a record of the nominal end: the first window is small
    // (small blocks must not cost a large read each), and each next one twice as large.
    const FIRST_WINDOW: usize = 4 * 1024;
    const LARGEST_WINDOW: usize = 1 << 20;
    let grow = |buf: &mut Vec<u8>| {
        if buf.len() < LARGEST_WINDOW {
            buf.resize(buf.len() * 2, 0);
        }
    };
    if let Some(pattern) = &spec.pattern {
        // A window at a time from the nominal end, a little of each read again with the next
        // in case a boundary lies across the seam.
        let mut at = from.max(start);
        let mut buf = vec![0; FIRST_WINDOW];
        while at < len {
            let n = read_full_at(file, &mut buf, at)?;
            if n == 0 {
                break;
            }
            if let Some(cut) = pattern_cuts(pattern, &buf[..n]).next() {
                return Ok(at + cut as u64);
            }
            if at + (n as u64) >= len {
                break;
            }
            at += (n - n / 4) as u64;
            grow(&mut buf);
        }
        return Ok(len);
    }
    let pair = [&spec.recend[..], &spec.recstart[..]].concat();
    if pair.is_empty() {
        return Ok(from);
    }
    let mut at = from.saturating_sub(pair.len() as u64 - 1).max(start);
    let mut buf = vec![0; FIRST_WINDOW.max(2 * pair.len())];
    while at < len {
        let want = buf.len().min((len - at) as usize);
        let n = read_full_at(file, &mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        for i in memchr::memmem::find_iter(&buf[..n], &pair) {
            let cut = at + (i + spec.recend.len()) as u64;
            if cut > start {
                return Ok(cut);
            }
        }
        if at + n as u64 >= len {
            break;
        }
        // The next window overlaps this one by a pair less a byte: a pair across the seam
        // is found whole.
        at += (n - (pair.len() - 1)).max(1) as u64;
        grow(&mut buf);
    }
    Ok(len)
}

/// Reads `buf.len()` bytes at `offset`, fewer only at the end of the file.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    use std::os::unix::fs::FileExt;
    #[cfg(windows)]
    use std::os::windows::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        #[cfg(unix)]
        let n = file.read_at(&mut buf[got..], offset + got as u64);
        #[cfg(windows)]
        let n = file.seek_read(&mut buf[got..], offset + got as u64);
        match n {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `--block`'s default, as GNU parallel's.
pub const DEFAULT_BLOCK: usize = 1 << 20;

/// The blocks of a stream.
pub struct Blocks<R> {
    reader: R,
    spec: BlockSpec,
    /// Read and not yet given out: the start of the next block.
    buf: Vec<u8>,
    eof: bool,
    /// `--header`: read before the first block (`None` until then), then before every block.
    header: Option<std::sync::Arc<Vec<u8>>>,
    /// `--block-timeout`: when the block being read is due (the reader times out then), and
    /// whether it did.
    deadline: Option<crate::timed::Deadline>,
    timed_out: bool,
}

impl<R: Read> Blocks<R> {
    pub fn new(reader: R, spec: BlockSpec) -> Blocks<R> {
        Blocks {
            reader,
            spec,
            buf: Vec::new(),
            eof: false,
            header: None,
            deadline: None,
            timed_out: false,
        }
    }

    /// `--block-timeout`: `reader` times out at `deadline`, restarted at each block.
    pub fn with_deadline(mut self, deadline: crate::timed::Deadline) -> Blocks<R> {
        self.deadline = Some(deadline);
        self
    }

    fn restart_deadline(&mut self) {
        self.timed_out = false;
        if let Some(d) = &self.deadline {
            d.restart();
        }
    }

    /// The next block, its header (if any) first, in one buffer (`--round-robin` sends a new
    /// job's first block so).
    pub fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        let block = self.next_bare_block()?;
        Ok(match (block, self.header.as_deref()) {
            (Some(block), Some(header)) if !header.is_empty() => {
                Some([&header[..], &block].concat())
            }
            (block, _) => block,
        })
    }

    /// The next block without the header (`--round-robin` gives a job the header once).
    pub fn next_bare_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.header.is_none() {
            self.header = Some(std::sync::Arc::new(self.read_header()?));
        }
        let block = self.next_records_block()?;
        Ok(block.map(|b| remove_separators(b, &self.spec)))
    }

    /// Takes `--header`'s header off the start of the input.
    fn read_header(&mut self) -> io::Result<Vec<u8>> {
        let Some(header) = self.spec.header.clone() else {
            return Ok(Vec::new());
        };
        let mut want = self.spec.size.max(64 * 1024);
        loop {
            self.fill(want)?;
            if let Some(len) = header.length(&self.buf, self.eof) {
                return Ok(self.buf.drain(..len).collect());
            }
            want = want.max(self.buf.len() * 2);
        }
    }

    /// Reads until `buf` holds `want` bytes or the input ends (into the buffer's spare room:
    /// nothing is zeroed or copied twice).
    /// With `--block-timeout`, it may return sooner, with something read, when the block is
    /// due (`timed_out`).
    fn fill(&mut self, want: usize) -> io::Result<()> {
        while self.buf.len() < want && !self.eof {
            let need = (want - self.buf.len()) as u64;
            // Exactly: read_to_end would grow a full buffer to twice its size.
            self.buf.reserve_exact(need as usize);
            match (&mut self.reader).take(need).read_to_end(&mut self.buf) {
                Ok(got) if (got as u64) < need => self.eof = true,
                Ok(_) => {}
                // What was read before the deadline stays in the buffer.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if !self.buf.is_empty() {
                        self.timed_out = true;
                        return Ok(());
                    }
                    // Nothing to give out yet: a new period.
                    self.restart_deadline();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next block (without the header), or `None` at the end of the input.
    fn next_records_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(n) = self.spec.records {
            return self.next_records(n);
        }
        let size = self.spec.size.max(1);
        self.restart_deadline();
        self.fill(size)?;
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            if std::mem::take(&mut self.timed_out) && self.buf.len() < size {
                // --block-timeout: the whole records read so far, if there are any.
                let cut = match self.spec.lines_per_record {
                    Some(n) => last_lines_boundary(&self.buf, n),
                    None => last_boundary(&self.buf, &self.spec),
                };
                if let Some(cut) = cut {
                    let rest = self.buf.split_off(cut);
                    return Ok(Some(std::mem::replace(&mut self.buf, rest)));
                }
                self.restart_deadline();
                self.fill(size)?;
                continue;
            }
            if self.eof && self.buf.len() <= size {
                // The rest is the last block, whatever it ends with; with -L, its whole
                // records are one block and what is left another (GNU parallel cuts so).
                let cut = self
                    .spec
                    .lines_per_record
                    .and_then(|n| last_lines_boundary(&self.buf, n));
                let rest = match cut {
                    Some(cut) => self.buf.split_off(cut),
                    None => Vec::new(),
                };
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            let within = size.min(self.buf.len());
            // The last boundary within the block's size; else the end of the record that
            // crosses it (a record longer than a block is kept whole).
            let cut = match self.spec.lines_per_record {
                Some(n) => last_lines_boundary(&self.buf[..within], n)
                    .or_else(|| nth_newline_end(&self.buf, n)),
                None => last_boundary(&self.buf[..within], &self.spec)
                    .or_else(|| first_boundary_from(&self.buf, within, &self.spec)),
            };
            if let Some(cut) = cut {
                let rest = self.buf.split_off(cut);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.eof {
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            let more = self.buf.len().saturating_mul(2);
            self.fill(more)?;
        }
    }
}

impl<R: Read> Blocks<R> {
    /// `-N n`: the next `n` records, reading `--block` bytes at a time until they are in.
    fn next_records(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        let step = self.spec.size.max(1);
        let mut want = step;
        loop {
            self.fill(want)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            if let Some(cut) = nth_boundary(&self.buf, n, &self.spec) {
                let rest = self.buf.split_off(cut);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.eof {
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            want = self.buf.len().saturating_add(step);
        }
    }
}

/// The end of the `n`th record in `data`, if `n` records are there. Counted as GNU parallel
/// counts them: each search for a separator starts a byte past the last one found, the first
/// at byte 1, so a separator at the very start ends no record of its own (`printf '\na\n' |
/// parallel --pipe -N1` gives one job).
fn nth_boundary(data: &[u8], n: usize, spec: &BlockSpec) -> Option<usize> {
    if let Some(pattern) = &spec.pattern {
        return pattern_cuts(pattern, data).nth(n.max(1) - 1);
    }
    let pair = [&spec.recend[..], &spec.recstart[..]].concat();
    if pair.is_empty() {
        // No records: every byte may end one.
        return (data.len() >= n).then_some(n);
    }
    let mut found = 0;
    for _ in 0..n.max(1) {
        let from = found + 1;
        found = from + memchr::memmem::find(data.get(from..)?, &pair)?;
    }
    Some(found + spec.recend.len())
}

/// `-L n` without `-N`: where the last run of whole `n`-line records in `data` ends (lines end
/// with a newline whatever --recend says, as in GNU parallel).
fn last_lines_boundary(data: &[u8], n: usize) -> Option<usize> {
    let lines = memchr::memchr_iter(b'\n', data).count();
    let whole = lines - lines % n.max(1);
    (whole > 0).then(|| nth_newline_end(data, whole))?
}

/// The end of the `n`th line in `data`, if there are `n` lines.
fn nth_newline_end(data: &[u8], n: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', data)
        .nth(n.max(1) - 1)
        .map(|i| i + 1)
}

/// The first record boundary at or after `from` in `data`.
fn first_boundary_from(data: &[u8], from: usize, spec: &BlockSpec) -> Option<usize> {
    if let Some(pattern) = &spec.pattern {
        return pattern_cuts(pattern, data).find(|&cut| cut >= from);
    }
    let pair = [&spec.recend[..], &spec.recstart[..]].concat();
    if pair.is_empty() {
        return (data.len() > from).then_some(data.len());
    }
    let start = from.saturating_sub(pair.len() - 1);
    let i = start + memchr::memmem::find(&data[start..], &pair)?;
    let cut = i + spec.recend.len();
    (cut > 0).then_some(cut)
}

/// Where the last record boundary in `data` is (a cut there leaves whole records before it),
/// if there is one past the start.
fn last_boundary(data: &[u8], spec: &BlockSpec) -> Option<usize> {
    if let Some(pattern) = &spec.pattern {
        return pattern_cuts(pattern, data).last();
    }
    let (end, start) = (&spec.recend[..], &spec.recstart[..]);
    let pair = [end, start].concat();
    if pair.is_empty() {
        return (!data.is_empty()).then_some(data.len());
    }
    // The last occurrence of recend+recstart: the cut goes between the two (not at the very
    // start, which would give an empty block).
    let cut = memchr::memmem::rfind(data, &pair)? + end.len();
    (cut > 0).then_some(cut)
}

/// `--block SIZE`: bytes, with GNU parallel's suffixes ([`crate::gate::parse_size`]); at
/// least one.
pub fn parse_size(text: &str) -> Option<usize> {
    crate::gate::parse_size(text)
        .filter(|&n| n >= 1)
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit_free::*;

    /// A tiny generator: deterministic, no dependency.
    mod testkit_free {
        pub struct Rng(pub u64);
        impl Rng {
            pub fn below(&mut self, n: u64) -> u64 {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (self.0 >> 33) % n
            }
        }
    }

    /// A reader that gives out at most `step` bytes a read: blocks must not depend on it.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn blocks(data: &[u8], spec: BlockSpec, step: usize) -> Vec<Vec<u8>> {
        let mut b = Blocks::new(Trickle(data, step), spec);
        let mut out = Vec::new();
        while let Some(block) = b.next_block().unwrap() {
            out.push(block);
        }
        out
    }

    fn spec(size: usize, recend: &str, recstart: &str) -> BlockSpec {
        BlockSpec {
            size,
            recend: recend.as_bytes().to_vec(),
            recstart: recstart.as_bytes().to_vec(),
            records: None,
            lines_per_record: None,
            blocks_per_slot: None,
            part: false,
            header: None,
            round_robin: false,
            pattern: None,
            remove_separators: None,
            as_file: None,
            tee: false,
            group_by: None,
            shard: None,
            block_timeout: None,
        }
    }

    /// --rrs takes out what GNU parallel 20221122 takes out (its outputs, by `od -c`).
    #[test]
    fn removing_separators_as_gnu_parallel_does() {
        let strings = |data: &[u8], recend: &str, recstart: &str| {
            let mut s = spec(100, recend, recstart);
            s.remove_separators = Some(Separators::Strings);
            remove_separators(data.to_vec(), &s)
        };
        assert_eq!(strings(b"a\nb\n", "\n", ""), b"ab");
        assert_eq!(strings(b"c", "\n", ""), b"c");
        assert_eq!(strings(b"Xa\nXb\n", "", "X"), b"a\nb\n");
        assert_eq!(strings(b"Xa;Xb;", ";", "X"), b"ab");
        assert_eq!(strings(b"a;b", "", ""), b"a;b");
        let patterns = |data: &[u8], recend: &str, recstart: &str| {
            let mut s = spec(100, recend, recstart);
            s.pattern = Some(record_pattern(recend, recstart).unwrap());
            s.remove_separators = Some(Separators::patterns(recend, recstart).unwrap());
            remove_separators(data.to_vec(), &s)
        };
        assert_eq!(patterns(b"a\n\nb\n\n", "\\n+", ""), b"ab");
        assert_eq!(patterns(b">1 a;>22 b;", ";", ">\\d+ "), b"ab");
    }

    #[test]
    fn n_records_a_block() {
        let data = b"1\n22\n333\n4444\n55555\n6";
        for size in [1, 3, 100] {
            let mut s = spec(size, "\n", "");
            s.records = Some(2);
            let got = blocks(data, s, 2);
            assert_eq!(
                got,
                [
                    b"1\n22\n".to_vec(),
                    b"333\n4444\n".to_vec(),
                    b"55555\n6".to_vec()
                ],
                "block size {size}"
            );
        }
        // --recstart with -N: a record is from one start to the next.
        let mut s = spec(4, "", ">");
        s.records = Some(1);
        let got = blocks(b">a\nb\n>c\n>d\n", s, 3);
        assert_eq!(
            got,
            [b">a\nb\n".to_vec(), b">c\n".to_vec(), b">d\n".to_vec()]
        );
    }

    #[test]
    fn blocks_are_whole_records_and_give_back_the_input() {
        let mut rng = Rng(7);
        for round in 0..200 {
            let mut data = Vec::new();
            for _ in 0..rng.below(60) {
                let len = rng.below(if round % 5 == 0 { 300 } else { 20 });
                for _ in 0..len {
                    data.push(b'a' + rng.below(3) as u8);
                }
                data.push(b'\n');
            }
            if round % 3 == 0 {
                data.extend_from_slice(b"no final newline");
            }
            let size = 1 + rng.below(100) as usize;
            let step = 1 + rng.below(50) as usize;
            let got = blocks(&data, spec(size, "\n", ""), step);
            assert_eq!(got.concat(), data, "round {round}");
            for (i, block) in got.iter().enumerate() {
                assert!(!block.is_empty());
                if i + 1 < got.len() {
                    // Every block but the last ends a record.
                    assert!(block.ends_with(b"\n"), "round {round}: {block:?}");
                }
            }
        }
    }

    #[test]
    fn a_record_longer_than_a_block_is_not_cut() {
        let data = b"short\nthis record is far longer than a block\nx\n";
        let got = blocks(data, spec(8, "\n", ""), 3);
        assert_eq!(
            got,
            [
                b"short\n".to_vec(),
                b"this record is far longer than a block\n".to_vec(),
                b"x\n".to_vec()
            ]
        );
    }

    #[test]
    fn recstart_and_recend_cut_only_between_them() {
        // Records are "<r>...</r>\n"; a newline inside a record is not a boundary.
        let data = b"<r>a\nb</r>\n<r>c</r>\n<r>d\ne</r>\n";
        let got = blocks(data, spec(6, "</r>\n", "<r>"), 4);
        assert_eq!(got.concat(), data);
        for block in &got {
            assert!(
                block.starts_with(b"<r>") && block.ends_with(b"</r>\n"),
                "{block:?}"
            );
        }
    }

    /// The ranges `--pipepart` gives out for `data`, as byte strings.
    fn parts(data: &[u8], spec: BlockSpec, slots: usize) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, data).unwrap();
        let mut parts = Parts::open(&[path], &spec, slots).unwrap();
        let mut out = Vec::new();
        while let Some(stdin) = parts.next_part().unwrap() {
            let herd_engine::Stdin::FileRange { offset, len, .. } = stdin else {
                panic!("{stdin:?}")
            };
            out.push(data[offset as usize..(offset + len) as usize].to_vec());
        }
        out
    }

    #[test]
    fn parts_are_whole_records_and_give_back_the_file() {
        let mut rng = Rng(9);
        for round in 0..150 {
            let mut data = Vec::new();
            for _ in 0..rng.below(80) {
                if round % 4 == 1 {
                    data.extend_from_slice(b"<r>");
                }
                for _ in 0..rng.below(if round % 5 == 0 { 400 } else { 30 }) {
                    data.push(b"ab\n<"[rng.below(4) as usize]);
                }
                data.extend_from_slice(if round % 4 == 1 { b"</r>\n" } else { b"\n" });
            }
            if round % 3 == 0 {
                data.extend_from_slice(b"tail");
            }
            let (recend, recstart) = if round % 4 == 1 {
                ("</r>\n", "<r>")
            } else {
                ("\n", "")
            };
            let size = 1 + rng.below(200) as usize;
            let got = parts(&data, spec(size, recend, recstart), 1);
            assert_eq!(got.concat(), data, "round {round}");
            for (i, part) in got.iter().enumerate() {
                assert!(!part.is_empty(), "round {round}");
                if i + 1 < got.len() {
                    assert!(part.ends_with(recend.as_bytes()), "round {round}: {part:?}");
                    assert!(got[i + 1].starts_with(recstart.as_bytes()), "round {round}");
                    // A part ends at the first boundary found from its nominal end (the
                    // record end and start looked for together may begin a little before it).
                    assert!(
                        part.len() + recstart.len() >= size,
                        "round {round}: {} < {size}",
                        part.len()
                    );
                }
            }
        }
    }

    /// Records far longer than the windows read to find a part's end (4 KiB, growing).
    #[test]
    fn parts_find_the_ends_of_long_records() {
        let mut rng = Rng(5);
        let mut data = Vec::new();
        for _ in 0..20 {
            data.push(b'>');
            for _ in 0..rng.below(150_000) {
                data.push(b"acgt\n"[rng.below(5) as usize]);
            }
            data.extend_from_slice(b"\n");
        }
        let mut literal = spec(1000, "\n", ">");
        let mut regex = spec(1000, "", "");
        regex.pattern = Some(record_pattern("\\n", ">").unwrap());
        for s in [&mut literal, &mut regex] {
            let got = parts(&data, s.clone(), 1);
            assert_eq!(got.concat(), data);
            assert_eq!(got.len(), 20, "one part per record");
            assert!(got
                .iter()
                .all(|p| p.starts_with(b">") && p.ends_with(b"\n")));
        }
    }

    #[test]
    fn negative_block_sizes_give_n_parts_per_slot() {
        let data: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let mut s = spec(1, "\n", "");
        s.blocks_per_slot = Some(5);
        let got = parts(&data, s, 4);
        assert_eq!(got.concat(), data);
        assert!((19..=21).contains(&got.len()), "{} parts", got.len());
        assert!(
            parts(b"", spec(10, "\n", ""), 1).is_empty(),
            "an empty file, no jobs"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut not_files = vec![dir.path().to_path_buf()];
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(made.unwrap().success());
            not_files.push(fifo);
        }
        // A directory and a FIFO (opening it would wait for a writer) cannot be cut in place.
        for path in not_files {
            let err = Parts::open(std::slice::from_ref(&path), &spec(10, "\n", ""), 1)
                .err()
                .unwrap();
            assert!(err.contains("is not one"), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn regexp_records_cut_only_between_the_patterns() {
        // Records start with a line ">name" and end with one of "+" or "++".
        let data = b">a\nx\n+\n>b\ny\n++\n>c\nz\n+\n>d\n+\n";
        let mut s = spec(6, "", "");
        s.pattern = Some(record_pattern("\\++\\n", ">").unwrap());
        for size in [1, 6, 12, 100] {
            s.size = size;
            let got = blocks(data, s.clone(), 3);
            assert_eq!(got.concat(), data);
            for block in &got {
                assert!(
                    block.starts_with(b">") && block.ends_with(b"+\n"),
                    "{block:?}"
                );
            }
            let got = parts(data, s.clone(), 1);
            assert_eq!(got.concat(), data);
            assert!(got
                .iter()
                .all(|p| p.starts_with(b">") && p.ends_with(b"+\n")));
        }
        s.records = Some(2);
        let got = blocks(data, s.clone(), 5);
        assert_eq!(
            got,
            [
                b">a\nx\n+\n>b\ny\n++\n".to_vec(),
                b">c\nz\n+\n>d\n+\n".to_vec()
            ]
        );
        assert!(record_pattern("(", "").unwrap_err().contains("--regexp"));
    }

    #[test]
    fn sizes_take_gnu_suffixes() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("10k"), Some(10_000));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("300"), Some(300));
        assert_eq!(parse_size("2g"), Some(2_000_000_000));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("0"), None);
    }
}
