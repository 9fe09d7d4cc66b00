//! The command line as clap defines it: every option, its help (which is also the manual) and
//! its GNU parallel spelling. [`crate::options`] checks what was given and makes the run's
//! [`crate::options::Options`].

use clap::{Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

const ABOUT: &str = "Run commands in parallel and keep every byte of their output.";

/// One usage line for `--help`, `-h` and the man page.
macro_rules! usage {
    () => {
        "herd [OPTIONS] [COMMAND [ARG]...] [::: VALUE...]... [:::: FILE...]..."
    };
}

/// One text for `--help` and the man page.
macro_rules! exit_status {
    () => {
        "0 if every job succeeded, else the number of failed jobs (at most 101); with --halt, \
         as --halt says; 128 + the signal after such a signal (130 for Ctrl-C, 143 for \
         SIGTERM); 255 for herd's own errors (bad options or input are reported before any \
         job starts)."
    };
}

const LONG_ABOUT: &str = concat!(
    "\
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

Nothing herd starts outlives it. A timeout, Ctrl-C, or any signal that would end herd (TERM, \
HUP, QUIT, USR1, USR2, ALRM, XCPU, PROF, VTALRM) kills the job's whole tree; so does the end of \
a job, after a short grace for descendants that keep its output open. What holds a tree: on \
Linux, where herd may create a cgroup (v2: as root, or in a delegated subtree such as a systemd \
user session), a cgroup per job, which holds every descendant, even one that calls setsid, and \
a guardian process kills them all if herd itself is killed, even by SIGKILL. Elsewhere (no \
cgroup v2, no permission, or HERD_NO_CGROUP=1), a process group per job, and herd adopts \
what leaves a group (setsid, setpgid) once its parent dies, and kills it within two seconds \
(and at herd's end); only herd's SIGKILL lets such a descendant escape. On Windows, a job object per \
job, which holds every descendant. A job that tries to read the terminal (an ssh, sudo or git \
prompt) is killed and named within a second, as it would otherwise wait for ever.

Output is kept in memory up to 1 MiB per stream (64 MiB in all), beyond that in unnamed \
temporary files (--tmpdir); --max-output bounds it per job. If the disk is full too, a job \
whose output does not fit waits (its pipe fills, so it blocks in write) until printed output \
makes room; the oldest running job always goes on, so the run never stalls.

Exit status: ",
    exit_status!()
);

/// The exit statuses: the end of [`LONG_ABOUT`], and the man page's EXIT STATUS.
pub const EXIT_STATUS: &str = exit_status!();

pub const EXAMPLES: &str = "\
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

/// `herd -h`: one screen (clap's short help would list every option). `--help` is the manual;
/// a unit test checks that every option named here exists.
pub const SUMMARY: &str = concat!(
    "\
herd: run commands in parallel and keep every byte of their output.

Usage: ",
    usage!(),
    "
       (no ::: or ::::? the lines of standard input are the values)

Placeholders: {} value  {.} no extension  {/} basename  {//} dirname  {#} job number
              {%} slot  {N} N-th source or column  {= perl =} an expression

Common options:
  -j, --jobs N           run N jobs at once (default: one per CPU; N% of them; 0: no limit)
  -k, --keep-order       print outputs in input order
  -u, --ungroup          pass output through as it arrives (fastest)
      --line-buffer      whole lines as they arrive; with --tag, prefixed with the input
  -a, --arg-file FILE    read values from FILE (like :::: FILE)
      --colsep REGEX     split each input line into columns {1} {2} ...
  -N, --max-replace-args N   N values per job
      --timeout SECONDS  kill a job's whole process tree after SECONDS
      --retries N        run a failed job up to N times
      --halt SPEC        stop early: now,fail=1  soon,fail=10%  now,success=1
      --joblog FILE      log each job; --resume / --resume-failed use it
      --json FILE        one JSON line per job: command, status, timing, output
      --results DIR      keep each job's output in files
      --dry-run          print the commands, run nothing
      --pipe             split standard input into blocks, one per job (--block 1M)
      --pipepart         the same for a file (-a FILE), without reading it through herd
      --cat, --fifo      give each job its block as a file named {}, not on stdin
  -S, --sshlogin HOSTS   run jobs on other machines over ssh
      --bar, --eta       show progress
  -v, --verbose          print each command before its output

Examples:
  herd gzip -9 ::: *.log                 herd -k --tag wc -l ::: *.txt
  find . -name '*.c' | herd -j 8 cc -c   herd convert {} {.}.png ::: *.jpg

herd --help is the manual: every option, with examples, GNU parallel's spellings,
and the exit statuses.
"
);

/// The command line, as clap sees it.
#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Run 'herd --help' for placeholders, examples and exit statuses.",
    after_long_help = EXAMPLES,
    override_usage = usage!(),
    args_override_self = true,
    disable_help_flag = true
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
    /// after a second); as in GNU parallel, s, m, h and d may follow numbers (1m30s). N%
    /// (GNU's relative timeout): longer than N% of the median runtime of the jobs that
    /// succeeded so far. Example: --timeout 2.5, --timeout 5m, or --timeout 300%
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
    /// and logged. With -S each run goes to a host where the job has not failed yet, while one
    /// is up or still logging in; then to any. Example: --retries 3
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
    /// printing it (GNU parallel's layouts): NAME/COLUMN/VALUE/…/stdout, stderr and seq; or,
    /// when NAME has replacement strings, the file it names (with .err and .seq beside it), or
    /// the directory, if it ends in /. Example: --results out, or --results 'out/{#}/'
    #[arg(long, value_name = "NAME")]
    pub results: Option<PathBuf>,

    /// Keep each job's stdout in a new file in --tmpdir (else $TMPDIR) and print the file's
    /// name instead of the output; stderr is not kept (GNU parallel's --files).
    /// Example: herd --files sort ::: *.txt | xargs cat
    #[arg(long, visible_alias = "output-as-files")]
    pub files: bool,

    /// Let each job use the terminal, for programs that prompt (ssh asking for a password, sudo,
    /// git) or draw (an editor, a pager): the job reads the terminal instead of nothing, runs in
    /// herd's process group (the terminal's foreground, so reading it does not stop the job),
    /// and, unless -k, --group, --lb or --tag say otherwise, writes straight to it. Also sets
    /// -j 1 unless -j is given. herd can still kill such a job (--timeout, --halt now, Ctrl-C),
    /// unlike GNU parallel. Example: herd --tty ssh {} sudo reboot ::: host1 host2
    #[arg(long)]
    pub tty: bool,

    /// Like --tty, without setting -j 1 or -u: each job reads the terminal and runs in herd's
    /// process group; its output is handled as any job's. Example: herd -o -j 2 vipe ::: a b
    #[arg(short = 'o', long = "open-tty")]
    pub open_tty: bool,

    /// Run jobs on other machines over ssh: a list of sshlogins, as GNU parallel takes them,
    /// separated by commas: host, user@host, an alias of ~/.ssh/config, N/host (N job slots
    /// there), an ssh command before the host (ssh -p 2222 host), or : for this machine.
    /// Without N/, a host runs -j jobs, relative to its own CPU count (asked once), as GNU
    /// parallel does. herd logs in to each host once, with a connection it owns for the run
    /// (an ssh control master; more past 10 jobs, sshd's MaxSessions), and runs each job as a
    /// session over it; the remote host needs only a POSIX sh. A job killed by --timeout,
    /// --halt now or Ctrl-C, or by herd's own death, is killed on its host with its process
    /// group. A host whose connection breaks (keepalive: about 3 s) is taken out of rotation,
    /// its jobs run again elsewhere, and it is tried again later. Repeatable.
    /// Example: herd -S 8/server1,me@server2,: gzip -9 {} ::: *.log
    #[arg(short = 'S', long = "sshlogin", value_name = "LOGINS")]
    pub sshlogin: Vec<String>,

    /// Read sshlogins (as for -S) from FILE, one per line; empty lines and lines starting with #
    /// are ignored. .. is ~/.parallel/sshloginfile. Repeatable. Example: --slf hosts.txt
    #[arg(long = "sshloginfile", visible_alias = "slf", value_name = "FILE")]
    pub sshloginfile: Vec<PathBuf>,

    /// The ssh command (with options) for hosts whose sshlogin names none [default: ssh].
    /// Example: --ssh 'ssh -F ./lab_config'
    #[arg(long, value_name = "COMMAND")]
    pub ssh: Option<String>,

    /// With -S: send FILE to the job's host before it runs, over the host's connection (rsync
    /// when both ends have it, else a plain copy), relative to --workdir (a path with /./ lands
    /// relative to it from there; an absolute one at the same place). Usually a replacement
    /// string. A file that cannot be sent fails the job (status 255). Repeatable.
    /// Example: -S host --tf {} wc -l ::: data/*.txt
    #[arg(long = "transferfile", visible_alias = "tf", value_name = "FILE")]
    pub transferfile: Vec<String>,

    /// Shorthand for --transferfile {}. Example: -S host --transfer gzip ::: *.log
    #[arg(long)]
    pub transfer: bool,

    /// With -S: fetch FILE (relative to --workdir) from the job's host after it ran, into the
    /// same path here. One that cannot be fetched fails the job (status 255). Repeatable.
    /// Example: -S host --transfer --return {}.gz gzip ::: *.log
    #[arg(long = "return", value_name = "FILE")]
    pub return_file: Vec<String>,

    /// With -S: remove the files sent and fetched from the host after each job (and the
    /// --basefiles at the end, and the directory of --workdir ...). Example: --cleanup
    #[arg(long)]
    pub cleanup: bool,

    /// Shorthand for --transfer --return FILE --cleanup. Repeatable.
    /// Example: -S host --trc {}.gz gzip ::: *.log
    #[arg(long = "trc", value_name = "FILE")]
    pub trc: Vec<String>,

    /// With -S: send FILE to each host once, before its first job (relative to the login
    /// directory unless absolute). A host that cannot take it gets no job, with the reason.
    /// Repeatable. Example: -S host --bf ./model.bin ./score {} ::: inputs/*
    #[arg(long = "basefile", visible_alias = "bf", value_name = "FILE")]
    pub basefile: Vec<PathBuf>,

    /// Split standard input (or the one file of -a/::::) into blocks of whole records and give
    /// each job one block on its stdin (GNU parallel's --pipe). Blocks are about --block bytes,
    /// cut only at a record's end (--recend, a newline by default; --recstart too when given),
    /// or of exactly -N records; at most one block per running job, and the one being read,
    /// are in memory.
    /// Example: cat big.log | herd --pipe --block 10M grep ERROR
    #[arg(long, visible_alias = "spreadstdin")]
    pub pipe: bool,

    /// Like --pipe, for regular files given with -a or :::: (one or more), cut in place: herd
    /// reads only a little at each block's end to find the next record boundary, and each job
    /// reads its part of the file straight from it (on Linux the kernel moves the bytes from
    /// the page cache into the job's pipe). Memory does not grow with --block. -N is not
    /// available (records are not counted). Example: herd --pipepart -a big.csv --block 100M
    /// wc -l
    #[arg(
        long = "pipe-part",
        visible_alias = "pipepart",
        conflicts_with = "pipe"
    )]
    pub pipe_part: bool,

    /// With --pipe: start one job per job slot (-j), not one per block, and deal the blocks
    /// to whichever job has room, taking turns: for commands slow to start. Each job's stdin
    /// holds at most one block beyond its pipe; a job that ends early leaves its blocks to the
    /// others. Output stays whole per job, not per block. With --pipepart: one part per job
    /// slot (--block -1), as in GNU parallel. Example: cat big.log | herd --pipe --round-robin
    /// -j4 ./slow-to-start-filter
    #[arg(long = "round-robin", visible_aliases = ["roundrobin", "round"])]
    pub round_robin: bool,

    /// With --pipe or --pipepart: --recend and --recstart are regular expressions (Rust's
    /// regex syntax, close to Perl's), taken as written: a block is cut where a match of
    /// --recend is followed by one of --recstart, between the two. Slower than plain strings.
    /// Example: --pipe --regexp --recend '\n\++\n' --recstart '@'
    #[arg(long, visible_alias = "regex")]
    pub regexp: bool,

    /// With --pipe or --pipepart: the block size to aim at, in bytes, with K, M, G, T suffixes
    /// (powers of 1024) or k, m, g, t (powers of 1000), as GNU parallel reads them [default:
    /// 1M with --pipe; -10 with --pipepart]. A record longer than a block is not cut. With
    /// --pipepart, -N means N blocks for each job slot (the files' size / (-j x N)).
    /// Example: --block 64M, or --pipepart --block -4 -j8 (32 jobs)
    #[arg(
        long,
        visible_alias = "block-size",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    pub block: Option<String>,

    /// With --pipe or --pipepart: the string that ends a record [default: \n, unless
    /// --recstart is given]. \n, \t, \r, \0 and \\ are understood. Example: --recend '\0',
    /// or --recend '' for no records at all
    #[arg(long, value_name = "STR")]
    pub recend: Option<String>,

    /// With --pipe or --pipepart: the string that starts a record; a block is cut only
    /// between --recend and --recstart. Example: --recstart '>' (FASTA)
    #[arg(long, value_name = "STR")]
    pub recstart: Option<String>,

    /// With --pipe or --pipepart: take the record separators out of each block before its job
    /// gets it (every --recend followed by a --recstart, then a --recstart at the block's start
    /// and a --recend at its end), as GNU parallel does. With --pipepart each block then passes
    /// through herd's memory whole (give a --block). Example: herd --pipe -N1 --rrs 'printf
    /// "[%s]" "$(cat)"'
    #[arg(long = "remove-rec-sep", visible_aliases = ["removerecsep", "rrs"])]
    pub remove_rec_sep: bool,

    /// Give each job its block as a file named by {} (and by $PARALLEL_TMP) instead of on its
    /// stdin, for programs that read files, not stdin; the file is removed when the job is done.
    /// Implies --pipe unless --pipepart is given. Example: cat big.log | herd --cat wc -l {}
    #[arg(long, conflicts_with = "fifo")]
    pub cat: bool,

    /// With --pipe: keep together the lines that share a value in column COL (a number from 1,
    /// or a name from the header, the first line), each run of them one record, so that -N1
    /// gives each job one group and --block blocks of whole groups. Columns are split by
    /// --colsep (a TAB by default). GNU parallel's Perl expressions are not available yet.
    /// Example: tail -n +2 table.csv | herd --pipe --colsep , --group-by 1 -kN1 wc
    #[arg(long = "group-by", visible_alias = "groupby", value_name = "COL")]
    pub group_by: Option<String>,

    /// With --pipe: start one job per job slot (-j N) and give each line to the job its column
    /// COL's value picks (a number from 1, or a name from the header line, which every job
    /// then gets first), by a hash of the value: all the lines with one value meet in one job,
    /// in the input's order. Columns are split by --colsep (a comma by default, as in GNU
    /// parallel). Example: cat access.csv | herd --pipe --shard 3 -j4 'sort | uniq -c'
    #[arg(long, value_name = "COL", conflicts_with = "bin")]
    pub shard: Option<String>,

    /// Like --shard, but the value is a number and picks the slot itself, modulo -j (0 being
    /// the last slot), as in GNU parallel. Example: seq 10 | herd --pipe --bin 1 -j4 'echo
    /// {%}; cat'
    #[arg(long, value_name = "COL")]
    pub bin: Option<String>,

    /// With --pipe: when reading a block has taken DURATION, give out the whole records read
    /// so far rather than wait for a full --block, as GNU parallel does (seconds; s, m, h, d
    /// may follow). For slow streams. Example: tail -f app.log | herd --pipe --block-timeout
    /// 10s 'grep -c ERROR'
    #[arg(long = "block-timeout", visible_alias = "bt", value_name = "DURATION")]
    pub block_timeout: Option<String>,

    /// With --pipe or --pipepart: give every job the whole input on its stdin (standard input,
    /// or the first -a file), the jobs made from the values of ::: and the other sources, as
    /// GNU parallel does. With --pipe every job runs at once (-j 0 by default), the slowest
    /// setting the pace. Example: seq 1000 | herd --pipe --tee --tag 'grep {} | wc -l' ::: 1 2 3
    #[arg(long)]
    pub tee: bool,

    /// Like --cat, but {} names a named pipe the block flows through as the job reads it:
    /// nothing is written to disk, and the file can be read only once, from start to end. A
    /// command that never opens it still ends. Not on Windows. Example: herd --pipe --fifo
    /// 'grep ERROR {}'
    #[arg(long)]
    pub fifo: bool,

    /// With -S: run every job on every host (one job at a time on each host; -j hosts at once,
    /// all by default). --tag prefixes each line with its host. Example: -S h1,h2 --onall
    /// --tag df -h ::: / /home
    #[arg(long, conflicts_with = "nonall")]
    pub onall: bool,

    /// With -S: run the command once on every host, with no input. --tag prefixes each line
    /// with its host. Example: herd -S h1,h2,h3 --nonall --tag uptime
    #[arg(long)]
    pub nonall: bool,

    /// Export the variable NAME, as herd has it, to jobs on other hosts (jobs on this machine
    /// have herd's whole environment). Repeatable. Example: -S server --env DATA_DIR
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,

    /// Stop when a condition is met: WHEN,WHY=N or WHEN,WHY=N% where WHEN is now (kill the
    /// running jobs' trees) or soon (let them finish) and WHY is fail, success or done; or never
    /// (the default). 1 means soon,fail=1 and 2 means now,fail=1. herd then exits as GNU
    /// parallel does: with =1, the status of the job that made it halt; with =N, the number of
    /// failed jobs; with =N%, the percentage of all jobs that failed; 0 for success.
    /// Example: --halt now,fail=1
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

    /// With --events, also write each chunk of output as an "output" event: its "stream", and
    /// the bytes as "text", or as "base64" when they are not UTF-8. Example: --events run.jsonl
    /// --events-output
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

    /// Print this manual: every option, with an example. Example: herd --help | less
    #[arg(long = "help", action = clap::ArgAction::HelpLong)]
    pub help: Option<bool>,

    /// Print a one-screen summary of the common options (herd -h).
    #[arg(short = 'h', long = "short-help", hide = true)]
    pub short_help: bool,

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
    /// is ':'; 0 reads no header. With --pipe/--pipepart the header (N lines, ':' for one, or
    /// a regular expression matched at the start) goes before every job's block (once per job
    /// with --round-robin). Example: herd --header : echo {size} ::: size S M, or herd
    /// --pipepart --header : -a table.csv ./load
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

    /// Wait SECONDS between the starts of two jobs (s, m, h, d may follow, as in GNU
    /// parallel). Example: --delay 0.5
    #[arg(long, value_name = "SECONDS")]
    pub delay: Option<String>,

    /// Run each job with this niceness (nice -n N). Example: --nice 10
    #[arg(long, value_name = "N")]
    pub nice: Option<i32>,

    /// Set the environment variable NAME to the job's slot minus one. Example: --process-slot-var SLOT
    #[arg(long = "process-slot-var", value_name = "NAME")]
    pub process_slot_var: Option<String>,

    /// Run the jobs in DIR. With -S, DIR is on the host (created if missing; relative to the
    /// login directory; it may hold replacement strings): . is this directory (relative to
    /// $HOME when beneath it), and ... a directory of the job's own under
    /// ~/.parallel/tmp, removed by --cleanup. Example: --workdir /tmp, -S host --wd ...
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
