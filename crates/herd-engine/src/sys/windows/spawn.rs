//! Starting a child with `CreateProcessW`.
//!
//! Inheritance is the subtle part. `CreateProcessW(bInheritHandles=TRUE)` hands the child
//! *every* inheritable handle of the process, so with several spawns in flight each child
//! would inherit its siblings' pipe ends and every EOF would wait for the slowest sibling
//! (KB315939, libuv#1490). herd keeps all its handles non-inheritable, makes inheritable
//! duplicates of exactly the child's three standard handles just before the call, and lists
//! them in `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`, so a child inherits those and nothing else. No
//! global spawn lock is needed, and the spawner threads create processes in parallel.
//!
//! Each child runs in its own job object (kill-on-close, no breakaway) from its first
//! instruction, so it cannot start a grandchild outside the job. Windows 10 and later start it
//! there (`PROC_THREAD_ATTRIBUTE_JOB_LIST`); until the first child shows that the system does,
//! and on older systems, the child starts suspended, is assigned, then resumed (three more
//! round trips to the kernel per spawn, and a thread handle to hold).

use super::command_line;
use super::pipe::{self, Direction};
use super::poller::Pipes;
use super::process::Process;
use super::wide;
use crate::feed::Feed;
use crate::job::{Job, Stdin};
use crate::sys::SpawnFailure;
use crate::SpawnError;
use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Instant, SystemTime};
use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, ERROR_ACCESS_DENIED, ERROR_BAD_EXE_FORMAT,
    ERROR_COMMITMENT_LIMIT, ERROR_DIRECTORY, ERROR_FILE_NOT_FOUND, ERROR_INTERNAL_ERROR,
    ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_ENOUGH_QUOTA, ERROR_NO_SYSTEM_RESOURCES, ERROR_OUTOFMEMORY,
    ERROR_PATH_NOT_FOUND, GENERIC_READ, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::Console::GetConsoleCP;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, IsProcessInJob, JobObjectExtendedLimitInformation,
    SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    CreateProcessW, DeleteProcThreadAttributeList, GetCurrentProcess,
    InitializeProcThreadAttributeList, ResumeThread, TerminateProcess, UpdateProcThreadAttribute,
    CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
    EXTENDED_STARTUPINFO_PRESENT, LPPROC_THREAD_ATTRIBUTE_LIST, PROCESS_INFORMATION,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROC_THREAD_ATTRIBUTE_JOB_LIST, STARTF_USESTDHANDLES,
    STARTUPINFOEXW,
};

/// A child that runs, and herd's ends of its pipes.
pub(crate) struct Spawned {
    pub process: Process,
    pub pipes: Pipes,
    /// [`Stdin::HeldOpen`]: herd's end, closed to tell the child to stop.
    pub held_stdin: Option<OwnedHandle>,
    pub start_time: SystemTime,
    pub started: Instant,
}

/// Failures that say nothing about the job, only that the system could not create a process
/// just now: the engine waits for a running job to finish (or, with none running, a short
/// timer) and tries again, and reports the error only if it persists. `ERROR_INTERNAL_ERROR`
/// is among them: Wine's CreateProcess returns it now and then under load, and a retry
/// succeeds.
fn exhausted(code: i32) -> bool {
    [
        ERROR_INTERNAL_ERROR,
        ERROR_NOT_ENOUGH_MEMORY,
        ERROR_OUTOFMEMORY,
        ERROR_NO_SYSTEM_RESOURCES,
        ERROR_NOT_ENOUGH_QUOTA,
        ERROR_COMMITMENT_LIMIT,
    ]
    .iter()
    .any(|&e| e as i32 == code)
}

fn classify(e: io::Error, program: &OsStr) -> SpawnFailure {
    let code = e.raw_os_error().unwrap_or(0);
    if exhausted(code) {
        return SpawnFailure::Exhausted(e);
    }
    let program = program.to_string_lossy().into_owned();
    SpawnFailure::Job(match code as u32 {
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => SpawnError::NotFound { program },
        ERROR_ACCESS_DENIED | ERROR_BAD_EXE_FORMAT => {
            SpawnError::NotExecutable { program, source: e }
        }
        _ => SpawnError::Io { program, source: e },
    })
}

/// An inheritable duplicate of `handle`, closed when dropped.
fn inheritable(handle: &OwnedHandle) -> io::Result<OwnedHandle> {
    inheritable_raw(handle.as_raw_handle() as HANDLE)
}

/// An inheritable duplicate of `handle`, a handle of this process (its own stdout, say).
fn inheritable_raw(handle: HANDLE) -> io::Result<OwnedHandle> {
    let mut dup: HANDLE = ptr::null_mut();
    // SAFETY: duplicating a handle of our own process into our own process; an invalid one
    // makes the call fail, which is reported.
    let ok = unsafe {
        let me = GetCurrentProcess();
        DuplicateHandle(me, handle, me, &mut dup, 0, 1, DUPLICATE_SAME_ACCESS)
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new handle we own.
    Ok(unsafe { OwnedHandle::from_raw_handle(dup as _) })
}

fn open_read(path: &OsStr) -> io::Result<OwnedHandle> {
    let name = wide(path);
    let sa = SECURITY_ATTRIBUTES {
        nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: ptr::null_mut(),
        bInheritHandle: 0,
    };
    // SAFETY: a NUL-terminated name and a valid, non-inheritable security attributes struct.
    let h = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            &sa,
            OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    };
    if h == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a valid handle we own.
    Ok(unsafe { OwnedHandle::from_raw_handle(h as _) })
}

/// A `PROC_THREAD_ATTRIBUTE_LIST` holding a handle list and, where the system takes it, the
/// job object to start the child in; freed on drop.
struct AttributeList {
    buf: Vec<u64>,
    /// The handles listed, and the job; the list points into these, so they live as long.
    handles: Box<[HANDLE]>,
    job: Box<[HANDLE; 1]>,
}

impl AttributeList {
    fn new(handles: Box<[HANDLE]>, job: Option<HANDLE>) -> io::Result<Self> {
        let count = 1 + job.is_some() as u32;
        let mut size = 0usize;
        // SAFETY: a size query with a null list is the documented first call.
        unsafe { InitializeProcThreadAttributeList(ptr::null_mut(), count, 0, &mut size) };
        let mut buf = vec![0u64; size.div_ceil(8)];
        let list = buf.as_mut_ptr() as LPPROC_THREAD_ATTRIBUTE_LIST;
        // SAFETY: `buf` has at least `size` bytes, 8-aligned.
        if unsafe { InitializeProcThreadAttributeList(list, count, 0, &mut size) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let this = AttributeList {
            buf,
            handles,
            job: Box::new([job.unwrap_or(ptr::null_mut())]),
        };
        let add = |attribute: u32, value: *const HANDLE, len: usize| {
            // SAFETY: the list was initialised above with room for `count` attributes; the
            // values outlive it (same struct, boxed so they do not move).
            let ok = unsafe {
                UpdateProcThreadAttribute(
                    this.list(),
                    0,
                    attribute as usize,
                    value as *const _,
                    len * size_of::<HANDLE>(),
                    ptr::null_mut(),
                    ptr::null(),
                )
            };
            if ok == 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        add(
            PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
            this.handles.as_ptr(),
            this.handles.len(),
        )?;
        if job.is_some() {
            add(PROC_THREAD_ATTRIBUTE_JOB_LIST, this.job.as_ptr(), 1)?;
        }
        Ok(this)
    }

    fn list(&self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.buf.as_ptr() as LPPROC_THREAD_ATTRIBUTE_LIST
    }
}

impl Drop for AttributeList {
    fn drop(&mut self) {
        // SAFETY: the list was initialised in `new`.
        unsafe { DeleteProcThreadAttributeList(self.list()) };
    }
}

/// `KEY=VALUE\0…\0\0` in UTF-16, or `None` to inherit herd's environment.
fn environment(job: &Job) -> Option<Vec<u16>> {
    // Variable names are case-insensitive on Windows.
    let mut vars = job.env.resolve(|a, b| a.eq_ignore_ascii_case(b))?;
    vars.sort_by_key(|(k, _)| k.to_ascii_uppercase());
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend(k.encode_wide());
        block.push(b'=' as u16);
        block.extend(v.encode_wide());
        block.push(0);
    }
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    Some(block)
}

/// Whether `CreateProcessW` starts a child in the job `PROC_THREAD_ATTRIBUTE_JOB_LIST` names
/// (Windows 10 and later): not known yet, it does, or it does not (then every child starts
/// suspended and is assigned before it runs).
static JOB_LIST: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const REFUSED: u8 = 2;

fn job_object() -> io::Result<OwnedHandle> {
    // SAFETY: an unnamed job with default security.
    let job = unsafe { CreateJobObjectW(ptr::null(), ptr::null()) };
    if job.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a valid handle we own.
    let job = unsafe { OwnedHandle::from_raw_handle(job as _) };
    // SAFETY: an all-zero limits struct is valid; we set one flag.
    let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: valid job handle, struct and size.
    let ok = unsafe {
        SetInformationJobObject(
            job.as_raw_handle() as HANDLE,
            JobObjectExtendedLimitInformation,
            &limits as *const _ as *const _,
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(job)
}

/// Whether this process has a console (asked at every spawn: a process may gain or free one).
/// A child then shares it, as a shell's children do. Only a child with no console to share
/// gets one of its own, hidden (`CREATE_NO_WINDOW`, or a window would open per job): that
/// console is a second process (conhost.exe) started beside the child, which halved the spawn
/// rate under Wine.
fn has_console() -> bool {
    // SAFETY: no arguments; it returns 0 when the process has no console.
    unsafe { GetConsoleCP() != 0 }
}

/// `CreateProcessW` takes milliseconds: every spawn goes to a spawner thread.
pub(crate) fn spawns_without_blocking(_job: &Job) -> bool {
    false
}

/// Starts `job`. Runs on a spawner thread.
pub(crate) fn spawn(job: &Job, _containment: &super::Containment) -> Result<Spawned, SpawnFailure> {
    let io_err = |e: io::Error| classify(e, &job.program);
    crate::sys::check_working_dir(job)?;
    let (out_ours, out_child) = pipe::create(Direction::FromChild).map_err(io_err)?;
    let (err_ours, err_child) = pipe::create(Direction::FromChild).map_err(io_err)?;
    let mut held_stdin = None;
    let (stdin_child, stdin_ours) = match &job.stdin {
        Stdin::Null => (open_read(OsStr::new("NUL")).map_err(io_err)?, None),
        Stdin::HeldOpen => {
            let (ours, child) = pipe::create(Direction::ToChild).map_err(io_err)?;
            held_stdin = Some(ours);
            (child, None)
        }
        Stdin::File(path) => {
            let h = open_read(path.as_os_str()).map_err(|source| {
                SpawnFailure::Job(SpawnError::StdinFile {
                    path: path.clone(),
                    source,
                })
            })?;
            (h, None)
        }
        Stdin::Bytes(_) | Stdin::FileRange { .. } | Stdin::Concat(_) | Stdin::Stream(_) => {
            let feed = Feed::of(&job.stdin, &mut |path: &std::path::Path| {
                std::fs::File::open(path).map_err(|source| {
                    SpawnFailure::Job(SpawnError::StdinFile {
                        path: path.to_path_buf(),
                        source,
                    })
                })
            })?;
            let (ours, child) = pipe::create(Direction::ToChild).map_err(io_err)?;
            (child, Some((ours, feed)))
        }
    };
    // With `inherit_output` the child gets herd's own stdout and stderr; herd's pipes, their
    // child ends closed below, then read as empty at once.
    let (out_for_child, err_for_child) = if job.inherit_output {
        (
            inheritable_raw(io::stdout().as_raw_handle() as HANDLE),
            inheritable_raw(io::stderr().as_raw_handle() as HANDLE),
        )
    } else {
        (inheritable(&out_child), inheritable(&err_child))
    };
    let std_handles = [inheritable(&stdin_child), out_for_child, err_for_child];
    let [Ok(stdin_h), Ok(stdout_h), Ok(stderr_h)] = std_handles else {
        return Err(io_err(io::Error::last_os_error()));
    };
    let raw = |h: &OwnedHandle| h.as_raw_handle() as HANDLE;
    let job_handle = job_object().map_err(io_err)?;
    // Windows 10 and later start the child in its job (`PROC_THREAD_ATTRIBUTE_JOB_LIST`):
    // no suspended start, no assignment, no resume. Until a first child shows the system
    // honours it, a child also starts suspended and is checked (and assigned) before it runs.
    let in_job_at_creation = JOB_LIST.load(Ordering::Relaxed);
    let job_list = (in_job_at_creation != REFUSED).then(|| raw(&job_handle));
    let std_list = Box::new([raw(&stdin_h), raw(&stdout_h), raw(&stderr_h)]);
    let attributes = match AttributeList::new(std_list.clone(), job_list) {
        Ok(list) => list,
        Err(_) if job_list.is_some() => {
            JOB_LIST.store(REFUSED, Ordering::Relaxed);
            AttributeList::new(std_list, None).map_err(io_err)?
        }
        Err(e) => return Err(io_err(e)),
    };
    let suspended = in_job_at_creation != WORKS;

    let mut command_line = command_line::make(&job.program, &job.args, &job.raw_args);
    let env = environment(job);
    let cwd = job.cwd.as_ref().map(|d| wide(d.as_os_str()));
    // SAFETY: zeroed STARTUPINFOEXW/PROCESS_INFORMATION are valid initial values.
    let mut si: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    si.StartupInfo.cb = size_of::<STARTUPINFOEXW>() as u32;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = raw(&stdin_h);
    si.StartupInfo.hStdOutput = raw(&stdout_h);
    si.StartupInfo.hStdError = raw(&stderr_h);
    si.lpAttributeList = attributes.list();
    // SAFETY: as above.
    let mut pi: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    let mut flags = CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT;
    if suspended {
        flags |= CREATE_SUSPENDED;
    }
    if !job.foreground {
        // Its own group: Ctrl+C reaches herd, not the job.
        flags |= CREATE_NEW_PROCESS_GROUP;
        if !has_console() {
            flags |= CREATE_NO_WINDOW;
        }
    }
    // SAFETY: every pointer is valid for the call: a mutable NUL-terminated command line, an
    // optional environment block and directory, the startup info whose attribute list and
    // handles live until after the call. bInheritHandles must be TRUE for the handle list.
    let ok = unsafe {
        CreateProcessW(
            ptr::null(),
            command_line.as_mut_ptr(),
            ptr::null(),
            ptr::null(),
            1,
            flags,
            env.as_ref().map_or(ptr::null(), |e| e.as_ptr() as *const _),
            cwd.as_ref().map_or(ptr::null(), |d| d.as_ptr()),
            &si.StartupInfo,
            &mut pi,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        // ERROR_NOT_SUPPORTED, ERROR_INVALID_PARAMETER
        let refused = matches!(e.raw_os_error(), Some(50 | 87));
        if refused && job_list.is_some() && in_job_at_creation == UNKNOWN {
            // A system without the job list may refuse the whole call: do without it.
            JOB_LIST.store(REFUSED, Ordering::Relaxed);
            return spawn(job, _containment);
        }
        if e.raw_os_error() == Some(ERROR_DIRECTORY as i32) {
            let dir = job.cwd.clone().unwrap_or_default();
            return Err(SpawnFailure::Job(SpawnError::WorkingDir { dir, source: e }));
        }
        return Err(io_err(e));
    }
    let start_time = SystemTime::now();
    let started = Instant::now();
    // The child holds its copies now; ours must go, or EOF would never come.
    drop((
        stdin_h,
        stdout_h,
        stderr_h,
        stdin_child,
        out_child,
        err_child,
        attributes,
    ));
    // SAFETY: both handles were just returned to us by CreateProcessW.
    let (process, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(pi.hProcess as _),
            OwnedHandle::from_raw_handle(pi.hThread as _),
        )
    };
    if suspended {
        let mut in_job = 0;
        // SAFETY: valid process and job handles; an out-pointer to a local.
        let checked = unsafe { IsProcessInJob(raw(&process), raw(&job_handle), &mut in_job) };
        if job_list.is_some() && checked != 0 {
            let verdict = if in_job != 0 { WORKS } else { REFUSED };
            JOB_LIST.store(verdict, Ordering::Relaxed);
        }
        // SAFETY: valid job and process handles.
        if in_job == 0 && unsafe { AssignProcessToJobObject(raw(&job_handle), raw(&process)) } == 0
        {
            let e = io::Error::last_os_error();
            // SAFETY: our own suspended child.
            unsafe { TerminateProcess(raw(&process), 1) };
            return Err(io_err(e));
        }
        // SAFETY: the suspended main thread of our child.
        unsafe { ResumeThread(raw(&thread)) };
    }
    drop(thread);
    Ok(Spawned {
        process: Process::new(pi.dwProcessId, process, job_handle),
        pipes: Pipes {
            stdout: out_ours,
            stderr: err_ours,
            stdin: stdin_ours,
        },
        held_stdin,
        start_time,
        started,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_child_runs_in_its_job_whichever_way_it_got_there() {
        // The first child settles whether the system starts children in their job (the job
        // list attribute); later children start that way, or suspended and assigned.
        for _ in 0..3 {
            // `more` waits for its input, held open: the child is alive while it is checked.
            let job = Job::new("cmd")
                .args(["/d", "/c", "more"])
                .stdin(Stdin::HeldOpen);
            let Ok(spawned) = spawn(&job, &super::super::Containment) else {
                panic!("cmd did not start");
            };
            let process = &spawned.process;
            let mut in_job = 0;
            // SAFETY: valid handles of our child and its job; an out-pointer to a local.
            let ok =
                unsafe { IsProcessInJob(process.raw_handle(), process.raw_job(), &mut in_job) };
            assert!(ok != 0 && in_job != 0, "a child outside its job");
            assert_ne!(JOB_LIST.load(Ordering::Relaxed), UNKNOWN);
            process.signal_tree(crate::sys::Kill::Kill);
            drop(spawned.held_stdin);
            spawned.process.reap();
        }
        println!(
            "job list at creation: {}",
            JOB_LIST.load(Ordering::Relaxed) == WORKS
        );
    }

    #[test]
    fn transient_system_failures_are_retried_and_the_rest_fail_the_job() {
        let program = OsStr::new("prog.exe");
        for code in [
            ERROR_INTERNAL_ERROR,
            ERROR_NOT_ENOUGH_MEMORY,
            ERROR_NO_SYSTEM_RESOURCES,
        ] {
            let e = io::Error::from_raw_os_error(code as i32);
            assert!(
                matches!(classify(e, program), SpawnFailure::Exhausted(_)),
                "{code}"
            );
        }
        let e = io::Error::from_raw_os_error(ERROR_FILE_NOT_FOUND as i32);
        assert!(matches!(
            classify(e, program),
            SpawnFailure::Job(SpawnError::NotFound { .. })
        ));
    }
}
