//! The command line: clap definitions (which are also `--help`) and their checks.

use crate::input::SourceSpec;
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "Run commands in parallel and keep every byte of their output.";

const LONG_ABOUT: &str = "\
Run commands in parallel and keep every byte of their output.

herd runs COMMAND once for each input, many at a time, and captures each job's stdout and \
stderr completely and separately. Inputs are the values after :::, the lines of the files after \
::::, or, with neither, the lines of standard input. Several sources combine as a cartesian \
product (the last varies fastest).

Placeholders in COMMAND are replaced by each input: {} the value, {.} without extension, \
{/} basename, {//} directory, {/.} basename without extension, {N} (and {N.}, {N/}, …) the value \
of the N-th source, {#} the job number (from 1), {%} the job slot (1 to -j). Without a \
placeholder the values are appended as the last arguments.

COMMAND is executed directly, not by a shell: input values reach it exactly as they are and are \
never interpreted. Use --shell to run COMMAND with sh -c (values are then shell-quoted), or give \
no COMMAND to run each input line itself as a shell command.

Each job runs in its own process group. A timeout, Ctrl-C or SIGTERM kills the job's whole tree, \
and descendants that keep a job's output open after it exits are killed after a short grace: \
nothing herd starts outlives it.

Exit status: 0 if every job succeeded, else the number of failed jobs (at most 101); 130/143 \
after SIGINT/SIGTERM; 255 for herd's own errors.";

const EXAMPLES: &str = "\
Examples:
  Compress every log file, 8 at a time:
    herd -j 8 gzip -9 ::: *.log
  Run each line of a file as a shell command, output in input order:
    herd -k < commands.txt
  Cartesian product, with the values in chosen places:
    herd convert {1} -resize {2} {1/.}-{2}.png ::: a.jpg b.jpg ::: 50% 200%
  Values from a file, one job per line, each line of output tagged with its input:
    herd --tag ping -c1 :::: hosts.txt
  A pipeline needs a shell:
    herd --shell 'grep -c needle {} | tee {}.count' ::: *.txt
  Machine-readable results, one JSON object per finished job:
    herd --json results.jsonl --timeout 30 ./test.sh ::: $(seq 100)";

/// The command line, as clap sees it.
#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Run 'herd --help' for placeholders, examples and exit statuses.",
    after_long_help = EXAMPLES,
    override_usage = "herd [OPTIONS] [COMMAND [ARG]...] [::: VALUE...]... [:::: FILE...]..."
)]
pub struct Cli {
    /// Run N jobs at once: a number, N% of the CPUs, or 0 for no limit [default: the number of CPUs].
    /// Example: -j 16, -j 50%.
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<String>,

    /// Print each job's output in input order, not in order of completion. Example: herd -k ...
    #[arg(short = 'k', long = "keep-order")]
    pub keep_order: bool,

    /// Print each job's output as one block when it finishes: its stdout to stdout, its stderr to
    /// stderr (the default).
    #[arg(long, overrides_with_all = ["ungroup", "line_buffer"])]
    pub group: bool,

    /// Pass output through as it arrives, chunks of different jobs mixed (fastest).
    #[arg(short = 'u', long, overrides_with_all = ["group", "line_buffer"])]
    pub ungroup: bool,

    /// Print output as it arrives, in whole lines: lines of different jobs interleave, but a line is
    /// never cut.
    #[arg(long = "line-buffer", visible_alias = "lb", overrides_with_all = ["group", "ungroup"])]
    pub line_buffer: bool,

    /// Prefix each output line with the job's input values and a TAB.
    /// Example: herd --tag wc -l ::: *.txt
    #[arg(long)]
    pub tag: bool,

    /// Run COMMAND with sh -c; input values are shell-quoted into it.
    /// Example: herd --shell 'sort {} | uniq -c > {}.counts' ::: *.txt
    #[arg(long)]
    pub shell: bool,

    /// Kill a job's whole process tree when it runs longer than SECONDS (SIGTERM, then SIGKILL
    /// after a second). Example: --timeout 2.5
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,

    /// After a job exits, wait at most SECONDS for descendants that still hold its output open,
    /// then kill them [default: 1].
    #[arg(long = "eof-grace", value_name = "SECONDS")]
    pub eof_grace: Option<String>,

    /// Write one JSON object per finished job to FILE (- for stdout, which then carries only JSON):
    /// seq, command, exit_code, signal, timed_out, start_time, duration_s, user_time_s,
    /// system_time_s, max_rss_kb, stdout_bytes, stderr_bytes, and the output as stdout/stderr
    /// (UTF-8) or stdout_base64/stderr_base64. Example: --json - | jq .exit_code
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Take input from the lines of FILE, like `:::: FILE` (repeatable; these sources come first).
    /// Example: herd -a hosts.txt ping -c1
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    pub arg_file: Vec<PathBuf>,

    /// Run a failing job up to N times in all, until it succeeds; only its last run is printed
    /// and logged. Example: --retries 3
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub retries: u32,

    /// Print each job's command instead of running it.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Log each finished job to FILE in GNU parallel's tab-separated format: Seq, Host, Starttime,
    /// JobRuntime, Send, Receive, Exitval, Signal, Command. Example: --joblog run.log
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,

    /// Read input items separated by NUL instead of newline (for find -print0).
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// The command, its arguments, and the input sources.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// How output reaches herd's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    Group,
    KeepOrder,
    Ungroup,
    LineBuffer,
}

/// The checked options.
#[derive(Debug)]
pub struct Options {
    pub jobs: usize,
    pub mode: OutputMode,
    pub tag: bool,
    pub shell: bool,
    pub timeout: Option<Duration>,
    pub eof_grace: Option<Duration>,
    pub json: Option<PathBuf>,
    pub joblog: Option<PathBuf>,
    pub dry_run: bool,
    pub retries: u32,
    pub delimiter: u8,
    /// The command template's words; empty when each input is itself a shell command.
    pub command: Vec<Vec<u8>>,
    pub sources: Vec<SourceSpec>,
}

/// A command-line mistake, reported in one line.
#[derive(Debug)]
pub struct UsageError(pub String);

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_jobs(s: &str) -> Result<usize, UsageError> {
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
        ((cpus() as f64 * p / 100.0).round() as usize).max(1)
    } else if let Some(n) = s.strip_prefix('+') {
        cpus() + n.parse::<usize>().map_err(|_| bad())?
    } else if let Some(n) = s.strip_prefix('-') {
        cpus()
            .saturating_sub(n.parse::<usize>().map_err(|_| bad())?)
            .max(1)
    } else {
        match s.parse::<usize>().map_err(|_| bad())? {
            0 => 1 << 20,
            n => n,
        }
    };
    Ok(n)
}

fn parse_seconds(s: &str, option: &str) -> Result<Duration, UsageError> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(UsageError(format!(
            "invalid value '{s}' for {option}: expected a positive number of seconds"
        ))),
    }
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

impl Cli {
    /// Checks the options and splits the trailing words into command and sources.
    pub fn into_options(self) -> Result<Options, UsageError> {
        let jobs = match &self.jobs {
            Some(s) => parse_jobs(s)?,
            None => cpus(),
        };
        let timeout = self
            .timeout
            .as_deref()
            .map(|s| parse_seconds(s, "--timeout"))
            .transpose()?;
        let eof_grace = self
            .eof_grace
            .as_deref()
            .map(|s| parse_seconds(s, "--eof-grace"))
            .transpose()?;
        let mode = if self.ungroup {
            OutputMode::Ungroup
        } else if self.line_buffer {
            OutputMode::LineBuffer
        } else if self.keep_order {
            OutputMode::KeepOrder
        } else {
            OutputMode::Group
        };
        if self.tag && mode == OutputMode::Ungroup {
            return Err(UsageError(
                "--tag needs whole lines: use it with --line-buffer, not --ungroup".into(),
            ));
        }
        if let Some(first) = self.command.first().and_then(|w| w.to_str()) {
            // Everything after the options is taken as the command, so an unknown option would
            // otherwise be run as a program.
            if first.starts_with('-') && first.len() > 1 {
                return Err(UsageError(format!(
                    "unknown option '{first}' (see herd --help)"
                )));
            }
        }
        let mut words = self.command.into_iter().map(bytes).peekable();
        let mut command = Vec::new();
        while let Some(w) = words.next_if(|w| w != b":::" && w != b"::::") {
            command.push(w);
        }
        let mut sources: Vec<SourceSpec> = self
            .arg_file
            .iter()
            .cloned()
            .map(SourceSpec::File)
            .collect();
        while let Some(marker) = words.next() {
            let mut items = Vec::new();
            while let Some(w) = words.next_if(|w| w != b":::" && w != b"::::") {
                items.push(w);
            }
            if marker == b":::" {
                sources.push(SourceSpec::Values(items));
            } else {
                if items.is_empty() {
                    return Err(UsageError(
                        ":::: must be followed by at least one file".into(),
                    ));
                }
                // Each file after :::: is its own source, as in GNU parallel.
                for f in items {
                    sources.push(SourceSpec::File(PathBuf::from(
                        String::from_utf8_lossy(&f).into_owned(),
                    )));
                }
            }
        }
        if sources.is_empty() {
            sources.push(SourceSpec::Stdin);
        }
        let stdin_sources = sources
            .iter()
            .filter(|s| {
                matches!(s, SourceSpec::Stdin)
                    || matches!(s, SourceSpec::File(p) if p.as_os_str() == "-")
            })
            .count();
        if stdin_sources > 1 {
            return Err(UsageError(
                "standard input can be only one input source".into(),
            ));
        }
        if command.is_empty() && self.shell {
            return Err(UsageError("--shell needs a COMMAND".into()));
        }
        Ok(Options {
            jobs,
            mode,
            tag: self.tag,
            shell: self.shell,
            timeout,
            eof_grace,
            json: self.json,
            joblog: self.joblog,
            dry_run: self.dry_run,
            retries: self.retries,
            delimiter: if self.null { 0 } else { b'\n' },
            command,
            sources,
        })
    }
}
