//! The command line: clap definitions (which are also `--help`) and their checks.

use crate::halt::Halt;
use crate::input::{Columns, Source, SourceSpec};
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

{= perl =} is GNU parallel's Perl expression: it is replaced by what the code leaves in $_, \
which starts as the value ({=N perl =}: the N-th value). @arg holds the job's values from \
$arg[1]; Q() shell-quotes, uq() leaves the result unquoted, skip() skips the job (a skipped job \
counts as failed, as in GNU parallel), seq(), slot() and total_jobs() number it; globals last \
the whole run. One perl process beside the run evaluates them, compiled once (a syntax error \
stops herd before any job starts). --rpl names such expressions, --filter runs only the jobs \
where one is true.

COMMAND is composed as GNU parallel composes it: its words are joined with spaces, each \
replacement string is replaced by the value shell-quoted, and the line runs in the shell herd was \
started from ($PARALLEL_SHELL, else the calling shell, else $SHELL, else /bin/sh). So pipes, \
redirections, $VARIABLES and exported functions in COMMAND work (quote them: \
herd 'gzip < {} > {}.gz' ::: *), while input values are never interpreted. A line that needs no \
shell (plain words, a program on PATH) is run directly, with the same arguments, to save a \
process. -q passes COMMAND's words to the program as they are, with no shell. With no \
COMMAND, each input line is itself a command. Jobs see $PARALLEL_SEQ (the job number) and \
$PARALLEL_JOBSLOT (its slot).

GNU parallel's option syntax is understood: bundled short options (-kj4), abbreviated long \
options (--dry), its aliases (--jl, --xapply, --dryrun), $PARALLEL and ~/.parallel/config.

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
  Pipes and redirections, quoted so they reach herd (values are quoted for you):
    herd 'grep -c needle {} | tee {}.count' ::: *.txt
  Several inputs per job, or as many as fit on one command line:
    herd -n 2 diff ::: a1 a2 b1 b2
    herd -m rm ::: *.tmp
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
    override_usage = "herd [OPTIONS] [COMMAND [ARG]...] [::: VALUE...]... [:::: FILE...]...",
    args_override_self = true
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

    /// Accepted for compatibility: every command runs as a shell line (see COMMANDS in --help).
    #[arg(long, hide = true)]
    pub shell: bool,

    /// Start a job only while SIZE of memory is available (K, M, G: powers of 1024; k, m, g:
    /// of 1000); below half of it, the youngest job is killed and runs again later (Linux).
    /// Example: --memfree 2G
    #[arg(long, value_name = "SIZE")]
    pub memfree: Option<String>,

    /// Start a job only while fewer than MAX processes are running or waiting on I/O (MAX%:
    /// a share of the CPUs) (Linux). Example: --load 80%
    #[arg(long, value_name = "MAX")]
    pub load: Option<String>,

    /// Start no job while the machine swaps both in and out (Linux).
    /// Example: herd --noswap ./render.sh ::: scenes/*
    #[arg(long)]
    pub noswap: bool,

    /// Kill a job's whole process tree when it runs longer than SECONDS (SIGTERM, then SIGKILL
    /// after a second). N% (GNU's relative timeout): longer than N% of the median runtime of
    /// the jobs that succeeded so far. Example: --timeout 2.5, or --timeout 300%
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,

    /// After a job exits, wait at most SECONDS for descendants that still hold its output open,
    /// then kill them [default: 1]. Example: --eof-grace 0.2
    #[arg(long = "eof-grace", value_name = "SECONDS")]
    pub eof_grace: Option<String>,

    /// How a job's tree is ended (timeout, Ctrl-C, --halt now): GNU's SIGNAL,MS,… sequence.
    /// herd sends SIGTERM, waits for the sum of the sequence's waits before its KILL, then
    /// SIGKILL; the default is TERM,1000,KILL. Example: --termseq TERM,200,TERM,100,KILL,25
    #[arg(long, value_name = "SEQ")]
    pub termseq: Option<String>,

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

    /// Print each job's command line quoted as one shell word, instead of running it (to put
    /// a command inside another's quotes). Example: herd --shell-quote ::: "it's"
    #[arg(long = "shell-quote")]
    pub shell_quote: bool,

    /// Log each finished job to FILE in GNU parallel's tab-separated format: Seq, Host, Starttime,
    /// JobRuntime, Send, Receive, Exitval, Signal, Command; +FILE appends to it.
    /// Example: --joblog run.log
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,

    /// With --joblog: run again the commands the log lists as failed, with their job numbers,
    /// and append to the log; the command and inputs given are ignored (GNU's rule).
    /// Example: --retry-failed --joblog run.log
    #[arg(long = "retry-failed", requires = "joblog")]
    pub retry_failed: bool,

    /// Read input items separated by NUL instead of newline. Example: find . -print0 | herd -0 wc -c
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// Split each input value into columns at each match of REGEX; the columns become {1}, {2},
    /// … (a missing column is empty). Example: --colsep '\t' or --colsep ' +'
    #[arg(long, value_name = "REGEX")]
    pub colsep: Option<String>,

    /// Read each input as CSV records: fields become {1}, {2}, …, with quoted fields kept
    /// whole (separators, "" and line breaks inside quotes); --colsep gives another one-character
    /// field separator. Example: herd --csv echo {2} :::: table.csv
    #[arg(long)]
    pub csv: bool,

    /// With --joblog: skip the jobs the log already lists (by job number), run the rest, and
    /// append to the log. Example: --resume --joblog run.log
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    pub resume: bool,

    /// With --joblog: skip the jobs the log lists as successful, run the failed ones again and
    /// the rest, and append to the log. Example: --resume-failed --joblog run.log
    #[arg(long = "resume-failed", requires = "joblog")]
    pub resume_failed: bool,

    /// Keep each job's output in files, byte for byte, written as it arrives, instead of
    /// printing it (GNU parallel's layouts): NAME/<column>/<value>/…/stdout, stderr and seq; or,
    /// when NAME has replacement strings, the file it names (with .err and .seq beside it), or
    /// the directory, if it ends in /. Example: --results out, or --results 'out/{#}/'
    #[arg(long, value_name = "NAME")]
    pub results: Option<PathBuf>,

    /// Keep each job's stdout in a new file in --tmpdir (else $TMPDIR) and print the file's
    /// name instead of the output; stderr is not kept (GNU parallel's --files).
    /// Example: herd --files sort ::: *.txt | xargs cat
    #[arg(long, visible_alias = "output-as-files")]
    pub files: bool,

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

    /// Pass the command's words to the program exactly as given, without a shell: nothing in
    /// them is expanded, and values are put in as they are. Example: herd -q perl -e 'print "@ARGV\n"' ::: a
    #[arg(short = 'q', long, help_heading = "Composing commands")]
    pub quote: bool,

    /// Use STR instead of {} for the whole value (GNU's -I). Example: herd -I ,, mv ,, ,,.bak ::: *.txt
    #[arg(
        short = 'I',
        long = "replace-str",
        value_name = "STR",
        help_heading = "Composing commands"
    )]
    pub replace_str: Option<String>,

    /// Like -I, with {} if STR is left out (xargs' -i). Example: --replace=X
    #[arg(long, value_name = "STR", hide = true)]
    pub replace: Option<String>,

    /// Use STR instead of {.} (the value without its extension). Example: --er EXT
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub extensionreplace: Option<String>,

    /// Use STR instead of {/} (the basename). Example: --bnr BASE
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub basenamereplace: Option<String>,

    /// Use STR instead of {//} (the directory). Example: --dnr DIR
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub dirnamereplace: Option<String>,

    /// Use STR instead of {/.} (basename without extension). Example: --bner B
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub basenameextensionreplace: Option<String>,

    /// Use STR instead of {#} (the job number). Example: --seqreplace SEQ
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub seqreplace: Option<String>,

    /// Use STR instead of {%} (the job slot). Example: --slotreplace SLOT
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub slotreplace: Option<String>,

    /// Add GNU's further replacement strings: {+/} {+.} {..} {...} {/..} {##} (number of jobs)
    /// {0#} {0%} {:-default} {:start:len} {#prefix} {%suffix} {/re/new} {//re/new} {^} {,,} ….
    /// Example: herd --plus echo {..} ::: a.tar.gz
    #[arg(long, help_heading = "Composing commands")]
    pub plus: bool,

    /// Define a replacement string TAG for Perl code ('TAG perl'); a (group) in TAG makes it
    /// dynamic, its match being $$1 in the code.
    /// Example: --rpl '{%(.+?)} s/$$1$//;' echo {%.gz} ::: a.gz
    #[arg(long, value_name = "'TAG PERL'", help_heading = "Composing commands")]
    pub rpl: Vec<String>,

    /// What encloses a Perl expression instead of {= and =}: the first half of STR opens it,
    /// the second half closes it. Example: --parens ,,,, echo ',, s/a/b/ ,,' ::: a
    #[arg(long, value_name = "STR", help_heading = "Composing commands")]
    pub parens: Option<String>,

    /// Run only the jobs for which this Perl code is true, after its replacement strings are
    /// filled with the job's values, unquoted (repeatable: all must hold). Skipped jobs count
    /// as failed, as in GNU parallel. Example: --filter '{1} < {2}' echo ::: 1 2 ::: 1 2
    #[arg(long, value_name = "PERL", help_heading = "Composing commands")]
    pub filter: Vec<String>,

    /// Give each job at most N inputs (their values, in order, are {1} {2} …; {} is all).
    /// Example: herd -n 2 echo ::: a b c d
    #[arg(
        short = 'n',
        long = "max-args",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_args: Option<usize>,

    /// Like -n; -N0 runs one job per input without using it. Example: herd -N0 date ::: 1 2
    #[arg(
        short = 'N',
        long = "max-replace-args",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_replace_args: Option<usize>,

    /// Like -N, for lines (GNU's -L): a line ending in a blank continues on the next.
    /// Example: herd -L 2 echo :::: pairs.txt
    #[arg(
        short = 'L',
        long = "max-lines",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_lines: Option<String>,

    /// Give each job as many inputs as fit the command line; with several job slots, share the
    /// inputs evenly among them. Example: herd -m rm ::: *.tmp
    #[arg(short = 'm', long, help_heading = "Inputs per job")]
    pub multiple: bool,

    /// Like -m, and repeat the word around {} for each input (context replace).
    /// Example: herd -X echo pre-{}.txt ::: a b
    #[arg(short = 'X', long = "context-replace", help_heading = "Inputs per job")]
    pub context_replace: bool,

    /// As many inputs per job as fit the command line, without sharing among slots (xargs).
    /// Example: herd --xargs echo ::: $(seq 1000)
    #[arg(long, help_heading = "Inputs per job")]
    pub xargs: bool,

    /// The longest command line, in bytes [default: what the system allows].
    /// Example: herd -s 1000 -m echo ::: $(seq 1000)
    #[arg(
        short = 's',
        long = "max-chars",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_chars: Option<usize>,

    /// Stop reading input at a value equal to STR. Example: herd -E END echo :::: list
    #[arg(
        short = 'E',
        long = "eof",
        value_name = "STR",
        help_heading = "Inputs per job"
    )]
    pub eof: Option<String>,

    /// Skip inputs that are empty or only white space. Example: herd -r echo :::: maybe-empty
    #[arg(short = 'r', long = "no-run-if-empty", help_heading = "Inputs per job")]
    pub no_run_if_empty: bool,

    /// Input items end with DELIM instead of newline (\n, \t, \0 and \\ understood).
    /// Example: herd -d , echo :::: list.csv
    #[arg(short = 'd', long, value_name = "DELIM")]
    pub delimiter: Option<String>,

    /// Use SEP instead of ::: to mark values. Example: herd --arg-sep ,, echo ,, a b
    #[arg(long = "arg-sep", value_name = "SEP")]
    pub arg_sep: Option<String>,

    /// Use SEP instead of :::: to mark input files. Example: herd --arg-file-sep // cat // list
    #[arg(long = "arg-file-sep", value_name = "SEP")]
    pub arg_file_sep: Option<String>,

    /// Link every input source to the next, value by value (the shorter wraps around), instead
    /// of combining them. Example: herd --link echo ::: a b c ::: 1 2
    #[arg(long)]
    pub link: bool,

    /// Remove white space around each value: l (left), r (right), lr, or n (none; the default,
    /// but lr with --colsep). Example: --trim lr
    #[arg(long, value_name = "HOW")]
    pub trim: Option<String>,

    /// Do not use the first line of input. Example: herd --skip-first-line echo :::: table.tsv
    #[arg(long = "skip-first-line")]
    pub skip_first_line: bool,

    /// The first line of each input source names its columns (split at --colsep, else at
    /// TABs): {name} then means that column, and --results uses the names. GNU's usual value
    /// is ':'; 0 reads no header. Example: herd --header : echo {size} ::: size S M
    #[arg(long, value_name = "ANY")]
    pub header: Option<String>,

    /// Run the jobs in random order. Example: herd --shuf ./test.sh ::: $(seq 100)
    #[arg(long)]
    pub shuf: bool,

    /// Print each job's command before its output, on stdout (-v -v: also herd's notes).
    /// Example: herd -v gzip ::: *.log
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print each job's command on stderr as it starts (GNU's -t and --verbose).
    /// Example: herd -t rm {} ::: *.tmp
    #[arg(long = "verbose-stderr")]
    pub verbose_stderr: bool,

    /// With --tag: prefix each line with STR instead of the values (replacement strings work).
    /// Example: --tagstring '{#}:{}'
    #[arg(long, value_name = "STR")]
    pub tagstring: Option<String>,

    /// Wait SECONDS between the starts of two jobs. Example: --delay 0.5
    #[arg(long, value_name = "SECONDS")]
    pub delay: Option<String>,

    /// Run each job with this niceness (nice -n N). Example: --nice 10
    #[arg(long, value_name = "N")]
    pub nice: Option<i32>,

    /// Set the environment variable NAME to the job's slot minus one. Example: --process-slot-var SLOT
    #[arg(long = "process-slot-var", value_name = "NAME")]
    pub process_slot_var: Option<String>,

    /// Run the jobs in DIR. Example: --workdir /tmp
    #[arg(long, visible_alias = "wd", value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    /// The number of jobs, for {##}, --bar and --eta when the input is not read ahead.
    /// Example: --total-jobs 1000
    #[arg(long = "total-jobs", value_name = "N")]
    pub total_jobs: Option<u64>,

    /// Undo an earlier --keep-order (from $PARALLEL or a profile). Example: PARALLEL=-k herd --no-keep-order ...
    #[arg(long = "no-keep-order")]
    pub no_keep_order: bool,

    /// Ignore $PARALLEL and ~/.parallel/config. Example: herd --plain echo ::: a
    #[arg(long)]
    pub plain: bool,

    /// Read options from ~/.parallel/NAME (or the file NAME if it starts with / or ./).
    /// Example: -J myprofile
    #[arg(short = 'J', long, value_name = "NAME")]
    pub profile: Vec<String>,

    /// Print the number of CPU threads and exit. Example: herd --number-of-threads
    #[arg(long = "number-of-threads", help_heading = "Information")]
    pub number_of_threads: bool,

    /// Print the number of physical CPU cores and exit. Example: herd --number-of-cores
    #[arg(long = "number-of-cores", help_heading = "Information")]
    pub number_of_cores: bool,

    /// Print the number of physical CPU cores and exit (GNU's obsolete spelling).
    #[arg(long = "number-of-cpus", hide = true)]
    pub number_of_cpus: bool,

    /// Print the number of CPU sockets and exit. Example: herd --number-of-sockets
    #[arg(long = "number-of-sockets", help_heading = "Information")]
    pub number_of_sockets: bool,

    /// Print the longest command line the system takes (as GNU parallel measures it), and
    /// exit. Example: herd --max-line-length-allowed
    #[arg(long = "max-line-length-allowed", help_heading = "Information")]
    pub max_line_length_allowed: bool,

    /// Write the names of the current environment variables to ~/.parallel/ignored_vars (or
    /// $PARALLEL_HOME's), as GNU parallel does for its --env _, and exit.
    /// Example: herd --record-env
    #[arg(long = "record-env", help_heading = "Information")]
    pub record_env: bool,

    /// Exit 255 unless herd's GNU parallel compatibility level (a GNU parallel version,
    /// 20221122) is at least VERSION. Example: --minversion 20200101
    #[arg(long, value_name = "VERSION", help_heading = "Information")]
    pub minversion: Option<u64>,

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

/// A size in bytes: a number with an optional K, M or G (powers of 1024; a trailing B or iB is
/// allowed: 64KiB, 1MB).
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

/// What a job's command line may take: GNU parallel keeps room for its wrapping and halves the
/// rest, and so does herd, so batches have the same size.
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
    /// Checks the options and splits the trailing words into command and sources.
    pub fn into_options(self) -> Result<Options, UsageError> {
        let jobs = match &self.jobs {
            Some(s) => parse_jobs(s)?,
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
        let keep_order = self.keep_order && !self.no_keep_order;
        let mode = if self.ungroup {
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
        let tag = self.tag || self.tagstring.is_some();
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
                            let text = e.to_string();
                            let detail = text.lines().last().unwrap_or("").trim();
                            let detail = detail.strip_prefix("error: ").unwrap_or(detail);
                            UsageError(format!("invalid regex '{c}' for --colsep: {detail}"))
                        })
                })
                .transpose()?,
        };
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
        let no_values = per_job == Some(0);
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
        if let Some(w) = &self.workdir {
            if !w.is_dir() {
                return Err(UsageError(format!(
                    "--workdir {}: not a directory",
                    w.display()
                )));
            }
        }
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
                workdir: self.workdir,
            },
            sources,
            link: self.link,
            batch,
            skip_first_line: self.skip_first_line,
            header: self.header.is_some_and(|h| h != "0"),
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
