//! Starting a child with `clone3`: herd's own `posix_spawn`, for the common case.
//!
//! Why not glibc's `posix_spawn`: per child it maps and unmaps a fresh stack (in a process with
//! several threads every unmap interrupts the other CPUs to flush their TLBs), checks each file
//! action against the descriptor limit (six `getrlimit` calls), and in the child resets signal
//! handlers by asking about all 64 signals, one `rt_sigaction` each. Measured with the C
//! baseline's loop, dropping those costs saves a fifth of the wall time of a run of tiny jobs.
//!
//! `clone3` does the same work with less:
//! - `CLONE_VM | CLONE_VFORK`: as with `vfork`, the child borrows the parent's memory, so no
//!   page table is copied whatever the parent's size, and the calling (spawner) thread sleeps
//!   until the child has exec'd or exited. The child therefore reads the arguments the parent
//!   prepared in place and writes a failure back into them.
//! - `CLONE_CLEAR_SIGHAND` (Linux 5.5): every signal the parent handles is at its default in
//!   the child, in one step. No handler of the parent can ever run on the child's stack.
//! - `CLONE_PIDFD`: the pidfd comes with the child (no `pidfd_open`).
//! - The child's stack is mapped once per spawner thread and reused.
//!
//! The child makes only raw system calls (no allocation, no lock: another thread of the parent
//! may hold the allocator's) and ends in `execve` or `_exit`. When the kernel refuses `clone3`
//! (before 5.5, or a seccomp filter: container runtimes answer `ENOSYS`), herd falls back to
//! `posix_spawn` for the rest of the process's life.

use super::spawn::ChildSetup;
use rustix::fd::{BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

/// The part of `struct clone_args` herd fills (the kernel's first version, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// Which step of the child's set-up failed, so the parent can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    ProcessGroup,
    Descriptors,
    WorkingDir,
    Signals,
    Exec,
}

/// A child that runs, and its pidfd.
pub(super) type Started = (Pid, OwnedFd);

/// What [`start`] reports when there is no child.
pub(super) enum Failure {
    /// This kernel (or its seccomp filter) does not offer what herd needs: use `posix_spawn`.
    Unsupported,
    /// `clone3` itself failed (no memory, too many processes).
    Clone(Errno),
    /// The child failed before or at `execve` (and has been reaped).
    Child(Step, Errno),
}

/// Whether `clone3` with these flags works here: decided by the first attempt.
static SUPPORT: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const REFUSED: u8 = 2;

/// Whether it is worth trying [`start`] (false once the kernel refused it).
pub(super) fn available() -> bool {
    cfg!(target_arch = "x86_64") && SUPPORT.load(Ordering::Relaxed) != REFUSED
}

/// What the child reads (the parent's prepared set-up) and writes (how it failed).
struct Handoff<'a> {
    setup: &'a ChildSetup<'a>,
    failure: Cell<Option<(Step, Errno)>>,
}

/// Starts the child described by `setup`. Returns once it has exec'd (or failed to).
pub(super) fn start(setup: &ChildSetup) -> Result<Started, Failure> {
    let handoff = Handoff {
        setup,
        failure: Cell::new(None),
    };
    let mut pidfd: i32 = -1;
    let result = STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        if stack.is_none() {
            *stack = Some(ChildStack::new().map_err(Failure::Clone)?);
        }
        let stack = stack.as_ref().expect("mapped just above");
        let mut args = CloneArgs {
            flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
            pidfd: &mut pidfd as *mut i32 as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack.base as u64,
            stack_size: stack.len as u64,
            ..CloneArgs::default()
        };
        // SAFETY: `args` describes a stack that this thread alone uses (thread-local) and that
        // stays mapped; `child_main` never returns and gets a pointer to `handoff`, which lives
        // until `clone3` returns here, which CLONE_VFORK delays until the child has exec'd or
        // exited, so the child never sees it go.
        Ok(unsafe { clone3_vfork(&mut args, child_main, &handoff) })
    })?;
    if result < 0 {
        let errno = Errno::from_raw_os_error(-result as i32);
        let refused = matches!(errno, Errno::NOSYS | Errno::INVAL | Errno::PERM);
        if refused && SUPPORT.load(Ordering::Relaxed) == UNKNOWN {
            SUPPORT.store(REFUSED, Ordering::Relaxed);
            return Err(Failure::Unsupported);
        }
        return Err(Failure::Clone(errno));
    }
    SUPPORT.store(WORKS, Ordering::Relaxed);
    let pid = Pid::from_raw(result as i32).expect("clone3 returned a positive pid");
    // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if let Some((step, errno)) = handoff.failure.get() {
        // The child has already exited (`_exit(127)`): collect it.
        let _ = waitid(
            WaitId::PidFd(rustix::fd::AsFd::as_fd(&pidfd)),
            WaitIdOptions::EXITED,
        );
        return Err(Failure::Child(step, errno));
    }
    Ok((pid, pidfd))
}

/// The child: set up, then `execve`. Runs on its own stack in the parent's memory, with every
/// signal blocked or at its default, and must neither allocate nor take a lock nor return.
extern "C" fn child_main(handoff: *const Handoff) -> ! {
    // SAFETY: `start` passes a pointer to a `Handoff` that outlives the child's use of it.
    let handoff = unsafe { &*handoff };
    let (step, errno) = child_steps(handoff.setup);
    handoff.failure.set(Some((step, errno)));
    // SAFETY: `_exit` ends the child without running anything of the parent's.
    unsafe { libc::_exit(127) }
}

/// The child's set-up; returns only on failure.
fn child_steps(setup: &ChildSetup) -> (Step, Errno) {
    // Its own process group: herd signals the job's whole tree, and a terminal's Ctrl-C
    // reaches herd rather than the jobs.
    if let Err(e) = rustix::process::setpgid(None, None) {
        return (Step::ProcessGroup, e);
    }
    // SAFETY: the three descriptors are open in the parent (and so in this copy of its table)
    // and above 2, so placing one cannot close another.
    let (stdin, stdout, stderr) = unsafe {
        (
            BorrowedFd::borrow_raw(setup.stdin),
            BorrowedFd::borrow_raw(setup.stdout),
            BorrowedFd::borrow_raw(setup.stderr),
        )
    };
    let placed = rustix::stdio::dup2_stdin(stdin)
        .and_then(|()| rustix::stdio::dup2_stdout(stdout))
        .and_then(|()| rustix::stdio::dup2_stderr(stderr));
    if let Err(e) = placed {
        return (Step::Descriptors, e);
    }
    if let Some(dir) = setup.cwd {
        if let Err(e) = rustix::process::chdir(dir) {
            return (Step::WorkingDir, e);
        }
    }
    // Every descriptor above 2 goes, also any a careless library left inheritable. Before
    // Linux 5.9 there is no close_range; close-on-exec still covers herd's own.
    // SAFETY: a plain system call on integers.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // Rust ignores SIGPIPE, and children must not inherit that (`yes | head` would never end
    // `yes`). Other ignored signals are inherited, as from a shell (`nohup`).
    // SAFETY: plain C structs, zero is a valid value; SIG_DFL installs no handler.
    let ok = unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigaction(libc::SIGPIPE, &default, std::ptr::null_mut()) == 0
            && libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) == 0
    };
    if !ok {
        return (Step::Signals, errno());
    }
    // SAFETY: `path`, `argv` and `envp` are NUL-terminated strings and null-terminated arrays
    // that the parent keeps alive until this child has exec'd.
    unsafe { libc::execve(setup.path.as_ptr(), setup.argv, setup.envp) };
    (Step::Exec, errno())
}

/// The error of the libc call just made. The child shares the spawner thread's thread-local
/// storage, so this is the `errno` the child set (the sleeping parent does not use it).
fn errno() -> Errno {
    // SAFETY: `__errno_location` returns this thread's (here: the borrowed) errno slot.
    Errno::from_raw_os_error(unsafe { *libc::__errno_location() })
}

thread_local! {
    /// Each spawner thread's stack for its children: only one child of a thread runs on it at a
    /// time, because the thread sleeps until that child has exec'd.
    static STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
}

/// A small stack with a guard page below it, mapped once and reused.
struct ChildStack {
    /// The lowest usable address (above the guard page).
    base: *mut c_void,
    len: usize,
}

/// The child runs a few system calls; 64 KiB leaves room for a debug build.
const STACK_LEN: usize = 64 * 1024;
const GUARD_LEN: usize = 4096;

impl ChildStack {
    fn new() -> Result<Self, Errno> {
        // SAFETY: a fresh anonymous mapping, owned by the returned value.
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                GUARD_LEN + STACK_LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::STACK,
            )?
        };
        // SAFETY: the first page of the mapping just made; a stack overflow faults there
        // instead of running into other memory.
        if let Err(e) = unsafe { rustix::mm::mprotect(map, GUARD_LEN, MprotectFlags::empty()) } {
            // SAFETY: unmapping what was mapped above, used by nobody.
            let _ = unsafe { rustix::mm::munmap(map, GUARD_LEN + STACK_LEN) };
            return Err(e);
        }
        Ok(ChildStack {
            // SAFETY: within the mapping.
            base: unsafe { map.cast::<u8>().add(GUARD_LEN).cast() },
            len: STACK_LEN,
        })
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no child runs on it (the thread is ending).
        let _ = unsafe {
            rustix::mm::munmap(
                self.base.cast::<u8>().sub(GUARD_LEN).cast(),
                GUARD_LEN + STACK_LEN,
            )
        };
    }
}

/// `clone3`, with the child calling `child(arg)` on its new stack. Returns the child's pid, or
/// a negated errno, in the parent.
///
/// # Safety
/// `args` must name a stack that no one else uses; `child` must not return; `arg` must stay
/// valid until the child no longer uses it (CLONE_VFORK makes that: until `execve`).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vfork(
    args: &mut CloneArgs,
    child: extern "C" fn(*const Handoff) -> !,
    arg: *const Handoff,
) -> isize {
    let ret: isize;
    // The kernel keeps every register but rax, rcx and r11 across `syscall`, in the child too,
    // where the stack pointer is the new stack's top. The child clears the frame pointer (the
    // end of backtraces) and calls `child(arg)`, which never returns; the parent falls through.
    // SAFETY: the caller's contract; the asm touches only the declared registers in the parent.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r9",
            "call r8",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r8") child,
            in("r9") arg,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_vfork(
    _args: &mut CloneArgs,
    _child: extern "C" fn(*const Handoff) -> !,
    _arg: *const Handoff,
) -> isize {
    -(libc::ENOSYS as isize)
}
