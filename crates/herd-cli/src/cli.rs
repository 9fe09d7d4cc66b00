//! The command line: clap definitions (which are also `--help`) and their checks.

use crate::halt::Halt;
use crate::input::{Source, SourceSpec};
use clap::{Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "Run commands in parallel and keep every byte of their output.";

const LONG_ABOUT: &str = "\
Run commands in parallel and keep every byte of their output.

herd runs COMMAND once for each input, many at a time, and captures each job's stdout and \
stderr completely and separately. Inputs are the values after :::, the lines of the files after \
:::: or -a, or, with none of these, the lines of standard input. Several sources combine as a \
cartesian product (the last varies fastest); a source given with :::+ or ::::+ is instead \
linked to the one before it, value by value (the shorter wraps around).

Placeholders in COMMAND are replaced by each input: {} the value, {.} without extension, \
{/} basename, {//} directory, {/.} basename without extension, {N} (and {N.}, {N/}, …) the value \
of the N-th source (with --colsep, the N-th column), {#} the job number (from 1), {%} the job slot (1 to -j). Without a \
placeholder the values are appended as the last arguments.

COMMAND is executed directly, not by a shell: input values reach it exactly as they are and are \
never interpreted. Use --shell to run COMMAND with sh -c (values are then shell-quoted), or give \
no COMMAND to run each input line itself as a shell command.

Each job runs in its own process group. A timeout, Ctrl-C or SIGTERM kills the job's whole tree, \
and descendants that keep a job's output open after it exits are killed after a short grace: \
nothing herd starts outlives it.

Output is kept in memory up to 1 MiB per stream (64 MiB in all), beyond that in unnamed \
temporary files (--tmpdir); --max-output bounds it per job.

Exit status: 0 if every job succeeded, else the number of failed jobs (at most 101); with \
--halt, the status of the job that made herd halt; 130/143 after SIGINT/SIGTERM; 255 for \
herd's own errors (bad options or input are reported before any job starts).";

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
    herd --json results.jsonl --timeout 30 ./test.sh ::: $(seq 100)
  Pairs instead of a product:
    herd mv {1} {2} ::: a b c :::+ x y z
  Columns of a CSV file as {1}, {2}:
    herd --colsep , useradd -m -c {2} {1} :::: users.csv
  Stop at the first failure, resume later where the log left off:
    herd --halt now,fail=1 --joblog run.log ./step.sh :::: items
    herd --resume --joblog run.log ./step.sh :::: items
  Follow a run from another program:
    herd --events events.jsonl --events-output make -C {} ::: */";

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
    /// stderr (the default). Example: herd --group make -C {} ::: */
    #[arg(long, overrides_with_all = ["ungroup", "line_buffer"])]
    pub group: bool,

    /// Pass output through as it arrives, chunks of different jobs mixed (fastest).
    /// Example: herd -u tail -f ::: a.log b.log
    #[arg(short = 'u', long, overrides_with_all = ["group", "line_buffer"])]
    pub ungroup: bool,

    /// Print output as it arrives, in whole lines: lines of different jobs interleave, but a line is
    /// never cut. Example: herd --lb --tag ping -c3 ::: host1 host2
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
    /// then kill them [default: 1]. Example: --eof-grace 0.2
    #[arg(long = "eof-grace", value_name = "SECONDS")]
    pub eof_grace: Option<String>,

    /// Write one JSON object per finished job to FILE (- for stdout, which then carries only JSON):
    /// seq, command, exit_code, signal, timed_out, leaked, error, start_time, duration_s,
    /// user_time_s, system_time_s, max_rss_kb, stdout_bytes, stderr_bytes, the output as
    /// stdout/stderr (UTF-8) or stdout_base64/stderr_base64, and stdout_cut/stderr_cut where
    /// --max-output cut it. Example: --json - | jq .exit_code
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

    /// Print each job's command instead of running it. Example: herd --dry-run rm {} ::: *.tmp
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Log each finished job to FILE in GNU parallel's tab-separated format: Seq, Host, Starttime,
    /// JobRuntime, Send, Receive, Exitval, Signal, Command. Example: --joblog run.log
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,

    /// Read input items separated by NUL instead of newline. Example: find . -print0 | herd -0 wc -c
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// Split each input value into columns at each match of REGEX; the columns become {1}, {2},
    /// … (a missing column is empty). Example: --colsep '\t' or --colsep ' +'
    #[arg(long, value_name = "REGEX")]
    pub colsep: Option<String>,

    /// With --joblog: skip the jobs the log already lists (by job number), run the rest, and
    /// append to the log. Example: --resume --joblog run.log
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    pub resume: bool,

    /// With --joblog: skip the jobs the log lists as successful, run the failed ones again and
    /// the rest, and append to the log. Example: --resume-failed --joblog run.log
    #[arg(long = "resume-failed", requires = "joblog")]
    pub resume_failed: bool,

    /// Write each job's output to DIR/<job number>/stdout and DIR/<job number>/stderr, byte
    /// for byte, as it arrives (it is also printed as usual). Example: --results out
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,

    /// Stop when a condition is met: WHEN,WHY=N or WHEN,WHY=N% where WHEN is now (kill the
    /// running jobs' trees) or soon (let them finish) and WHY is fail, success or done; or never
    /// (the default). 1 means soon,fail=1 and 2 means now,fail=1. herd then exits with the
    /// status of the job that made it halt (0 for success). Example: --halt now,fail=1
    #[arg(long, value_name = "SPEC")]
    pub halt: Option<String>,

    /// Show a progress bar on stderr (only when stderr is a terminal; input is read first to
    /// count the jobs). Example: herd --bar gzip ::: *.log
    #[arg(long)]
    pub bar: bool,

    /// Show the estimated time left on stderr (only when stderr is a terminal; input is read
    /// first to count the jobs). Example: --eta
    #[arg(long)]
    pub eta: bool,

    /// Print one line at the end on stderr: jobs run, failed, skipped, wall time.
    /// Example: --summary
    #[arg(long)]
    pub summary: bool,

    /// Write a JSON Lines stream of the run to FILE (- for stdout) as it happens: "start" (job
    /// number, pid, command), "finish" (the fields of --json, without the output), "retry", and
    /// "end" (totals). Example: --events - | jq -c 'select(.event=="finish")'
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// With --events, also write each chunk of output as an "output" event (stream, and data as
    /// text or data_base64). Example: --events run.jsonl --events-output
    #[arg(long = "events-output", requires = "events")]
    pub events_output: bool,

    /// With --json, give a job's output as one "timeline": its stdout and stderr chunks in the
    /// order herd read them, each {"stream", "text" or "base64"}. Example: --json - --json-timeline
    #[arg(long = "json-timeline", requires = "json")]
    pub json_timeline: bool,

    /// Keep at most BYTES of each job's stdout and of its stderr: the first and the last half,
    /// with a line marking how much was cut between them (K, M, G suffixes: powers of 1024).
    /// Example: --max-output 1M
    #[arg(long = "max-output", value_name = "BYTES")]
    pub max_output: Option<String>,

    /// Put the temporary files that hold large output in DIR [default: the system's temporary
    /// directory]. Example: --tmpdir /var/tmp
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,

    /// Print a man page or a shell completion script to stdout and exit.
    /// Example: herd --generate complete-bash > /etc/bash_completion.d/herd
    #[arg(long, value_name = "KIND")]
    pub generate: Option<Generate>,

    /// The command, its arguments, and the input sources.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// A man page (roff).
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompleteElvish,
    CompletePowershell,
}

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
    pub resume: Option<Resume>,
    pub dry_run: bool,
    pub retries: u32,
    pub delimiter: u8,
    pub colsep: Option<regex::bytes::Regex>,
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
    /// The command template's words; empty when each input is itself a shell command.
    pub command: Vec<Vec<u8>>,
    pub sources: Vec<Source>,
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

/// Splits an attached value off a short option (`-j4` → `-j 4`) among herd's own options.
///
/// clap reads `-j4` as `-j 4` only when no positional argument accepts values that start
/// with a hyphen; COMMAND must (its arguments are the command's own options), so herd does the
/// split itself, up to the first word that is not one of its options.
pub fn split_short_values(args: Vec<OsString>) -> Vec<OsString> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let takes_value = |short: char| {
        cmd.get_arguments()
            .any(|a| a.get_short() == Some(short) && a.get_action().takes_values())
    };
    let long_takes_value = |long: &str| {
        cmd.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&long)))
        })
    };
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut args = args.into_iter();
    out.extend(args.next()); // the program name
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            break;
        };
        if text == "--" || !text.starts_with('-') || text == "-" {
            out.push(arg);
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            out.push(arg);
            if !long.contains('=') && long_takes_value(long) {
                out.extend(args.next());
            }
            continue;
        }
        // A cluster of flags (-ku), perhaps ending in an option with its value (-kj4).
        let mut split = Vec::new();
        let mut value_next = false;
        for (i, c) in text[1..].char_indices() {
            if takes_value(c) {
                split.push(OsString::from(format!("-{c}")));
                let rest = &text[2 + i..];
                if rest.is_empty() {
                    value_next = true;
                } else {
                    split.push(OsString::from(rest.trim_start_matches('=')));
                }
                break;
            }
            if !cmd.get_arguments().any(|a| a.get_short() == Some(c)) && c != 'h' && c != 'V' {
                // Not ours: leave the word for clap to report.
                split = vec![arg.clone()];
                break;
            }
            split.push(OsString::from(format!("-{c}")));
        }
        out.extend(split);
        if value_next {
            out.extend(args.next());
        }
    }
    out.extend(args);
    out
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
        let is_marker = |w: &Vec<u8>| matches!(&w[..], b":::" | b"::::" | b":::+" | b"::::+");
        let mut words = self.command.into_iter().map(bytes).peekable();
        let mut command = Vec::new();
        while let Some(w) = words.next_if(|w| !is_marker(w)) {
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
        while let Some(marker) = words.next() {
            let marker = String::from_utf8_lossy(&marker).into_owned();
            let linked = marker.ends_with('+');
            if linked && sources.is_empty() {
                return Err(UsageError(format!(
                    "{marker} links to the source before it, but it is the first source"
                )));
            }
            let mut items = Vec::new();
            while let Some(w) = words.next_if(|w| !is_marker(w)) {
                items.push(w);
            }
            if marker.starts_with("::::") {
                if items.is_empty() {
                    return Err(UsageError(format!(
                        "{marker} must be followed by at least one file"
                    )));
                }
                // Each file after :::: is its own source, as in GNU parallel; after ::::+ the
                // first is linked.
                for (i, f) in items.into_iter().enumerate() {
                    sources.push(Source {
                        spec: SourceSpec::File(PathBuf::from(
                            String::from_utf8_lossy(&f).into_owned(),
                        )),
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
        if command.is_empty() && self.shell {
            return Err(UsageError("--shell needs a COMMAND".into()));
        }
        let colsep = self
            .colsep
            .as_deref()
            .map(|c| {
                regex::bytes::Regex::new(c).map_err(|e| {
                    let text = e.to_string();
                    let detail = text.lines().last().unwrap_or("").trim();
                    let detail = detail.strip_prefix("error: ").unwrap_or(detail);
                    UsageError(format!("invalid regex '{c}' for --colsep: {detail}"))
                })
            })
            .transpose()?;
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
        if let Some(dir) = &self.tmpdir {
            if !dir.is_dir() {
                return Err(UsageError(format!(
                    "--tmpdir {}: not a directory",
                    dir.display()
                )));
            }
        }
        let resume = match (self.resume, self.resume_failed) {
            (true, _) => Some(Resume::All),
            (_, true) => Some(Resume::Successful),
            _ => None,
        };
        Ok(Options {
            jobs,
            mode,
            tag: self.tag,
            shell: self.shell,
            timeout,
            eof_grace,
            json: self.json,
            joblog: self.joblog,
            resume,
            dry_run: self.dry_run,
            retries: self.retries,
            delimiter: if self.null { 0 } else { b'\n' },
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
            command,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_short_values_are_split_off() {
        let split = |v: &[&str]| -> Vec<String> {
            split_short_values(v.iter().map(OsString::from).collect())
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            split(&["herd", "-j4", "-k", "grep", "-j4", ":::", "a"]),
            ["herd", "-j", "4", "-k", "grep", "-j4", ":::", "a"]
        );
        assert_eq!(
            split(&["herd", "--halt", "-j4", "-afile", "echo"]),
            ["herd", "--halt", "-j4", "-a", "file", "echo"]
        );
        assert_eq!(
            split(&["herd", "-kuj", "3", "-0a=f", "x"]),
            ["herd", "-k", "-u", "-j", "3", "-0", "-a", "f", "x"]
        );
        assert_eq!(split(&["herd", "-kz", "x"]), ["herd", "-kz", "x"]);
        assert_eq!(
            split(&["herd", "-j", "4", "echo", "-j8"]),
            ["herd", "-j", "4", "echo", "-j8"]
        );
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
