//! What to run: the [`Job`] builder.

use crate::stream::{StdinSender, StdinStream};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a job reads on its standard input.
#[derive(Debug, Clone, Default)]
pub enum Stdin {
    /// Nothing: the null device. The default, so a job never waits on herd's own terminal.
    #[default]
    Null,
    /// These bytes, then end of file. herd writes them without blocking its event loop. A
    /// `Vec` behind the `Arc`, so [`Stdin::bytes`] takes a buffer of any size without copying
    /// it, and clones of the job share it.
    Bytes(Arc<Vec<u8>>),
    /// The contents of this file.
    File(PathBuf),
    /// `len` bytes of this file from byte `offset` (fewer if the file ends first). herd
    /// writes them into the job's stdin pipe as it drains without reading them whole: on
    /// Linux the kernel moves them from the file to the pipe (`splice`), elsewhere they pass
    /// through a small buffer. Many jobs can each take their part of one large file.
    FileRange {
        /// The file.
        path: PathBuf,
        /// Where the job's part starts.
        offset: u64,
        /// How many bytes it has.
        len: u64,
    },
    /// Each of these in turn: bytes, files and ranges of files one after another, such as a
    /// header followed by a file's part. Nothing ([`Stdin::Null`]) and [`Stdin::HeldOpen`]
    /// add nothing inside one.
    Concat(Vec<Stdin>),
    /// Bytes sent while the job runs, through the [`StdinSender`] that [`Stdin::stream`]
    /// returns, written as the pipe drains; end of file when the sender is dropped.
    Stream(StdinStream),
    /// A pipe herd holds open for as long as the job runs and writes nothing into: the job
    /// reads end of file only when it is cancelled or times out (herd closes the pipe before
    /// it signals the job), when it completes, or when herd itself is gone, however that
    /// happened. For a job whose far end must know when to stop, such as a command run over
    /// `ssh`: the remote side sees the end of its input when the job is over.
    HeldOpen,
}

impl Stdin {
    /// Whether starting the job opens a file for its stdin (which may block: opening a FIFO
    /// waits for its writer).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn opens_a_file(&self) -> bool {
        match self {
            Stdin::File(_) | Stdin::FileRange { .. } => true,
            Stdin::Concat(parts) => parts.iter().any(Stdin::opens_a_file),
            Stdin::Null | Stdin::Bytes(_) | Stdin::Stream(_) | Stdin::HeldOpen => false,
        }
    }

    /// Feeds `bytes` to the job, then end of file (a `Vec` is taken as it is, not copied).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Stdin::Bytes(Arc::new(bytes.into()))
    }

    /// Feeds the file at `path` to the job.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Stdin::File(path.into())
    }

    /// A stdin fed while the job runs: bytes given to the returned [`StdinSender`] are
    /// written into the job's pipe by herd's event loop as the job reads (no thread per job).
    /// At most about `limit` bytes wait in the queue (one block of any size when it is
    /// empty): [`StdinSender::send`] waits for room, [`StdinSender::try_send`] gives the bytes
    /// back. Dropping the sender ends the job's input once all it sent is written. A job
    /// waiting for a slot ([`Builder::max_running`](crate::Builder::max_running)) reads
    /// nothing until it starts.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herd_engine::{Herd, Job, Stdin};
    ///
    /// // A program that copies its input to its output.
    /// let copy = if cfg!(windows) { Job::shell("more") } else { Job::new("cat") };
    ///
    /// let herd = Herd::new()?;
    /// let (stdin, sender) = Stdin::stream(1 << 20);
    /// let job = herd.spawn(copy.stdin(stdin))?;
    /// for word in ["pear\n", "apple\n", "fig\n"] {
    ///     sender.send(word.as_bytes().to_vec()).expect("the job reads its input");
    /// }
    /// drop(sender); // the end of its input
    /// let text = job.wait().stdout.text()?;
    /// assert_eq!(text.lines().collect::<Vec<_>>(), ["pear", "apple", "fig"]);
    /// # Ok(()) }
    /// ```
    pub fn stream(limit: usize) -> (Stdin, StdinSender) {
        let (stream, sender) = StdinStream::new(limit);
        (Stdin::Stream(stream), sender)
    }

    /// Feeds `len` bytes of the file at `path`, from byte `offset`, to the job.
    ///
    /// ```
    /// use herd_engine::{Job, Stdin};
    ///
    /// // Four jobs, each counting the lines of its quarter of a 4 MiB file.
    /// let quarter = 1 << 20;
    /// let jobs: Vec<Job> = (0..4)
    ///     .map(|i| Stdin::file_range("big.log", i * quarter, quarter))
    ///     .map(|part| Job::new("wc").arg("-l").stdin(part))
    ///     .collect();
    /// # assert_eq!(jobs.len(), 4);
    /// ```
    pub fn file_range(path: impl Into<PathBuf>, offset: u64, len: u64) -> Self {
        Stdin::FileRange {
            path: path.into(),
            offset,
            len,
        }
    }
}

/// An environment captured once and shared by many jobs ([`Job::environment`]).
///
/// A job that changes even one variable needs a whole environment of its own. Built from
/// herd's environment at each spawn, that is a copy of every variable per job, on the event
/// loop; a job started from a captured `Environment` shares its strings and pays only for
/// what it changes. Cloning is cheap.
///
/// ```
/// use herd_engine::{Environment, Job};
///
/// let env = Environment::capture();
/// let jobs: Vec<Job> = (1..=3)
///     .map(|i| Job::new("true").environment(&env).env("JOB_NUMBER", i.to_string()))
///     .collect();
/// assert_eq!(jobs.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct Environment(Arc<Snapshot>);

#[derive(Debug)]
pub(crate) struct Snapshot {
    pub vars: Vec<(OsString, OsString)>,
    /// The same variables as `KEY=VALUE` C strings, for the child's `envp`.
    #[cfg(unix)]
    pub entries: Vec<std::ffi::CString>,
}

impl Environment {
    /// herd's own environment as it is now.
    pub fn capture() -> Environment {
        let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        #[cfg(unix)]
        let entries = vars
            .iter()
            .filter_map(|(k, v)| {
                use std::os::unix::ffi::OsStrExt;
                // The process environment holds no NUL byte: nothing is dropped here.
                std::ffi::CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok()
            })
            .collect();
        Environment(Arc::new(Snapshot {
            vars,
            #[cfg(unix)]
            entries,
        }))
    }

    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.0
    }
}

/// Environment changes, applied at spawn time over herd's own environment (or the captured
/// one, or nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvChanges {
    pub clear: bool,
    /// Start from this instead of herd's environment.
    pub base: Option<Environment>,
    /// `None` removes the variable.
    pub vars: Vec<(OsString, Option<OsString>)>,
}

impl EnvChanges {
    /// Whether the job runs with herd's own environment untouched.
    pub fn inherits(&self) -> bool {
        !self.clear && self.base.is_none() && self.vars.is_empty()
    }

    /// The job's whole environment, or `None` when it inherits herd's. `same_key` compares
    /// names (case-insensitive on Windows).
    pub fn resolve(
        &self,
        same_key: impl Fn(&OsStr, &OsStr) -> bool,
    ) -> Option<Vec<(OsString, OsString)>> {
        if self.inherits() {
            return None;
        }
        let mut vars: Vec<(OsString, OsString)> = match (&self.base, self.clear) {
            (_, true) => Vec::new(),
            (Some(base), false) => base.snapshot().vars.clone(),
            (None, false) => std::env::vars_os().collect(),
        };
        for (key, value) in &self.vars {
            vars.retain(|(k, _)| !same_key(k, key));
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        Some(vars)
    }

    /// The `PATH` the child will see, when it is not herd's own: `Some(None)` for none. (Unix,
    /// where herd looks programs up itself.)
    #[cfg(unix)]
    pub fn path_var(&self) -> Option<Option<OsString>> {
        if let Some((_, v)) = self.vars.iter().rev().find(|(k, _)| k == "PATH") {
            return Some(v.clone());
        }
        if self.clear {
            return Some(None);
        }
        let base = self.base.as_ref()?;
        Some(
            base.snapshot()
                .vars
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone()),
        )
    }
}

/// One command to run: a program, its arguments, and how to run it.
///
/// The program is executed directly, never through a shell: arguments reach it exactly as
/// given. A program name without a `/` is looked up in `PATH` (the job's own, if it sets one).
///
/// ```
/// use herd_engine::Job;
/// use std::time::Duration;
///
/// let job = Job::new("grep")
///     .args(["-c", "needle", "haystack.txt"])
///     .env("LC_ALL", "C")
///     .timeout(Duration::from_secs(10));
/// assert_eq!(job.get_program(), "grep");
/// ```
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// Indices into `args` of arguments passed verbatim on Windows.
    pub(crate) raw_args: Vec<usize>,
    pub(crate) env: EnvChanges,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Stdin,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stream_output: bool,
    pub(crate) collect_output: bool,
    pub(crate) max_output: Option<u64>,
    pub(crate) foreground: bool,
    pub(crate) inherit_output: bool,
    pub(crate) cancel_on_drop: bool,
    pub(crate) tag: Option<Arc<str>>,
}

impl Job {
    /// A job that runs `program` with no arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Job {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            raw_args: Vec::new(),
            env: EnvChanges::default(),
            cwd: None,
            stdin: Stdin::Null,
            timeout: None,
            stream_output: false,
            collect_output: true,
            max_output: None,
            foreground: false,
            inherit_output: false,
            cancel_on_drop: false,
            tag: None,
        }
    }

    /// A job that runs `command` with the system's shell: `sh -c COMMAND` on Unix, and on
    /// Windows `cmd /d /s /c "COMMAND"`, the command passed as written (`cmd` parses its own
    /// command line; quoting it as one argument would change what it runs).
    ///
    /// ```
    /// # fn main() -> Result<(), herd_engine::Error> {
    /// let herd = herd_engine::Herd::new()?;
    /// let result = herd.spawn(herd_engine::Job::shell("echo one&& echo two"))?.wait();
    /// assert_eq!(result.stdout.text()?.lines().collect::<Vec<_>>(), ["one", "two"]);
    /// # Ok(()) }
    /// ```
    pub fn shell(command: impl AsRef<OsStr>) -> Self {
        if cfg!(windows) {
            let mut quoted = OsString::from("\"");
            quoted.push(command);
            quoted.push("\"");
            Job::new("cmd").args(["/d", "/s", "/c"]).raw_arg(quoted)
        } else {
            Job::new("sh").arg("-c").arg(command)
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds an argument that, on Windows, goes into the command line exactly as given, with no
    /// quoting: for programs that parse their command line themselves, such as `cmd /c`.
    /// Elsewhere it is an ordinary argument.
    pub fn raw_arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.raw_args.push(self.args.len());
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the job.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .vars
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for the job.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.vars.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the job from an empty environment (plus what [`env`](Self::env) adds).
    pub fn env_clear(mut self) -> Self {
        self.env.clear = true;
        self.env.base = None;
        self.env.vars.clear();
        self
    }

    /// Starts the job from `env` instead of herd's environment at spawn time (plus what
    /// [`env`](Self::env) changes). Jobs that each set a variable or two spawn much faster
    /// this way: see [`Environment`].
    pub fn environment(mut self, env: &Environment) -> Self {
        self.env.clear = false;
        self.env.base = Some(env.clone());
        self
    }

    /// Runs the job in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets what the job reads on stdin (the null device by default).
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
        self
    }

    /// Kills the job's whole process tree when it runs longer than `timeout`: first a polite
    /// signal, then, after the herd's kill grace, a forceful one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Delivers the job's output as [`Event::Output`](crate::Event::Output) chunks while it
    /// runs (off by default). Only jobs submitted with [`Herd::submit`](crate::Herd::submit)
    /// have an event stream to deliver to.
    pub fn stream_output(mut self, yes: bool) -> Self {
        self.stream_output = yes;
        self
    }

    /// Keeps the job's output in its [`JobResult`](crate::JobResult) (on by default). Turn it
    /// off when the output is streamed and not needed again.
    pub fn collect_output(mut self, yes: bool) -> Self {
        self.collect_output = yes;
        self
    }

    /// Names the job for the program that runs it: the tag comes back in the job's events
    /// and its [`JobResult::tag`](crate::JobResult::tag), so that nobody needs a map from
    /// job ids to names. Cloning it is cheap.
    ///
    /// ```
    /// # fn main() -> Result<(), herd_engine::Error> {
    /// let herd = herd_engine::Herd::new()?;
    /// for file in ["a.txt", "b.txt"] {
    ///     herd.submit(herd_engine::Job::shell(format!("echo {file}")).tag(file))?;
    /// }
    /// for result in herd.results() {
    ///     assert_eq!(result.stdout.text()?.trim_end(), result.tag.as_deref().unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn tag(mut self, tag: impl Into<Arc<str>>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The tag given with [`tag`](Self::tag).
    pub fn get_tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// Cancels the job when its [`JobHandle`](crate::JobHandle) is dropped before the job
    /// finishes (off by default: a dropped handle leaves its job running, as a dropped
    /// `std::thread::JoinHandle` leaves its thread). For jobs whose result nobody will want
    /// once the handle is gone: the loser of a `select!`, a request that was abandoned.
    /// Jobs given to [`Herd::submit`](crate::Herd::submit) have no handle; this changes
    /// nothing for them.
    pub fn cancel_on_drop(mut self, yes: bool) -> Self {
        self.cancel_on_drop = yes;
        self
    }

    /// Keeps at most `bytes` of each collected stream: the first half and the last half; the
    /// bytes between are dropped and reported by [`Captured::cut`](crate::Captured::cut). A job
    /// that prints without end then costs a bounded amount of memory and disk. Streamed
    /// [`Event::Output`](crate::Event::Output) chunks are not cut.
    ///
    /// ```
    /// let job = herd_engine::Job::new("yes").max_output(1 << 20);
    /// # let _ = job;
    /// ```
    pub fn max_output(mut self, bytes: u64) -> Self {
        self.max_output = Some(bytes);
        self
    }

    /// Runs the job in this process's process group instead of one of its own (off by
    /// default), for a program that talks to the user on the terminal (a password prompt, an
    /// editor): on Linux, when this process is the terminal's foreground, so is the job, and
    /// reading or setting up the terminal does not stop it. The terminal's Ctrl-C then reaches
    /// the job too. Where jobs are held by process groups, killing the job reaches its process
    /// and the descendants it has at that moment (found in `/proc`), not one that left them;
    /// a cgroup or a Windows job object still holds them all. On Windows every job shares this
    /// process's console when it has one (a job without one to share gets a hidden console of
    /// its own); a foreground job is also in this process's console process group, so the
    /// console's Ctrl-C reaches it.
    pub fn foreground(mut self, yes: bool) -> Self {
        self.foreground = yes;
        self
    }

    /// Gives the job this process's own stdout and stderr instead of capturing them (off by
    /// default): its output goes where this process's goes, at once, and its result's
    /// outputs are empty. With [`foreground`](Self::foreground), a program that draws on the
    /// terminal sees the terminal.
    pub fn inherit_output(mut self, yes: bool) -> Self {
        self.inherit_output = yes;
        self
    }

    /// The program to run.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }
}

/// Takes the program, arguments, environment changes and working directory of a
/// [`std::process::Command`]. (`Command` does not reveal whether `env_clear` was called: call
/// [`Job::env_clear`] for that.)
impl From<&std::process::Command> for Job {
    fn from(cmd: &std::process::Command) -> Self {
        let mut job = Job::new(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            job.env.vars.push((k.to_owned(), v.map(OsStr::to_owned)));
        }
        if let Some(dir) = cmd.get_current_dir() {
            job.cwd = Some(dir.to_owned());
        }
        job
    }
}

impl From<std::process::Command> for Job {
    fn from(cmd: std::process::Command) -> Self {
        Job::from(&cmd)
    }
}
