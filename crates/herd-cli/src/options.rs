//! The run's options, checked: what [`crate::cli::Cli`] parsed becomes [`Options`], with every
//! value validated (bad ones are named in one line before anything runs) and GNU parallel's
//! defaults applied.

use crate::cli::Cli;
use crate::halt::Halt;
use crate::input::{Columns, Source, SourceSpec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How `--resume` and `--resume-failed` read the joblog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Skip every job the log lists.
    All,
    /// Skip only the jobs the log lists as successful.
    Successful,
}

/// How output reaches herd's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    Group,
    KeepOrder,
    Ungroup,
    LineBuffer,
    /// `-k --line-buffer`: the oldest unfinished job's lines live, the others' in turn.
    KeepOrderLines,
}

/// How each job's command is made (see [`crate::compose`] and [`crate::template`]).
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The command's words; empty when each input is itself a command.
    pub words: Vec<Vec<u8>>,
    /// `-q`: the words go to the program as they are, without a shell.
    pub quote: bool,
    /// `-X`: repeat the word around `{}` for each value.
    pub context: bool,
    pub names: crate::template::Names,
    pub tagstring: Option<Vec<u8>>,
    /// `--filter`: Perl code that must be true for a job to run.
    pub filters: Vec<Vec<u8>>,
    /// `--header`: the columns' names (else their numbers), for `--results`' directories.
    pub columns: Vec<Vec<u8>>,
    pub nice: Option<i32>,
    pub process_slot_var: Option<String>,
    pub workdir: Option<PathBuf>,
}

impl Options {
    /// `-k`, with or without `--line-buffer`.
    pub fn keep_order(&self) -> bool {
        matches!(
            self.mode,
            OutputMode::KeepOrder | OutputMode::KeepOrderLines
        )
    }
}

impl CommandSpec {
    /// `--header`: the columns are named; `{name}` in the command (the tag, the filters) means
    /// `{N}`.
    pub fn name_columns(&mut self, columns: Vec<Vec<u8>>) {
        let rename = |t: &[u8]| crate::template::name_columns(t, &columns, &self.names);
        self.words = self.words.iter().map(|w| rename(w)).collect();
        self.tagstring = self.tagstring.as_deref().map(rename);
        self.filters = self.filters.iter().map(|f| rename(f)).collect();
        self.columns = columns;
    }
}

/// The checked options.
#[derive(Debug)]
pub struct Options {
    pub jobs: usize,
    pub mode: OutputMode,
    pub tag: bool,
    pub timeout: Option<Duration>,
    /// `--timeout N%`: relative to the median runtime of successful jobs.
    pub timeout_percent: Option<f64>,
    /// `--memfree`, `--load`, `--noswap`.
    pub gate: crate::gate::Limits,
    pub eof_grace: Option<Duration>,
    /// `--termseq`: how long SIGTERM has before SIGKILL.
    pub kill_grace: Option<Duration>,
    pub json: Option<PathBuf>,
    pub joblog: Option<PathBuf>,
    pub joblog_append: bool,
    /// `--retry-failed`: the joblog's failed commands are the jobs.
    pub retry_failed: bool,
    /// `--files`: outputs in files, their names printed.
    pub files: bool,
    pub resume: Option<Resume>,
    pub dry_run: bool,
    /// `--shell-quote`: the dry run's lines, each quoted as one word.
    pub shell_quote: bool,
    pub retries: u32,
    pub delimiter: u8,
    pub colsep: Option<Columns>,
    pub results: Option<PathBuf>,
    pub halt: Option<Halt>,
    pub bar: bool,
    pub eta: bool,
    pub summary: bool,
    pub events: Option<PathBuf>,
    pub events_output: bool,
    pub json_timeline: bool,
    pub max_output: Option<u64>,
    pub tmpdir: Option<PathBuf>,
    pub command: CommandSpec,
    pub sources: Vec<Source>,
    pub link: bool,
    pub batch: crate::batch::BatchSpec,
    pub skip_first_line: bool,
    pub header: bool,
    pub shuf: bool,
    /// `-v`: print each command on stdout before its output; `-t`: on stderr as it starts.
    pub verbose: bool,
    pub verbose_stderr: bool,
    pub delay: Option<Duration>,
    pub total_jobs: Option<u64>,
    /// `--tty`, `-o`: jobs read the terminal and run in herd's process group.
    pub terminal: Option<Terminal>,
    /// `-S`, `--slf`: the hosts jobs run on, when not only this machine.
    pub remote: Option<Remote>,
    /// `--pipe`: how the input is cut into blocks, one per job's stdin.
    pub pipe: Option<crate::blocks::BlockSpec>,
}

/// `--shard`, `--bin`: lines routed by a column to one job per slot (see shard.rs).
fn set_shard(
    pipe: Option<&mut crate::blocks::BlockSpec>,
    bin: bool,
    text: &str,
    colsep: Option<&Columns>,
    jobs: usize,
) -> Result<(), UsageError> {
    let name = if bin { "--bin" } else { "--shard" };
    let Some(spec) = pipe else {
        return Err(UsageError(format!("{name} goes with --pipe")));
    };
    let others = [
        (spec.part, "--pipepart"),
        (spec.tee, "--tee"),
        (spec.round_robin, "--round-robin"),
        (spec.as_file.is_some(), "--cat and --fifo"),
        (spec.group_by.is_some(), "--group-by"),
        (
            spec.records.is_some() || spec.lines_per_record.is_some(),
            "-N and -L",
        ),
        (
            spec.header.is_some(),
            "--header (a named column's header goes to every job)",
        ),
    ];
    if let Some((_, other)) = others.iter().find(|(given, _)| *given) {
        return Err(UsageError(format!(
            "{name} with {other}: {name} routes each line to the job of a slot"
        )));
    }
    if jobs >= NO_LIMIT {
        return Err(UsageError(format!(
            "{name} starts one job per job slot: give their number with -j N, not -j 0"
        )));
    }
    let column =
        crate::groupby::parse(text).map_err(|e| UsageError(e.replace("--group-by", name)))?;
    // GNU parallel splits at a comma for --shard and --bin unless --colsep says otherwise.
    let colsep = colsep
        .cloned()
        .unwrap_or_else(|| Columns::Regex(regex::bytes::Regex::new(",").expect("a valid regex")));
    spec.shard = Some(crate::shard::ShardSpec {
        bin,
        column,
        colsep,
    });
    Ok(())
}

/// `--group-by`: groups marked where they start, taken for records (see groupby.rs).
fn set_group_by(
    pipe: Option<&mut crate::blocks::BlockSpec>,
    text: &str,
    colsep: Option<&Columns>,
) -> Result<(), UsageError> {
    use crate::blocks::{Header, Separators};
    use crate::groupby::{Column, GroupBy};
    let Some(spec) = pipe else {
        return Err(UsageError("--group-by goes with --pipe".into()));
    };
    if spec.part || spec.tee || spec.as_file.is_some() {
        return Err(UsageError(
            "--group-by is available with --pipe (and --round-robin), not yet with --pipepart, \
             --tee, --cat or --fifo"
                .into(),
        ));
    }
    let column = crate::groupby::parse(text).map_err(UsageError)?;
    match (&spec.header, &column) {
        (Some(Header::Regex(_)), _) => {
            return Err(UsageError(
                "--group-by with --header REGEX: give --header a number of lines".into(),
            ))
        }
        // A column name is looked up in the first line, the header (as in GNU parallel).
        (None, Column::Name(_)) => spec.header = Some(Header::Lines(1)),
        _ => {}
    }
    let colsep = colsep
        .cloned()
        .unwrap_or_else(|| Columns::Regex(regex::bytes::Regex::new("\t").expect("a valid regex")));
    let marker = crate::groupby::marker();
    spec.recend = Vec::new();
    spec.recstart = marker.clone();
    spec.pattern = None;
    spec.remove_separators = Some(Separators::Strings);
    spec.group_by = Some(GroupBy {
        column,
        colsep,
        marker,
    });
    Ok(())
}

/// What is wrong with a regular expression, in one line: the regex crate's message draws
/// the pattern over several, and its last says what is wrong.
pub fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let detail = text.lines().last().unwrap_or("").trim();
    detail.strip_prefix("error: ").unwrap_or(detail).to_string()
}

/// `--recend`/`--recstart`'s escapes: `\n`, `\t`, `\r`, `\0`, `\\`.
fn unescape_record(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'0') => out.push(0),
            Some(other) => {
                if other != b'\\' {
                    out.push(b'\\');
                }
                out.push(other);
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// Jobs on other hosts (`-S`, `--slf`, `--ssh`, `--env`).
#[derive(Debug, Clone)]
pub struct Remote {
    /// `-S`'s logins.
    pub logins: Vec<crate::remote::Login>,
    /// `--slf`'s files.
    pub login_files: Vec<PathBuf>,
    pub ssh: Option<String>,
    /// `--env`: variables exported to remote jobs.
    pub env: Vec<String>,
    /// `-j` as given: applied to each host's CPU count.
    pub jobs: Option<String>,
    /// `--transferfile` (and `--transfer`, `--trc`): templates of files sent before a job.
    pub transfer: Vec<String>,
    /// `--return` (and `--trc`): templates of files fetched after it.
    pub returns: Vec<String>,
    pub cleanup: bool,
    /// `--basefile`: sent to each host once.
    pub basefiles: Vec<Vec<u8>>,
    /// `--workdir`, a template, on the hosts.
    pub workdir: Option<String>,
    /// `--onall`, `--nonall`: every job runs on every host, one at a time on each.
    pub everywhere: bool,
    /// `-j` given with `--onall`/`--nonall`: how many hosts at once.
    pub hosts_at_once: Option<usize>,
}

impl Remote {
    /// Job slots on a host of `cpus` CPUs.
    pub fn slots_for(&self, cpus: usize) -> usize {
        if self.everywhere {
            // --onall: one job at a time on each host.
            return 1;
        }
        match &self.jobs {
            Some(s) => parse_jobs_for(s, cpus).unwrap_or(cpus),
            None => cpus,
        }
    }
}

/// How jobs use the terminal (`--tty`, `-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// The job's output goes straight to herd's stdout and stderr (`--tty` as `-u`, with
    /// nothing that needs the bytes).
    pub output: bool,
}

/// A command-line mistake, reported in one line.
#[derive(Debug)]
pub struct UsageError(pub String);

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where large output spills (`--tmpdir`, else `$TMPDIR`) must take files: without it, output
/// beyond memory's share would have nowhere to go. Checked by making and removing a file.
fn check_spill_dir(given: Option<&std::path::Path>) -> Result<(), UsageError> {
    let (dir, name) = match given {
        Some(d) => (d.to_path_buf(), "--tmpdir"),
        None => (std::env::temp_dir(), "the temporary directory ($TMPDIR)"),
    };
    let probe = dir.join(format!(".herd-probe-{}", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match made {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(UsageError(format!(
            "{name} {}: cannot hold herd's temporary files ({e}); give a writable one with \
             --tmpdir",
            dir.display()
        ))),
    }
}

/// A file herd writes that is also an input (`herd --joblog f … :::: f`) would be destroyed
/// before it is read: refused.
fn check_outputs_are_not_inputs(
    sources: &[Source],
    outputs: &[(&str, Option<&std::path::Path>)],
) -> Result<(), UsageError> {
    for source in sources {
        let SourceSpec::File(input) = &source.spec else {
            continue;
        };
        for (option, output) in outputs {
            let Some(output) = output else { continue };
            if output.as_os_str() != "-" && same_file(input, output) {
                return Err(UsageError(format!(
                    "{option} {} is also an input file: herd would overwrite its own input",
                    output.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether two paths name one existing file (hard links and `./` spellings included).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (a.metadata(), b.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// `-j 0`: as many jobs at once as there are inputs.
pub const NO_LIMIT: usize = 1 << 20;

fn parse_jobs(s: &str) -> Result<usize, UsageError> {
    parse_jobs_for(s, cpus())
}

/// `-j` for a machine of `cpus` CPUs.
fn parse_jobs_for(s: &str, cpus: usize) -> Result<usize, UsageError> {
    let bad = || {
        UsageError(format!(
            "invalid value '{s}' for --jobs: expected a number, N%, +N or -N"
        ))
    };
    let n = if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.parse().map_err(|_| bad())?;
        if p.is_nan() || p <= 0.0 {
            return Err(bad());
        }
        ((cpus as f64 * p / 100.0).round() as usize).max(1)
    } else if let Some(n) = s.strip_prefix('+') {
        cpus.saturating_add(n.parse::<usize>().map_err(|_| bad())?)
    } else if let Some(n) = s.strip_prefix('-') {
        cpus.saturating_sub(n.parse::<usize>().map_err(|_| bad())?)
            .max(1)
    } else {
        match s.parse::<usize>().map_err(|_| bad())? {
            0 => NO_LIMIT,
            n => n,
        }
    };
    // More than this is no limit (what -j 0 means).
    Ok(n.min(NO_LIMIT))
}

fn parse_seconds(s: &str, option: &str) -> Result<Duration, UsageError> {
    match gnu_seconds(s) {
        Some(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(UsageError(format!(
            "invalid value '{s}' for {option}: expected a positive number of seconds, or a \
             duration with s, m, h or d, like 1m30s"
        ))),
    }
}

/// GNU parallel's durations (its TIME POSTFIXES): seconds, or numbers each followed by s, m,
/// h or d, added up (`1d3.5h16.6m4s` is 100000 seconds; a last number alone is seconds).
fn gnu_seconds(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..end].parse().ok()?;
        let mut units = rest[end..].chars();
        let unit = match units.next().map(|c| c.to_ascii_lowercase()) {
            None => 1.0,
            Some('s') => 1.0,
            Some('m') => 60.0,
            Some('h') => 3600.0,
            Some('d') => 86400.0,
            Some(_) => return None,
        };
        total += n * unit;
        rest = units.as_str();
    }
    Some(total)
}

/// `--termseq`: GNU's `SIGNAL,MS,SIGNAL,MS,…,KILL`. herd's kill is SIGTERM, a wait, SIGKILL:
/// the sequence must start with TERM and end with KILL, the waits before KILL adding up.
fn parse_termseq(s: &str) -> Result<Duration, UsageError> {
    let bad = |why: &str| UsageError(format!("invalid value '{s}' for --termseq: {why}"));
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let signal = |p: &str| p.trim_start_matches("SIG").to_ascii_uppercase();
    if parts.first().map(|p| signal(p)) != Some("TERM".into()) {
        return Err(bad("herd's sequence starts with TERM"));
    }
    let mut total = 0u64;
    for (i, p) in parts.iter().enumerate().skip(1) {
        if i % 2 == 1 {
            total += p
                .parse::<u64>()
                .map_err(|_| bad("expected SIGNAL,MS,SIGNAL,MS,…"))?;
        } else if signal(p) == "KILL" {
            return Ok(Duration::from_millis(total));
        } else if signal(p) != "TERM" {
            return Err(bad("herd sends only TERM until the KILL"));
        }
    }
    Err(bad("herd's sequence ends with KILL"))
}

/// A size in bytes: a number with an optional K, M or G (powers of 1024; a trailing B or iB is
/// allowed: 64KiB, 1MB).
fn parse_size(s: &str, option: &str) -> Result<u64, UsageError> {
    let bad = || {
        UsageError(format!(
            "invalid value '{s}' for {option}: expected a number of bytes, like 65536, 64K or 1M"
        ))
    };
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

#[cfg(unix)]
fn bytes(s: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    s.into_vec()
}

#[cfg(not(unix))]
fn bytes(s: OsString) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// The longest command line, as GNU parallel measures it: it searches for the longest
/// `echo ccc…` the system runs, growing by 16 times and then halving the gap until it is within
/// 1%. On Linux the bound is one argument's 128 KiB (the line handed to `sh -c`), and the
/// search lands where GNU parallel's does (130329), so `--max-line-length-allowed` and the
/// batches of -m, -X and --xargs come out the same.
pub fn max_line_length() -> usize {
    let fits = |len: usize| len - 1 < 128 * 1024;
    let mut len = 324;
    let mut lower;
    loop {
        lower = len;
        len *= 16;
        if !fits(len) {
            break;
        }
    }
    let mut upper = len;
    while !(lower == upper || lower + 1 == upper || lower as f64 / upper as f64 > 0.99) {
        let middle = (upper - lower) / 2 + lower;
        if fits(middle) {
            lower = middle;
        } else {
            upper = middle;
        }
    }
    lower
}

/// `--parens`: its first half opens a Perl expression, its second half closes it.
fn parens(given: Option<&str>) -> Result<(Vec<u8>, Vec<u8>), UsageError> {
    let given = given.unwrap_or("{==}").as_bytes();
    if given.len() < 2 || given.len() % 2 != 0 {
        return Err(UsageError(format!(
            "--parens {}: expected an opening and a closing string of the same length, as {{==}}",
            String::from_utf8_lossy(given)
        )));
    }
    let (l, r) = given.split_at(given.len() / 2);
    Ok((l.to_vec(), r.to_vec()))
}

/// `--rpl`s, the longest tag first (GNU replaces long tags before their prefixes).
fn rpls(given: &[String]) -> Result<Vec<crate::template::Rpl>, UsageError> {
    let mut rpls = given
        .iter()
        .map(|d| crate::template::Rpl::parse(d).map_err(UsageError))
        .collect::<Result<Vec<_>, _>>()?;
    rpls.sort_by_key(|r| std::cmp::Reverse(r.tag_len()));
    Ok(rpls)
}

/// What a job's command line may take: GNU parallel keeps room for its wrapping and halves the
/// rest, and so does herd, so batches have the same size.
pub fn usable_line_length() -> usize {
    (max_line_length() - 3000) / 2
}

/// GNU's delimiter syntax: one byte, or a backslash escape.
fn parse_delimiter(d: &str) -> Result<u8, UsageError> {
    let b = match d {
        "\\n" => b'\n',
        "\\t" => b'\t',
        "\\0" => 0,
        "\\r" => b'\r',
        "\\\\" => b'\\',
        _ if d.len() == 1 => d.as_bytes()[0],
        _ => {
            return Err(UsageError(format!(
                "invalid value '{d}' for --delimiter: expected one character or \\n, \\t, \\0"
            )))
        }
    };
    Ok(b)
}

fn number_of(what: &str) -> usize {
    // Physical cores: distinct (physical id, core id) pairs in /proc/cpuinfo.
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut cores = std::collections::HashSet::new();
    let mut sockets = std::collections::HashSet::new();
    let (mut phys, mut core) = (String::new(), String::new());
    for line in info.lines().chain(std::iter::once("")) {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "physical id" => phys = v.trim().to_owned(),
                "core id" => core = v.trim().to_owned(),
                _ => {}
            }
        } else if line.trim().is_empty() && (!phys.is_empty() || !core.is_empty()) {
            cores.insert((phys.clone(), core.clone()));
            sockets.insert(phys.clone());
            phys.clear();
            core.clear();
        }
    }
    match what {
        "sockets" => sockets.len().max(1),
        "cores" => {
            if cores.is_empty() {
                cpus()
            } else {
                cores.len()
            }
        }
        _ => cpus(),
    }
}

/// What `--number-of-*`, `--max-line-length-allowed` and `--minversion` print, if asked.
pub fn information(cli: &Cli) -> Option<(String, u8)> {
    let line = |n: usize| Some((format!("{n}\n"), 0));
    if cli.number_of_threads {
        return line(number_of("threads"));
    }
    if cli.number_of_cores || cli.number_of_cpus {
        return line(number_of("cores"));
    }
    if cli.number_of_sockets {
        return line(number_of("sockets"));
    }
    if cli.max_line_length_allowed {
        return line(max_line_length());
    }
    if let Some(v) = cli.minversion {
        let ours = crate::GNU_COMPATIBLE_VERSION;
        return Some((format!("{ours}\n"), if ours >= v { 0 } else { 255 }));
    }
    None
}

impl Cli {
    /// `--pipe`, `--block`, `--recend`, `--recstart`.
    fn pipe_spec(&self) -> Result<Option<crate::blocks::BlockSpec>, UsageError> {
        use crate::blockfile::AsFile;
        use crate::blocks::Separators;
        let as_file = match (self.cat, self.fifo) {
            (true, _) => Some(AsFile::Cat),
            (_, true) => Some(AsFile::Fifo),
            _ => None,
        };
        // GNU parallel: --cat and --fifo imply --pipe, unless --pipepart is given.
        if !self.pipe && !self.pipe_part && as_file.is_none() {
            if self.round_robin {
                // As GNU parallel does (its manual says --round-robin implies --pipe; the
                // program runs the jobs one per input as usual).
                eprintln!("herd: --round-robin goes with --pipe; without it, it changes nothing");
            }
            for (given, name) in [
                (self.block.is_some(), "--block"),
                (self.recend.is_some(), "--recend"),
                (self.recstart.is_some(), "--recstart"),
                (self.regexp, "--regexp"),
                (self.remove_rec_sep, "--rrs"),
                (self.tee, "--tee"),
                (self.block_timeout.is_some(), "--block-timeout"),
            ] {
                if given {
                    return Err(UsageError(format!("{name} goes with --pipe or --pipepart")));
                }
            }
            return Ok(None);
        }
        let (mut size, mut blocks_per_slot) = (crate::blocks::DEFAULT_BLOCK, None);
        match self.block.as_deref().map(|b| (b, b.strip_prefix('-'))) {
            None => {}
            Some((_, Some(n))) if self.pipe_part => {
                blocks_per_slot =
                    Some(n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        UsageError(format!(
                            "invalid value '-{n}' for --block: -N (blocks per job slot) needs \
                             a whole number of at least 1"
                        ))
                    })?);
            }
            Some((b, negative)) => {
                size = crate::blocks::parse_size(b).ok_or_else(|| {
                    UsageError(format!(
                        "invalid value '{b}' for --block: expected a size, like 1M or 64k{}",
                        if negative.is_some() {
                            " (a negative size, blocks per job slot, goes with --pipepart)"
                        } else {
                            ""
                        }
                    ))
                })?;
            }
        }
        // What ends a record when --recend is not given, as a string and as a regular
        // expression: nothing after --recstart, else a newline (NUL with -0).
        let (default_end, default_end_pattern): (&[u8], &str) = match (&self.recstart, self.null) {
            (Some(_), _) => (b"", ""),
            (None, true) => (b"\0", "\\x00"),
            (None, false) => (b"\n", "\\n"),
        };
        let recstart = self
            .recstart
            .as_deref()
            .map(unescape_record)
            .unwrap_or_default();
        let recend = self
            .recend
            .as_deref()
            .map_or_else(|| default_end.to_vec(), unescape_record);
        if self.pipe_part && (self.round_robin || self.block.is_none()) {
            // GNU parallel's defaults: ten parts for each job slot; one with --round-robin.
            blocks_per_slot = Some(if self.round_robin { 1 } else { 10 });
        }
        if self.tee {
            let other = [
                (self.round_robin, "--round-robin"),
                (as_file.is_some(), "--cat and --fifo"),
                (
                    self.max_replace_args.is_some() || self.max_lines.is_some(),
                    "-N and -L",
                ),
                (self.remove_rec_sep, "--rrs"),
            ];
            if let Some((_, name)) = other.iter().find(|(given, _)| *given) {
                return Err(UsageError(format!(
                    "{name} with --tee: --tee gives every job the whole input, not blocks"
                )));
            }
            if self.pipe && self.retries > 1 {
                return Err(UsageError(
                    "--retries with --pipe --tee: the input streams to every job once, and \
                     could not be given to a job again (--pipepart --tee can)"
                        .into(),
                ));
            }
        }
        if let (Some(how), true) = (as_file, self.round_robin) {
            return Err(UsageError(format!(
                "--{} with --round-robin: a long-lived job takes many blocks on its stdin, not \
                 one file",
                how.name()
            )));
        }
        if cfg!(windows) && as_file == Some(AsFile::Fifo) {
            return Err(UsageError(
                "--fifo is not available on Windows (no named pipes in the file system): use --cat"
                    .into(),
            ));
        }
        if self.pipe_part && self.max_replace_args.is_some() {
            return Err(UsageError(
                "-N with --pipepart: records are not counted; give --block, or use --pipe -N"
                    .into(),
            ));
        }
        if self.max_args.is_some() {
            return Err(UsageError(
                "-n with --pipe: give the number of records per job with -N".into(),
            ));
        }
        if self.max_replace_args == Some(0) {
            return Err(UsageError(
                "-N0 with --pipe: a job needs at least one record".into(),
            ));
        }
        let mut remove_separators = self.remove_rec_sep.then_some(Separators::Strings);
        let pattern = if self.regexp {
            // As GNU parallel: the strings are regular expressions, taken as they are.
            let recend = self.recend.as_deref().unwrap_or(default_end_pattern);
            let recstart = self.recstart.as_deref().unwrap_or_default();
            if self.remove_rec_sep {
                remove_separators =
                    Some(Separators::patterns(recend, recstart).map_err(UsageError)?);
            }
            Some(crate::blocks::record_pattern(recend, recstart).map_err(UsageError)?)
        } else {
            None
        };
        let header = match &self.header {
            Some(h) => crate::blocks::Header::parse(h).map_err(UsageError)?,
            None => None,
        };
        // -L: a record is so many lines; with -N, a job gets N of those.
        let lines = match self.max_lines.as_deref() {
            None => None,
            Some("") => Some(1),
            Some(n) => Some(n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                UsageError(format!(
                    "invalid value '{n}' for -L with --pipe: expected a number of lines, at \
                     least 1"
                ))
            })?),
        };
        let records = match (self.max_replace_args, lines) {
            (Some(n), Some(l)) => Some(n.saturating_mul(l)),
            (n, _) => n,
        };
        if self.pipe_part && lines.is_some() {
            return Err(UsageError(
                "-L with --pipepart: lines are not counted; give --block, or use --pipe -L".into(),
            ));
        }
        Ok(Some(crate::blocks::BlockSpec {
            size,
            recend,
            recstart,
            records,
            lines_per_record: lines.filter(|_| records.is_none()),
            blocks_per_slot,
            part: self.pipe_part,
            header,
            round_robin: self.round_robin,
            pattern,
            remove_separators,
            as_file,
            tee: self.tee,
            group_by: None,
            shard: None,
            block_timeout: match self.block_timeout.as_deref() {
                Some(_) if self.pipe_part => {
                    return Err(UsageError(
                        "--block-timeout goes with --pipe (--pipepart reads a file, which never \
                         makes it wait)"
                            .into(),
                    ))
                }
                Some(t) => Some(parse_seconds(t, "--block-timeout")?),
                None => None,
            },
        }))
    }

    /// `-S`, `--slf`, `--ssh`, `--env`: the hosts, or `None` for this machine only.
    fn remote(&self) -> Result<Option<Remote>, UsageError> {
        let mut logins = Vec::new();
        for list in &self.sshlogin {
            logins.extend(crate::remote::parse_list(list).map_err(UsageError)?);
        }
        // Read here to find mistakes before any job starts; read again by the hosts, and
        // whenever they change.
        let mut in_files = 0;
        let mut login_files = Vec::new();
        for file in &self.sshloginfile {
            in_files += crate::remote::read_file(file).map_err(UsageError)?.len();
            login_files.push(crate::remote::resolve(file));
        }
        if logins.is_empty() && in_files == 0 {
            if self.onall || self.nonall {
                let name = if self.onall { "--onall" } else { "--nonall" };
                return Err(UsageError(format!(
                    "{name} needs hosts: give them with -S or --slf"
                )));
            }
            if !self.sshloginfile.is_empty() {
                return Err(UsageError("--sshloginfile: no sshlogin in the file".into()));
            }
            return Ok(None);
        }
        for name in &self.env {
            let valid = name.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
            if !valid || name.is_empty() {
                return Err(UsageError(format!(
                    "--env {name}: not a variable name (letters, digits and _, not starting \
                     with a digit)"
                )));
            }
        }
        let mut transfer = self.transferfile.clone();
        if self.transfer || !self.trc.is_empty() {
            transfer.push("{}".into());
        }
        let mut returns = self.return_file.clone();
        returns.extend(self.trc.iter().cloned());
        let mut basefiles = Vec::new();
        for f in &self.basefile {
            if !f.is_file() {
                return Err(UsageError(format!(
                    "--basefile {}: no such file",
                    f.display()
                )));
            }
            basefiles.push(f.as_os_str().as_encoded_bytes().to_vec());
        }
        Ok(Some(Remote {
            logins,
            login_files,
            ssh: self.ssh.clone(),
            env: self.env.clone(),
            jobs: self.jobs.clone(),
            transfer,
            returns,
            cleanup: self.cleanup || !self.trc.is_empty(),
            basefiles,
            workdir: self
                .workdir
                .as_ref()
                .map(|w| w.to_string_lossy().into_owned()),
            everywhere: self.onall || self.nonall,
            hosts_at_once: match (&self.jobs, self.onall || self.nonall) {
                (Some(j), true) => Some(parse_jobs(j)?),
                _ => None,
            },
        }))
    }

    /// Checks the options and splits the trailing words into command and sources.
    pub fn into_options(self) -> Result<Options, UsageError> {
        let remote = self.remote()?;
        let remote_run = remote.is_some();
        let mut pipe = self.pipe_spec()?;
        // With --pipe the header is data, given to every job (see blocks.rs).
        let column_names = self.header.as_ref().is_some_and(|h| h != "0") && pipe.is_none();
        if pipe.is_some() && remote_run {
            return Err(UsageError(
                "--pipe with -S is not available yet: jobs on other hosts read no input".into(),
            ));
        }
        let jobs = match &self.jobs {
            Some(s) => parse_jobs(s)?,
            // GNU parallel's --tty: one job at a time, unless -j says otherwise.
            None if self.tty => 1,
            // --tee: every job at once, as it must with --pipe.
            None if self.tee => NO_LIMIT,
            None => cpus(),
        };
        let gate = crate::gate::Limits {
            memfree: self
                .memfree
                .as_deref()
                .map(|m| {
                    crate::gate::parse_size(m).ok_or_else(|| {
                        UsageError(format!(
                            "invalid value '{m}' for --memfree: expected a size, like 500M or 2G"
                        ))
                    })
                })
                .transpose()?,
            load: self
                .load
                .as_deref()
                .map(|l| {
                    crate::gate::parse_load(l, cpus()).ok_or_else(|| {
                        UsageError(format!(
                            "invalid value '{l}' for --load: expected a number or N%"
                        ))
                    })
                })
                .transpose()?,
            noswap: self.noswap,
        };
        if !crate::gate::Gate::new(gate).is_open_always()
            && crate::gate::available_memory().is_none()
        {
            return Err(UsageError(
                "--memfree, --load and --noswap need Linux's /proc, which this system does not have"
                    .into(),
            ));
        }
        let (timeout, timeout_percent) = match self.timeout.as_deref() {
            Some(t) => match t.strip_suffix('%') {
                Some(p) => match p.parse::<f64>() {
                    Ok(p) if p > 0.0 && p.is_finite() => (None, Some(p)),
                    _ => {
                        return Err(UsageError(format!(
                            "invalid value '{t}' for --timeout: expected seconds or a \
                             percentage of the median runtime, as 300%"
                        )))
                    }
                },
                None => (Some(parse_seconds(t, "--timeout")?), None),
            },
            None => (None, None),
        };
        let kill_grace = self.termseq.as_deref().map(parse_termseq).transpose()?;
        let eof_grace = self
            .eof_grace
            .as_deref()
            .map(|s| parse_seconds(s, "--eof-grace"))
            .transpose()?;
        let delay = self
            .delay
            .as_deref()
            .map(|s| parse_seconds(s, "--delay"))
            .transpose()?;
        if self.tty || self.open_tty {
            let name = if self.tty { "--tty" } else { "--open-tty" };
            if let Err(e) = std::fs::File::open(crate::jobs::TERMINAL) {
                return Err(UsageError(format!(
                    "{name}: herd has no terminal to give its jobs ({}: {e})",
                    crate::jobs::TERMINAL
                )));
            }
        }
        let keep_order = self.keep_order && !self.no_keep_order;
        let tag = self.tag || self.tagstring.is_some();
        // GNU parallel's --tty implies -u, unless the output is asked to be shaped.
        let tty_ungroups = self.tty && !(self.group || self.line_buffer || keep_order || tag);
        let mode = if self.ungroup || tty_ungroups {
            OutputMode::Ungroup
        } else if self.line_buffer && keep_order {
            OutputMode::KeepOrderLines
        } else if self.line_buffer {
            OutputMode::LineBuffer
        } else if keep_order {
            OutputMode::KeepOrder
        } else {
            OutputMode::Group
        };
        if tag && mode == OutputMode::Ungroup {
            return Err(UsageError(
                "--tag needs whole lines: use it with --line-buffer, not --ungroup".into(),
            ));
        }
        let arg_sep = self
            .arg_sep
            .clone()
            .unwrap_or_else(|| ":::".into())
            .into_bytes();
        let file_sep = self
            .arg_file_sep
            .clone()
            .unwrap_or_else(|| "::::".into())
            .into_bytes();
        let marker = |w: &[u8]| -> Option<(bool, bool)> {
            // (is a file marker, is linked)
            let (base, linked) = match w.strip_suffix(b"+") {
                Some(b) => (b, true),
                None => (w, false),
            };
            if base == file_sep.as_slice() {
                Some((true, linked))
            } else if base == arg_sep.as_slice() {
                Some((false, linked))
            } else {
                None
            }
        };
        let mut words = self.command.into_iter().map(bytes).peekable();
        let mut command = Vec::new();
        while let Some(w) = words.next_if(|w| marker(w).is_none()) {
            command.push(w);
        }
        let mut sources: Vec<Source> = self
            .arg_file
            .iter()
            .map(|p| Source {
                spec: SourceSpec::File(p.clone()),
                linked: false,
            })
            .collect();
        while let Some(m) = words.next() {
            let (is_file, linked) = marker(&m).expect("a marker");
            let shown = String::from_utf8_lossy(&m).into_owned();
            // `::::+` as the first source has nothing to link to: it is a source of its own.
            let linked = linked && !sources.is_empty();
            let mut items = Vec::new();
            while let Some(w) = words.next_if(|w| marker(w).is_none()) {
                items.push(w);
            }
            if is_file {
                if items.is_empty() {
                    return Err(UsageError(format!(
                        "{shown} must be followed by at least one file"
                    )));
                }
                // Each file after :::: is its own source, as in GNU parallel; after ::::+ the
                // first is linked.
                for (i, f) in items.into_iter().enumerate() {
                    sources.push(Source {
                        spec: SourceSpec::File(path_of(f)),
                        linked: linked && i == 0,
                    });
                }
            } else {
                sources.push(Source {
                    spec: SourceSpec::Values(items),
                    linked,
                });
            }
        }
        if self.nonall {
            if !sources.is_empty() {
                return Err(UsageError(
                    "--nonall runs the command with no input: give inputs with --onall".into(),
                ));
            }
            // One job, using no value (as -N0 with one input).
            sources.push(Source {
                spec: SourceSpec::Values(vec![Vec::new()]),
                linked: false,
            });
        }
        if sources.is_empty() {
            sources.push(Source {
                spec: SourceSpec::Stdin,
                linked: false,
            });
        }
        let stdin_sources = sources
            .iter()
            .filter(|s| match &s.spec {
                SourceSpec::Stdin => true,
                SourceSpec::File(p) => p.as_os_str() == "-",
                SourceSpec::Values(_) => false,
            })
            .count();
        if stdin_sources > 1 {
            return Err(UsageError(
                "standard input can be only one input source".into(),
            ));
        }
        let colsep = match (self.csv, self.colsep.as_deref()) {
            (true, None) => Some(Columns::Csv(b',')),
            (true, Some(c)) if c.len() == 1 => Some(Columns::Csv(c.as_bytes()[0])),
            (true, Some(c)) => {
                return Err(UsageError(format!(
                    "--colsep '{c}' with --csv: expected one character to separate fields"
                )))
            }
            (false, c) => c
                .map(|c| {
                    regex::bytes::Regex::new(c)
                        .map(Columns::Regex)
                        .map_err(|e| {
                            let detail = regex_problem(&e);
                            UsageError(format!("invalid regex '{c}' for --colsep: {detail}"))
                        })
                })
                .transpose()?,
        };
        if let Some(text) = &self.group_by {
            set_group_by(pipe.as_mut(), text, colsep.as_ref())?;
        }
        if let Some((bin, text)) = match (&self.shard, &self.bin) {
            (Some(t), None) => Some((false, t)),
            (None, Some(t)) => Some((true, t)),
            _ => None,
        } {
            set_shard(pipe.as_mut(), bin, text, colsep.as_ref(), jobs)?;
        }
        let halt = self
            .halt
            .as_deref()
            .map(|h| {
                Halt::parse(h)
                    .map_err(|e| UsageError(format!("invalid value '{h}' for --halt: {e}")))
            })
            .transpose()?
            .flatten();
        let max_output = self
            .max_output
            .as_deref()
            .map(|s| parse_size(s, "--max-output"))
            .transpose()?;
        let to_stdout = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
        if to_stdout(&self.json) && to_stdout(&self.events) {
            return Err(UsageError(
                "--json and --events cannot both write to standard output".into(),
            ));
        }
        check_spill_dir(self.tmpdir.as_deref())?;
        let resume = match (self.resume, self.resume_failed || self.retry_failed) {
            (true, _) => Some(Resume::All),
            (_, true) => Some(Resume::Successful),
            _ => None,
        };
        // `+FILE`: append to the joblog.
        let (joblog, joblog_append) = match self.joblog {
            Some(p) => match p.to_str().and_then(|s| s.strip_prefix('+')) {
                Some(rest) => (Some(PathBuf::from(rest)), true),
                None => (Some(p), false),
            },
            None => (None, false),
        };
        check_outputs_are_not_inputs(
            &sources,
            &[
                ("--joblog", joblog.as_deref()),
                ("--json", self.json.as_deref()),
                ("--events", self.events.as_deref()),
            ],
        )?;
        let delimiter = match &self.delimiter {
            Some(d) => parse_delimiter(d)?,
            None if self.null => 0,
            None => b'\n',
        };
        let (trim_left, trim_right) = match self.trim.as_deref() {
            // GNU trims by default with --colsep, not with --csv alone.
            None if self.colsep.is_some() => (true, true),
            None | Some("n") => (false, false),
            Some("l") => (true, false),
            Some("r") => (false, true),
            Some("lr") | Some("rl") => (true, true),
            Some(t) => {
                return Err(UsageError(format!(
                    "invalid value '{t}' for --trim: expected n, l, r or lr"
                )))
            }
        };
        let max_lines = match self.max_lines.as_deref() {
            None => None,
            Some("") => Some(1),
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                UsageError(format!(
                    "invalid value '{n}' for --max-lines: expected a number"
                ))
            })?),
        };
        let usable = usable_line_length();
        if let Some(s) = self.max_chars {
            if s > usable {
                return Err(UsageError(format!(
                    "--max-chars {s} is more than a command line may take ({usable})"
                )));
            }
        }
        let fill = self.multiple || self.context_replace || self.xargs;
        let per_job = self.max_args.or(self.max_replace_args).or(max_lines);
        let no_values = per_job == Some(0) || self.nonall;
        let batch = crate::batch::BatchSpec {
            per_job: if no_values { Some(1) } else { per_job },
            no_values,
            fill: fill && per_job.is_none(),
            share_among: (fill && !self.xargs && per_job.is_none() && jobs > 1).then_some(jobs),
            max_chars: self.max_chars.unwrap_or(if fill { usable } else { 0 }),
            eof: self.eof.filter(|e| !e.is_empty()).map(String::into_bytes),
            skip_empty: self.no_run_if_empty,
            trim_left,
            trim_right,
        };
        let replace =
            self.replace_str.or(self
                .replace
                .map(|r| if r.is_empty() { "{}".into() } else { r }));
        let defaults = crate::template::Names::default();
        let name = |o: Option<String>, d: Vec<u8>| o.map_or(d, String::into_bytes);
        let names = crate::template::Names {
            whole: name(replace, defaults.whole),
            no_extension: name(self.extensionreplace, defaults.no_extension),
            basename: name(self.basenamereplace, defaults.basename),
            dirname: name(self.dirnamereplace, defaults.dirname),
            basename_no_extension: name(
                self.basenameextensionreplace,
                defaults.basename_no_extension,
            ),
            seq: name(self.seqreplace, defaults.seq),
            slot: name(self.slotreplace, defaults.slot),
            plus: self.plus,
            parens: parens(self.parens.as_deref())?,
            rpl: rpls(&self.rpl)?,
        };
        if let (Some(w), None) = (&self.workdir, &remote) {
            if !w.is_dir() {
                return Err(UsageError(format!(
                    "--workdir {}: not a directory",
                    w.display()
                )));
            }
        }
        if remote.is_some() && (self.tty || self.open_tty) {
            return Err(UsageError(
                "--tty and -o cannot be used with -S: a remote job has no terminal".into(),
            ));
        }
        let terminal = (self.tty || self.open_tty).then_some(Terminal {
            output: self.tty
                && mode == OutputMode::Ungroup
                && self.results.is_none()
                && !self.files
                && self.json.is_none()
                && self.events.is_none(),
        });
        Ok(Options {
            jobs,
            mode,
            tag,
            timeout,
            timeout_percent,
            gate,
            eof_grace,
            kill_grace,
            json: self.json,
            joblog,
            joblog_append,
            retry_failed: self.retry_failed,
            files: self.files,
            terminal,
            remote,
            pipe,
            resume,
            dry_run: self.dry_run || self.shell_quote,
            shell_quote: self.shell_quote,
            retries: self.retries,
            delimiter,
            colsep,
            results: self.results,
            halt,
            bar: self.bar,
            eta: self.eta,
            summary: self.summary,
            events: self.events,
            events_output: self.events_output,
            json_timeline: self.json_timeline,
            max_output,
            tmpdir: self.tmpdir,
            command: CommandSpec {
                words: command,
                quote: self.quote,
                context: self.context_replace,
                names,
                tagstring: self.tagstring.map(String::into_bytes),
                filters: self.filter.into_iter().map(String::into_bytes).collect(),
                columns: Vec::new(),
                nice: self.nice,
                process_slot_var: self.process_slot_var,
                // With -S, --workdir names a directory on the hosts; jobs on this machine (:)
                // use it only where it exists here.
                workdir: match remote_run {
                    true => self.workdir.filter(|w| w.is_dir()),
                    false => self.workdir,
                },
            },
            sources,
            link: self.link,
            batch,
            skip_first_line: self.skip_first_line,
            header: column_names,
            shuf: self.shuf,
            verbose: self.verbose > 0,
            verbose_stderr: self.verbose_stderr,
            delay,
            total_jobs: self.total_jobs,
        })
    }
}

fn path_of(b: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(OsString::from_vec(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&b).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_gnu_parallel_reads_them() {
        assert_eq!(gnu_seconds("2.5"), Some(2.5));
        assert_eq!(gnu_seconds("1m"), Some(60.0));
        assert_eq!(gnu_seconds("1m30"), Some(90.0));
        assert_eq!(gnu_seconds("1d3.5h16.6m4s"), Some(100000.0));
        assert_eq!(gnu_seconds("2H"), Some(7200.0));
        assert_eq!(gnu_seconds("1x"), None);
        assert_eq!(gnu_seconds("m"), None);
        assert!(parse_seconds("0", "--delay").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536", "x").unwrap(), 65536);
        assert_eq!(parse_size("64K", "x").unwrap(), 65536);
        assert_eq!(parse_size("64KiB", "x").unwrap(), 65536);
        assert_eq!(parse_size("1m", "x").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G", "x").unwrap(), 2 << 30);
        assert!(parse_size("1.5M", "x").is_err());
        assert!(parse_size("M", "x").is_err());
        assert!(parse_size("99999999999G", "x").is_err());
    }
}
