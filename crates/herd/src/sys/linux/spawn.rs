//! Starting a child with `posix_spawn`.
//!
//! glibc implements `posix_spawn` with `clone(CLONE_VM|CLONE_VFORK)`: no page tables are
//! copied, so the cost of a spawn does not grow with the parent's memory, and the call returns
//! only once the child has exec'd (or failed to), which is why it runs on a spawner thread.
//!
//! Every descriptor herd creates is close-on-exec from birth (`pipe2(O_CLOEXEC)`): a child
//! spawned concurrently by another thread can never inherit a sibling's pipe, which would
//! delay that sibling's EOF until the unrelated child exits. The child's three standard
//! descriptors are `dup2`'d into place by the spawn's file actions, and `closefrom(3)` closes
//! anything a careless library left inheritable.
//!
//! The child leads its own process group (so herd can kill its whole tree, and a terminal's
//! Ctrl-C reaches herd, not the jobs), starts with an empty signal mask and with every signal
//! at its default disposition (Rust ignores SIGPIPE, and that would leak into children).

use super::path::{self, Lookup};
use super::poller::Pipes;
use super::process::Process;
use crate::job::{Job, Stdin};
use crate::sys::SpawnFailure;
use crate::SpawnError;
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::ptr;
use std::time::{Instant, SystemTime};

/// A child that runs, and the parent's ends of its pipes.
pub(crate) struct Spawned {
    pub process: Process,
    pub pipes: Pipes,
    pub start_time: SystemTime,
    pub started: Instant,
}

/// The write end of a child's stdin pipe and the bytes to feed it.
type StdinFeed = (OwnedFd, std::sync::Arc<[u8]>);

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

fn cstring(bytes: impl Into<Vec<u8>>) -> Result<CString, SpawnFailure> {
    CString::new(bytes).map_err(|_| {
        SpawnFailure::Job(SpawnError::Invalid(
            "an argument or variable contains a NUL byte".into(),
        ))
    })
}

/// The `PATH` the child will see, when the job changes it.
fn job_path_var(job: &Job) -> Option<Option<OsString>> {
    let set = job
        .env
        .vars
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    match set {
        Some(v) => Some(v),
        None if job.env.clear => Some(None),
        None => None,
    }
}

/// `KEY=VALUE` strings for the child, or `None` to pass the parent's `environ` untouched.
fn environment(job: &Job) -> Result<Option<Vec<CString>>, SpawnFailure> {
    if !job.env.clear && job.env.vars.is_empty() {
        return Ok(None);
    }
    let mut vars: Vec<(OsString, OsString)> = if job.env.clear {
        Vec::new()
    } else {
        std::env::vars_os().collect()
    };
    for (key, value) in &job.env.vars {
        vars.retain(|(k, _)| k != key);
        if let Some(value) = value {
            vars.push((key.clone(), value.clone()));
        }
    }
    let mut out = Vec::with_capacity(vars.len());
    for (k, v) in vars {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        out.push(cstring(kv)?);
    }
    Ok(Some(out))
}

/// Owns a `posix_spawnattr_t` and a `posix_spawn_file_actions_t` and destroys them.
struct SpawnAttrs {
    attr: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

impl SpawnAttrs {
    fn new() -> io::Result<Box<Self>> {
        // SAFETY: both are plain C structs that the init functions below fully initialise.
        let mut this: Box<Self> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: pointers to owned, writable structs.
        let r = unsafe { libc::posix_spawnattr_init(&mut this.attr) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: as above.
        let r = unsafe { libc::posix_spawn_file_actions_init(&mut this.actions) };
        if r != 0 {
            // SAFETY: `attr` was initialised just above.
            unsafe { libc::posix_spawnattr_destroy(&mut this.attr) };
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(this)
    }
}

impl Drop for SpawnAttrs {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `new` and are destroyed exactly once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
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

/// Starts `job`. Runs on a spawner thread.
pub(crate) fn spawn(job: &Job) -> Result<Spawned, SpawnFailure> {
    let path_var = job_path_var(job);
    let lookup_path = path_var
        .as_ref()
        .map(|p| p.as_deref().unwrap_or(OsStr::new("")));
    let program_path = lookup(job, lookup_path)?;
    crate::sys::check_working_dir(job)?;
    match spawn_resolved(job, &program_path) {
        // The cached path vanished since it was looked up: look again, once.
        Err(SpawnFailure::Job(SpawnError::NotFound { .. }))
            if !job.program.as_bytes().contains(&b'/') =>
        {
            path::forget(&job.program, lookup_path);
            spawn_resolved(job, &lookup(job, lookup_path)?)
        }
        other => other,
    }
}

fn spawn_resolved(job: &Job, program_path: &Path) -> Result<Spawned, SpawnFailure> {
    let c_path = cstring(program_path.as_os_str().as_bytes())?;
    let mut argv_owned = Vec::with_capacity(job.args.len() + 1);
    argv_owned.push(cstring(job.program.as_bytes())?);
    for arg in &job.args {
        argv_owned.push(cstring(arg.as_bytes())?);
    }
    let mut argv: Vec<*mut libc::c_char> =
        argv_owned.iter().map(|s| s.as_ptr() as *mut _).collect();
    argv.push(ptr::null_mut());
    let env_owned = environment(job)?;
    let mut envp: Vec<*mut libc::c_char> = Vec::new();
    if let Some(env) = &env_owned {
        envp = env.iter().map(|s| s.as_ptr() as *mut _).collect();
        envp.push(ptr::null_mut());
    }
    let c_cwd = match &job.cwd {
        Some(dir) => Some(cstring(dir.as_os_str().as_bytes())?),
        None => None,
    };

    let io_err = |e: io::Error| classify(e, &job.program);
    let (out_r, out_w) = pipe_pair().map_err(io_err)?;
    let (err_r, err_w) = pipe_pair().map_err(io_err)?;
    // The child's stdin: /dev/null, a file, or a pipe herd writes the job's bytes into.
    let (stdin_child, stdin_ours): (Option<OwnedFd>, Option<StdinFeed>) = match &job.stdin {
        Stdin::Null => (None, None),
        Stdin::Bytes(data) => {
            let (r, w) = pipe_pair().map_err(io_err)?;
            rustix::io::ioctl_fionbio(&w, true).map_err(|e| io_err(e.into()))?;
            (Some(r), Some((w, data.clone())))
        }
        Stdin::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| {
                if exhausted(&source) {
                    SpawnFailure::Exhausted(source)
                } else {
                    SpawnFailure::Job(SpawnError::StdinFile {
                        path: path.clone(),
                        source,
                    })
                }
            })?;
            (Some(OwnedFd::from(file)), None)
        }
    };
    // Our ends never block the event loop; the child's ends stay blocking (children expect it).
    rustix::io::ioctl_fionbio(&out_r, true).map_err(|e| io_err(e.into()))?;
    rustix::io::ioctl_fionbio(&err_r, true).map_err(|e| io_err(e.into()))?;

    let mut attrs = SpawnAttrs::new().map_err(io_err)?;
    let dev_null = c"/dev/null";
    // SAFETY: `attrs` holds initialised attribute and file-action objects; every pointer passed
    // (signal sets, path strings, argv, envp) points to memory that outlives the spawn call, and
    // every descriptor named is open in this process.
    let pid = unsafe {
        let attr = &mut attrs.attr;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        check(libc::posix_spawnattr_setsigmask(attr, &empty)).map_err(io_err)?;
        check(libc::posix_spawnattr_setsigdefault(attr, &all)).map_err(io_err)?;
        check(libc::posix_spawnattr_setpgroup(attr, 0)).map_err(io_err)?;
        let flags = libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETPGROUP;
        check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short)).map_err(io_err)?;

        let actions = &mut attrs.actions;
        match &stdin_child {
            Some(fd) => check(libc::posix_spawn_file_actions_adddup2(
                actions,
                fd.as_raw_fd(),
                0,
            )),
            None => check(libc::posix_spawn_file_actions_addopen(
                actions,
                0,
                dev_null.as_ptr(),
                libc::O_RDONLY,
                0,
            )),
        }
        .map_err(io_err)?;
        check(libc::posix_spawn_file_actions_adddup2(
            actions,
            out_w.as_raw_fd(),
            1,
        ))
        .map_err(io_err)?;
        check(libc::posix_spawn_file_actions_adddup2(
            actions,
            err_w.as_raw_fd(),
            2,
        ))
        .map_err(io_err)?;
        if let Some(dir) = &c_cwd {
            check(libc::posix_spawn_file_actions_addchdir_np(
                actions,
                dir.as_ptr(),
            ))
            .map_err(io_err)?;
        }
        check(libc::posix_spawn_file_actions_addclosefrom_np(actions, 3)).map_err(io_err)?;

        let envp_ptr = if env_owned.is_some() {
            envp.as_ptr()
        } else {
            libc::environ as *const *mut libc::c_char
        };
        let mut pid: libc::pid_t = 0;
        check(libc::posix_spawn(
            &mut pid,
            c_path.as_ptr(),
            &attrs.actions,
            &attrs.attr,
            argv.as_ptr(),
            envp_ptr,
        ))
        .map_err(io_err)?;
        pid
    };
    let start_time = SystemTime::now();
    let started = Instant::now();
    drop((out_w, err_w, stdin_child));
    let pid = Pid::from_raw(pid).expect("posix_spawn returned pid 0");
    // Race-free: herd never waits on other pids, so this pid cannot have been reaped and reused.
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            // The child runs but cannot be watched: kill and reap it, then retry the job later.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            let mut status = 0;
            // SAFETY: waiting on our own child; null rusage is allowed.
            unsafe { libc::wait4(pid.as_raw_nonzero().get(), &mut status, 0, ptr::null_mut()) };
            let e = io::Error::from(e);
            return Err(if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) {
                SpawnFailure::Job(SpawnError::Io {
                    program: job.program.to_string_lossy().into_owned(),
                    source: e,
                })
            } else {
                SpawnFailure::Exhausted(e)
            });
        }
    };
    Ok(Spawned {
        process: Process::new(pid, pidfd),
        pipes: Pipes {
            stdout: out_r,
            stderr: err_r,
            stdin: stdin_ours,
        },
        start_time,
        started,
    })
}
