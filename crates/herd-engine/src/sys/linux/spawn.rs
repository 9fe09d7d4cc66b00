//! Starting a job's child: everything prepared in the parent, then one of two ways to create it.
//!
//! The parent does all the work that allocates or may fail in an ordinary way: it looks the
//! program up, builds argv and the environment as C strings, and creates the pipes. Then
//! [`clone3`](super::clone3) (or, where the kernel refuses it, [`posix_spawn`](super::posix_spawn))
//! creates the child, which only moves descriptors, changes directory and exec's. Both borrow
//! the parent's memory instead of copying it, so a spawn costs the same from a parent of 4 GiB.
//!
//! Every descriptor herd creates is close-on-exec from birth (`pipe2(O_CLOEXEC)`): a child
//! spawned concurrently by another thread can never inherit a sibling's pipe, which would
//! delay that sibling's EOF until the unrelated child exits. The child's three standard
//! descriptors are `dup2`'d into place, and everything above 2 is closed, also what a careless
//! library left inheritable.
//!
//! The child leads its own process group (so herd can kill its whole tree, and a terminal's
//! Ctrl-C reaches herd, not the jobs) and starts with an empty signal mask, every handled
//! signal at its default, and SIGPIPE at its default (Rust ignores it, and that would leak into
//! children). Signals ignored by herd's own parent stay ignored, as after a shell's `nohup`.

use super::clone3::{self, Step};
use super::containment::{Containment, Tree};
use super::path::{self, Lookup};
use super::poller::Pipes;
use super::posix_spawn;
use super::process::{ExecCheck, Process};
use crate::feed::Feed;
use crate::job::{Environment, Job, Stdin};
use crate::sys::SpawnFailure;
use crate::SpawnError;
use rustix::fd::{AsRawFd, OwnedFd, RawFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::fcntl_dupfd_cloexec;
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{pidfd_open, PidfdFlags};
use std::cell::OnceCell;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::ptr;
use std::time::{Instant, SystemTime};

/// A child that runs, and the parent's ends of its pipes.
pub(crate) struct Spawned {
    pub process: Process,
    pub pipes: Pipes,
    /// [`Stdin::HeldOpen`]: the write end, closed to tell the child to stop.
    pub held_stdin: Option<OwnedFd>,
    pub start_time: SystemTime,
    pub started: Instant,
}

/// The write end of a child's stdin pipe and what to feed it.
type StdinFeed = (OwnedFd, Feed);

fn exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::ENOSPC)
    )
}

fn classify(e: io::Error, program: &OsStr) -> SpawnFailure {
    if exhausted(&e) {
        return SpawnFailure::Exhausted(e);
    }
    let program = program.to_string_lossy().into_owned();
    SpawnFailure::Job(match e.raw_os_error() {
        Some(libc::ENOENT) => SpawnError::NotFound { program },
        Some(libc::EACCES | libc::EPERM | libc::ENOEXEC | libc::ETXTBSY | libc::EISDIR) => {
            SpawnError::NotExecutable { program, source: e }
        }
        _ => SpawnError::Io { program, source: e },
    })
}

/// `execve` says ENOENT both when the program is missing and when it exists but its `#!`
/// interpreter (or a binary's dynamic loader) does not: tell the two apart.
fn not_found(program: &OsStr, found_at: Option<&Path>) -> SpawnError {
    let shown = program.to_string_lossy().into_owned();
    let Some(path) = found_at.filter(|p| p.is_file()) else {
        return SpawnError::NotFound { program: shown };
    };
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..n];
    let interpreter = if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let word = line
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty())
            .unwrap_or_default();
        String::from_utf8_lossy(word).into_owned()
    } else if head.starts_with(b"\x7fELF") {
        "(its dynamic loader)".to_string()
    } else {
        return SpawnError::NotFound { program: shown };
    };
    SpawnError::InterpreterNotFound {
        program: shown,
        interpreter,
    }
}

fn cstring(bytes: impl Into<Vec<u8>>) -> Result<CString, SpawnFailure> {
    CString::new(bytes).map_err(|_| {
        SpawnFailure::Job(SpawnError::Invalid(
            "an argument or variable contains a NUL byte".into(),
        ))
    })
}

/// The child's environment: `envp` pointers into the strings kept here, or empty to pass the
/// parent's `environ` untouched.
struct Env {
    /// A captured environment the job starts from: its strings are shared, not copied.
    _base: Option<Environment>,
    _owned: Vec<CString>,
    envp: Vec<*const libc::c_char>,
}

fn environment(job: &Job) -> Result<Env, SpawnFailure> {
    let changes = &job.env;
    let entry = |k: &OsString, v: &OsString| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        cstring(kv)
    };
    let mut owned = Vec::new();
    let mut envp = Vec::new();
    match (&changes.base, changes.clear) {
        (Some(base), false) => {
            // The captured strings, less the changed ones, then the changes (the last change
            // of a variable wins): no copy of the whole environment per job.
            let changed = |e: &CStr| {
                let e = e.to_bytes();
                changes.vars.iter().any(|(k, _)| {
                    let k = k.as_bytes();
                    e.len() > k.len() && e.starts_with(k) && e[k.len()] == b'='
                })
            };
            envp.extend(
                base.snapshot()
                    .entries
                    .iter()
                    .filter(|e| !changed(e))
                    .map(|e| e.as_ptr()),
            );
            for (i, (k, v)) in changes.vars.iter().enumerate() {
                let later = changes.vars[i + 1..].iter().any(|(k2, _)| k2 == k);
                if let (Some(v), false) = (v, later) {
                    owned.push(entry(k, v)?);
                }
            }
        }
        _ => {
            if let Some(vars) = changes.resolve(|a, b| a == b) {
                for (k, v) in &vars {
                    owned.push(entry(k, v)?);
                }
            }
        }
    }
    if !changes.inherits() {
        envp.extend(owned.iter().map(|s| s.as_ptr()));
        envp.push(ptr::null());
    }
    Ok(Env {
        _base: changes.base.clone(),
        _owned: owned,
        envp,
    })
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// Looks the job's program up, as a job failure when there is nothing to run.
fn lookup(job: &Job, path_var: Option<&OsStr>) -> Result<std::path::PathBuf, SpawnFailure> {
    path::resolve(&job.program, path_var).map_err(|e| {
        SpawnFailure::Job(match e {
            Lookup::NotFound => SpawnError::NotFound {
                program: job.program.to_string_lossy().into_owned(),
            },
            Lookup::NotExecutable(p) => SpawnError::NotExecutable {
                program: p.to_string_lossy().into_owned(),
                source: io::Error::from_raw_os_error(libc::EACCES),
            },
        })
    })
}

/// Whether [`spawn`] returns without waiting for the child's exec (or anything else slow), so
/// the event loop may call it itself: with `clone3`, unless the job's stdin is a file (opening
/// a FIFO waits for its writer).
pub(crate) fn spawns_without_blocking(job: &Job) -> bool {
    clone3::available() && !job.stdin.opens_a_file()
}

/// Starts `job` inside `containment`: on the event loop when [`spawns_without_blocking`], else
/// on a spawner thread.
pub(crate) fn spawn(job: &Job, containment: &Containment) -> Result<Spawned, SpawnFailure> {
    let path_var = job.env.path_var();
    let lookup_path = path_var
        .as_ref()
        .map(|p| p.as_deref().unwrap_or(OsStr::new("")));
    let program_path = lookup(job, lookup_path)?;
    crate::sys::check_working_dir(job)?;
    let io_err = |e: io::Error| classify(e, &job.program);
    let tree = containment.lend().map_err(io_err)?;
    match spawn_resolved(job, &program_path, Backend::preferred(), tree) {
        // The cached path vanished since it was looked up: look again, once. (Only
        // `posix_spawn` says so here; `clone3`'s child reports it as it exits, see `late_failure`.)
        Err(SpawnFailure::Job(SpawnError::NotFound { .. }))
            if !job.program.as_bytes().contains(&b'/') =>
        {
            path::forget(&job.program);
            let tree = containment.lend().map_err(io_err)?;
            spawn_resolved(job, &lookup(job, lookup_path)?, Backend::preferred(), tree)
        }
        other => other,
    }
}

/// What the child needs, as raw pointers into memory the parent keeps until the child has
/// exec'd: NUL-terminated strings, null-terminated arrays, and descriptors above 2 (so that
/// placing one on 0, 1 or 2 never closes another). Nothing in the child allocates.
pub(super) struct ChildArgs {
    pub path: *const libc::c_char,
    pub argv: *const *const libc::c_char,
    pub envp: *const *const libc::c_char,
    /// Null: stay in the parent's directory.
    pub cwd: *const libc::c_char,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Lead a process group of its own (false for a [`Job::foreground`] job).
    pub own_group: bool,
}

/// The child's program, arguments, environment and directory as C strings, built in the parent
/// where allocating is allowed. The pointers point into heap buffers, which stay put when this
/// value moves (into a `clone3` slot, until the child has exec'd).
struct Prepared {
    path: CString,
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    env: Env,
    cwd: Option<CString>,
}

impl Prepared {
    fn new(job: &Job, program_path: &Path) -> Result<Self, SpawnFailure> {
        let path = cstring(program_path.as_os_str().as_bytes())?;
        let mut argv_owned = Vec::with_capacity(job.args.len() + 1);
        argv_owned.push(cstring(job.program.as_bytes())?);
        for arg in &job.args {
            argv_owned.push(cstring(arg.as_bytes())?);
        }
        let mut argv: Vec<_> = argv_owned.iter().map(|s| s.as_ptr()).collect();
        argv.push(ptr::null());
        let env = environment(job)?;
        let cwd = match &job.cwd {
            Some(dir) => Some(cstring(dir.as_os_str().as_bytes())?),
            None => None,
        };
        Ok(Prepared {
            path,
            _argv: argv_owned,
            argv,
            env,
            cwd,
        })
    }

    fn child_args(&self, [stdin, stdout, stderr]: [RawFd; 3], own_group: bool) -> ChildArgs {
        let envp = if self.env.envp.is_empty() {
            // SAFETY: reading the pointer glibc keeps for the process's environment.
            unsafe { libc::environ as *const *const libc::c_char }
        } else {
            self.env.envp.as_ptr()
        };
        ChildArgs {
            path: self.path.as_ptr(),
            argv: self.argv.as_ptr(),
            envp,
            cwd: self.cwd.as_deref().map_or(ptr::null(), CStr::as_ptr),
            stdin,
            stdout,
            stderr,
            own_group,
        }
    }
}

thread_local! {
    /// `/dev/null` for every child's stdin, opened once per spawning thread and closed when the
    /// thread ends (with its herd).
    static DEV_NULL: OnceCell<OwnedFd> = const { OnceCell::new() };
}

/// The raw descriptor of this thread's `/dev/null`, valid until the thread ends.
fn dev_null() -> io::Result<RawFd> {
    DEV_NULL.with(|cell| {
        if let Some(fd) = cell.get() {
            return Ok(fd.as_raw_fd());
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = above_stdio(rustix::fs::open("/dev/null", flags, Mode::empty())?)?;
        Ok(cell.get_or_init(|| fd).as_raw_fd())
    })
}

/// Grows a stdin pipe that will carry `len` bytes to up to 1 MiB (the default limit for
/// unprivileged users), from 64 KiB: each refill of the pipe costs herd a wake-up and the
/// child a sleep, and a larger pipe needs 16 times fewer. Best effort: past the per-user
/// limit on pipe memory the kernel refuses, and the pipe stays as it is.
fn widen_for(pipe: &OwnedFd, len: u64) {
    const WIDE: u64 = 1 << 20;
    if len > 64 * 1024 {
        let _ = rustix::pipe::fcntl_setpipe_size(pipe, len.min(WIDE) as usize);
    }
}

/// Opens a job's stdin file; a missing or unreadable file fails that job only.
fn open_stdin_file(path: &std::path::Path) -> Result<std::fs::File, SpawnFailure> {
    std::fs::File::open(path).map_err(|source| {
        if exhausted(&source) {
            SpawnFailure::Exhausted(source)
        } else {
            SpawnFailure::Job(SpawnError::StdinFile {
                path: path.to_path_buf(),
                source,
            })
        }
    })
}

/// `fd`, moved above 2 if it is 0, 1 or 2 (which happens only when herd's parent closed its
/// own standard descriptors).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(fcntl_dupfd_cloexec(&fd, 3)?)
}

/// The two ways to create a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Clone3,
    PosixSpawn,
}

impl Backend {
    /// `clone3` until the kernel has refused it once.
    fn preferred() -> Self {
        if clone3::available() {
            Backend::Clone3
        } else {
            Backend::PosixSpawn
        }
    }
}

/// Creates the child: with `clone3` when asked and the kernel allows it, else `posix_spawn`.
fn start_child(
    job: &Job,
    program_path: &Path,
    fds: [RawFd; 3],
    backend: Backend,
    tree: Tree,
) -> Result<Process, SpawnFailure> {
    let program = &job.program;
    let prepared = Prepared::new(job, program_path)?;
    let args = prepared.child_args(fds, !job.foreground);
    if backend == Backend::Clone3 {
        let cgroup = match &tree {
            Tree::Cgroup(cgroup) => Some(cgroup.dir()),
            Tree::Group(_) => None,
        };
        match clone3::start(args, prepared, cgroup) {
            Ok(launched) => {
                let check = ExecCheck {
                    status: launched.status,
                    program: program.clone(),
                    cwd: job.cwd.clone(),
                };
                // Placed by clone3: cannot fail.
                let _ = tree.started(launched.pid, true);
                return Ok(Process::new(
                    launched.pid,
                    launched.pidfd,
                    Some(check),
                    tree,
                ));
            }
            Err(clone3::Failure::Unsupported) => {
                return start_child(job, program_path, fds, Backend::PosixSpawn, tree)
            }
            Err(clone3::Failure::Clone(e)) => return Err(classify(e.into(), program)),
        }
    }
    let pid = posix_spawn::start(&args).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => SpawnFailure::Job(not_found(program, Some(program_path))),
        _ => classify(e, program),
    })?;
    drop(prepared);
    // Race-free: herd never waits on other pids, so this pid cannot have been reaped and reused.
    let kill_and_reap = || {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        // A foreground job leads no group.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        let mut status = 0;
        // SAFETY: waiting on our own child; null rusage is allowed.
        unsafe { libc::wait4(pid.as_raw_nonzero().get(), &mut status, 0, ptr::null_mut()) };
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            // The child runs but cannot be watched: kill and reap it, then retry the job later.
            kill_and_reap();
            let e = io::Error::from(e);
            return Err(if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) {
                SpawnFailure::Job(SpawnError::Io {
                    program: program.to_string_lossy().into_owned(),
                    source: e,
                })
            } else {
                SpawnFailure::Exhausted(e)
            });
        }
    };
    if let Err(e) = tree.started(pid, false) {
        // The child could not be put in its cgroup: it must not run outside it.
        kill_and_reap();
        return Err(classify(e, program));
    }
    Ok(Process::new(pid, pidfd, None, tree))
}

/// The error for a child that failed between `clone3` and its program (seen when it is
/// reaped): named as `posix_spawn`'s would have been.
pub(super) fn late_failure(step: Step, errno: Errno, check: &ExecCheck) -> SpawnError {
    let program = check.program.to_string_lossy().into_owned();
    let source = io::Error::from(errno);
    match step {
        Step::WorkingDir => SpawnError::WorkingDir {
            dir: check.cwd.clone().unwrap_or_default(),
            source,
        },
        Step::Exec => {
            if errno == Errno::NOENT {
                let program = Path::new(&check.program);
                let found = if check.program.as_bytes().contains(&b'/') {
                    Some(match &check.cwd {
                        Some(dir) => dir.join(program),
                        None => program.to_path_buf(),
                    })
                } else {
                    path::resolve(&check.program, None).ok()
                };
                let e = not_found(&check.program, found.as_deref());
                if matches!(e, SpawnError::NotFound { .. }) {
                    // The program vanished since it was looked up: the next job looks again.
                    path::forget(&check.program);
                }
                return e;
            }
            match classify(source, &check.program) {
                SpawnFailure::Job(e) => e,
                SpawnFailure::Exhausted(source) => SpawnError::Io { program, source },
            }
        }
        _ => SpawnError::Io { program, source },
    }
}

fn spawn_resolved(
    job: &Job,
    program_path: &Path,
    backend: Backend,
    tree: Tree,
) -> Result<Spawned, SpawnFailure> {
    let io_err = |e: io::Error| classify(e, &job.program);
    let (out_r, out_w) = pipe_pair().map_err(io_err)?;
    let (err_r, err_w) = pipe_pair().map_err(io_err)?;
    let (out_w, err_w) = if job.inherit_output {
        // The child writes where herd does; herd's pipes, their write ends closed below, read
        // as empty at once, and the job completes when its process exits.
        (
            fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).map_err(|e| io_err(e.into()))?,
            fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3).map_err(|e| io_err(e.into()))?,
        )
    } else {
        (
            above_stdio(out_w).map_err(io_err)?,
            above_stdio(err_w).map_err(io_err)?,
        )
    };
    // The child's stdin: /dev/null, a file, or a pipe herd writes the job's bytes into.
    let mut held_stdin = None;
    let (stdin_child, stdin_ours): (Option<OwnedFd>, Option<StdinFeed>) = match &job.stdin {
        Stdin::Null => (None, None),
        Stdin::HeldOpen => {
            let (r, w) = pipe_pair().map_err(io_err)?;
            held_stdin = Some(w);
            (Some(above_stdio(r).map_err(io_err)?), None)
        }
        Stdin::Bytes(_) | Stdin::FileRange { .. } | Stdin::Concat(_) | Stdin::Stream(_) => {
            let feed = Feed::of(&job.stdin, &mut open_stdin_file)?;
            let (r, w) = pipe_pair().map_err(io_err)?;
            rustix::io::ioctl_fionbio(&w, true).map_err(|e| io_err(e.into()))?;
            widen_for(&w, feed.size_hint());
            (Some(above_stdio(r).map_err(io_err)?), Some((w, feed)))
        }
        Stdin::File(path) => {
            let file = open_stdin_file(path)?;
            (
                Some(above_stdio(OwnedFd::from(file)).map_err(io_err)?),
                None,
            )
        }
    };
    // Our ends never block the event loop; the child's ends stay blocking (children expect it).
    rustix::io::ioctl_fionbio(&out_r, true).map_err(|e| io_err(e.into()))?;
    rustix::io::ioctl_fionbio(&err_r, true).map_err(|e| io_err(e.into()))?;
    let stdin = match &stdin_child {
        Some(fd) => fd.as_raw_fd(),
        None => dev_null().map_err(io_err)?,
    };
    let fds = [stdin, out_w.as_raw_fd(), err_w.as_raw_fd()];
    let process = start_child(job, program_path, fds, backend, tree)?;
    let start_time = SystemTime::now();
    let started = Instant::now();
    // The child has its own copy of the descriptor table (made by the clone), so the parent's
    // copies of the child's ends can go at once.
    drop((out_w, err_w, stdin_child));
    Ok(Spawned {
        process,
        pipes: Pipes {
            stdout: out_r,
            stderr: err_r,
            stdin: stdin_ours,
        },
        held_stdin,
        start_time,
        started,
    })
}

#[cfg(test)]
mod tests {
    //! Both backends against real children: the same set-up, the same errors.
    use super::*;
    use rustix::fd::FromRawFd;
    use std::io::Read;

    const BACKENDS: [Backend; 2] = [Backend::Clone3, Backend::PosixSpawn];

    /// Runs `job` (its program a path) with `backend`; its stdout and exit code.
    fn run(job: &Job, backend: Backend) -> Result<(String, Option<i32>), SpawnFailure> {
        let program = PathBuf::from(&job.program);
        let spawned = spawn_resolved(job, &program, backend, Tree::Group(None))?;
        // The poller feeds stdin in herd; here the test does (small enough for the pipe).
        if let Some((fd, mut feed)) = spawned.pipes.stdin {
            let data = feed.next().unwrap();
            assert_eq!(rustix::io::write(&fd, data).unwrap(), data.len());
        }
        rustix::io::ioctl_fionbio(&spawned.pipes.stdout, false).unwrap();
        let mut out = String::new();
        std::fs::File::from(spawned.pipes.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let info = spawned.process.reap();
        match info.spawn_error {
            // `clone3`'s child reports a failed exec as it exits.
            Some(e) => Err(SpawnFailure::Job(e)),
            None => Ok((out, info.code)),
        }
    }

    fn status_mask(status: &str, name: &str) -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    fn bit(signal: i32) -> u64 {
        1 << (signal - 1)
    }

    #[test]
    fn both_backends_set_up_the_child_alike() {
        // What the child must not inherit: a descriptor left without close-on-exec, SIGPIPE
        // ignored (Rust's doing) and the spawning thread's blocked signals. What it must: other
        // ignored signals (as under `nohup`).
        // (A high number: the shell's own directory listing takes the lowest free one.)
        let null = rustix::fs::open("/dev/null", OFlags::RDONLY, Mode::empty()).unwrap();
        // SAFETY: duplicating a descriptor we own, without close-on-exec; setting a disposition
        // and this thread's mask (no handler is installed).
        let leaked = unsafe {
            let leaked = libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 100);
            assert!(leaked >= 100);
            libc::signal(libc::SIGUSR2, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
            OwnedFd::from_raw_fd(leaked)
        };
        let dir = tempfile::tempdir().unwrap();
        let script =
            "echo pid $$; ps -o pgid= -p $$; pwd; grep -E '^Sig(Blk|Ign)' /proc/self/status; \
                      for f in /proc/$$/fd/*; do echo fd ${f##*/}; done; cat";
        for backend in BACKENDS {
            let job = Job::new("/bin/sh")
                .args(["-c", script])
                .current_dir(dir.path())
                .stdin(crate::Stdin::bytes("from stdin"));
            let (out, code) = run(&job, backend).unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
            assert_eq!(code, Some(0), "{backend:?}: {out}");
            let lines: Vec<&str> = out.lines().collect();
            let pid = lines[0].strip_prefix("pid ").unwrap();
            assert_eq!(
                lines[1].trim(),
                pid,
                "{backend:?}: leads its own process group"
            );
            assert_eq!(
                Path::new(lines[2]).canonicalize().unwrap(),
                dir.path().canonicalize().unwrap()
            );
            assert_eq!(status_mask(&out, "SigBlk:"), 0, "{backend:?}: {out}");
            let ignored = status_mask(&out, "SigIgn:");
            assert_eq!(ignored & bit(libc::SIGPIPE), 0, "{backend:?}: {out}");
            assert_ne!(ignored & bit(libc::SIGUSR2), 0, "{backend:?}: {out}");
            let fds: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("fd ")).collect();
            assert!(
                fds.contains(&"0") && fds.contains(&"2"),
                "{backend:?}: {out}"
            );
            let leaked = leaked.as_raw_fd().to_string();
            assert!(
                !fds.contains(&leaked.as_str()),
                "{backend:?} leaked fd {leaked}: {out}"
            );
            assert!(out.ends_with("from stdin"), "{backend:?}: {out}");
        }
    }

    #[test]
    fn both_backends_start_the_child_inside_its_cgroup() {
        let containment = Containment::new(true, true, false);
        if containment.level() != crate::Containment::Cgroup {
            assert!(
                std::env::var_os("HERD_REQUIRE_CGROUP").is_none(),
                "no cgroup where CI requires one"
            );
            testkit::skipped("herd may not create cgroups here");
            return;
        }
        for backend in BACKENDS {
            // The child reads its cgroup only once told to (after `spawn` returned): a child
            // of `posix_spawn` is moved in only after its exec.
            let job = Job::new("/bin/sh")
                .args(["-c", "read go; cat /proc/self/cgroup"])
                .stdin(crate::Stdin::bytes("go\n"));
            let program = PathBuf::from(&job.program);
            let tree = containment.lend().unwrap();
            let mut spawned = spawn_resolved(&job, &program, backend, tree).unwrap();
            let (fd, feed) = spawned.pipes.stdin.as_mut().unwrap();
            let data = feed.next().unwrap();
            assert_eq!(rustix::io::write(&*fd, data).unwrap(), data.len());
            rustix::io::ioctl_fionbio(&spawned.pipes.stdout, false).unwrap();
            let mut out = String::new();
            std::fs::File::from(spawned.pipes.stdout)
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(spawned.process.reap().code, Some(0));
            let line = out.lines().find(|l| l.starts_with("0::")).unwrap();
            assert!(line.contains("/herd-"), "{backend:?}: {out}");
        }
    }

    #[test]
    fn both_backends_name_what_failed() {
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("data");
        std::fs::write(&not_executable, "not a program").unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        for backend in BACKENDS {
            match run(&Job::new(&script), backend) {
                Err(SpawnFailure::Job(SpawnError::InterpreterNotFound { interpreter, .. })) => {
                    assert_eq!(interpreter, "/no/such/interpreter")
                }
                other => panic!("{backend:?}: {other:?}"),
            }
            let missing = Job::new(dir.path().join("missing"));
            match run(&missing, backend) {
                Err(SpawnFailure::Job(SpawnError::NotFound { .. })) => {}
                other => panic!("{backend:?}: {other:?}"),
            }
            match run(&Job::new(&not_executable), backend) {
                Err(SpawnFailure::Job(SpawnError::NotExecutable { .. })) => {}
                other => panic!("{backend:?}: {other:?}"),
            }
        }
        // The directory vanished after the parent's check: the child's chdir names it.
        let gone = dir.path().join("gone");
        let job = Job::new("/bin/true").current_dir(&gone);
        match run(&job, Backend::Clone3) {
            Err(SpawnFailure::Job(SpawnError::WorkingDir { dir, .. })) => assert_eq!(dir, gone),
            other => panic!("{other:?}"),
        }
    }
}
