//! Starting a child with `clone3`: herd's own spawn, which does not wait for the child's exec.
//!
//! Why not glibc's `posix_spawn`: per child it maps and unmaps a fresh stack (in a process with
//! several threads every unmap interrupts the other CPUs to flush their TLBs), checks each file
//! action against the descriptor limit (six `getrlimit` calls), resets signal handlers by
//! asking about all 64 signals (one `rt_sigaction` each), and above all the calling thread
//! sleeps until the child has exec'd. With `-j 8` and two spawner threads that left the cores
//! idle between spawns; measured on a run of tiny jobs, this file halves the time per job.
//!
//! What `clone3` is asked for:
//! - `CLONE_VM`: the child borrows the parent's memory, so no page table is copied whatever the
//!   parent's size, and it reads the arguments the parent prepared in place.
//! - No `CLONE_VFORK`: the calling thread (the event loop) goes on at once. The child's stack and arguments
//!   stay reserved until the kernel says the child is done with them: `CLONE_CHILD_CLEARTID`
//!   zeroes a word (and wakes a futex on it) when the child exec's or exits, because that is
//!   when it lets go of the shared memory. Each thread that spawns keeps a small pool of stacks.
//! - `CLONE_CLEAR_SIGHAND` (Linux 5.5): every signal the parent handles is at its default in
//!   the child, in one step; no handler of the parent can ever run in the child.
//! - `CLONE_PIDFD`: the pidfd comes with the child (no `pidfd_open`).
//! - `CLONE_INTO_CGROUP` (Linux 5.7), when the herd contains its jobs in cgroups: the child
//!   starts in its job's cgroup, so not even its first fork can happen outside it.
//!
//! The child runs alongside the parent's threads in the same memory, so it touches only its
//! own stack and slot, makes raw system calls (libc's wrappers would write `errno` into the
//! spawning thread's thread-local storage, which that thread is using at the same moment),
//! never allocates and never returns. If it fails before or at `execve`, it writes the step
//! and error into a word the parent keeps until it reaps the child, and exits with 127.
//!
//! The parent also puts the child in its own process group (`setpgid(pid, pid)`, as shells do):
//! once `start` returns, signalling the group reaches the child even if the child has not got
//! as far as its own `setpgid`.
//!
//! When the kernel refuses `clone3` (before 5.5, or a seccomp filter: container runtimes
//! answer `ENOSYS`), herd uses `posix_spawn` for the rest of the process's life.

pub(super) use super::spawn::ChildArgs;
use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::process::Pid;
use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Which step of the child's set-up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    ProcessGroup = 1,
    Descriptors = 2,
    WorkingDir = 3,
    Signals = 4,
    Exec = 5,
}

/// How the child's set-up ended, written by the child before it exits: 0 while it runs or once
/// it has exec'd, else the failed [`Step`] and the error. Read after the child is reaped.
pub(super) struct ExecStatus(AtomicU64);

impl ExecStatus {
    /// The step that failed and its error, if one did. Only meaningful once the child exited.
    pub(super) fn failure(&self) -> Option<(Step, Errno)> {
        let word = self.0.load(Ordering::Acquire);
        let step = match word >> 32 {
            0 => return None,
            1 => Step::ProcessGroup,
            2 => Step::Descriptors,
            3 => Step::WorkingDir,
            4 => Step::Signals,
            _ => Step::Exec,
        };
        Some((step, Errno::from_raw_os_error(word as u32 as i32)))
    }
}

/// A child that runs (or is on its way to `execve`).
pub(super) struct Launched {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// Must outlive the child: keep it until the child is reaped.
    pub status: Box<ExecStatus>,
}

/// What [`start`] reports when there is no child.
pub(super) enum Failure {
    /// This kernel (or its seccomp filter) does not offer what herd needs: use `posix_spawn`.
    Unsupported,
    /// `clone3` itself failed (no memory, too many processes), or no stack could be mapped.
    Clone(Errno),
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

const CLONE_VM: u64 = 0x100;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to its `cgroup` field (the kernel's version 2, 88 bytes). Only the
/// first 64 bytes (version 1) are passed unless a cgroup is asked for, so kernels before 5.7
/// accept it.
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
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_ARGS_V1: usize = 64;

/// Starts a child with `args`, in the cgroup `cgroup` if given; `keep` (the memory `args`
/// points into) is held until the child has exec'd or exited. Returns as soon as the child
/// exists.
pub(super) fn start<K: 'static>(
    args: ChildArgs,
    keep: K,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<Launched, Failure> {
    let status = Box::new(ExecStatus(AtomicU64::new(0)));
    let own_group = args.own_group;
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let slot = pool.free_slot().map_err(Failure::Clone)?;
        slot.handoff = Handoff {
            args,
            status: &*status,
        };
        slot.keep = Some(Box::new(keep));
        let mut pidfd: i32 = -1;
        let mut clone_args = CloneArgs {
            flags: CLONE_VM | CLONE_PIDFD | CLONE_CHILD_CLEARTID | CLONE_CLEAR_SIGHAND,
            pidfd: &mut pidfd as *mut i32 as u64,
            child_tid: slot.busy.as_ptr() as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: slot.stack.base as u64,
            stack_size: slot.stack.len as u64,
            ..CloneArgs::default()
        };
        let mut size = CLONE_ARGS_V1;
        if let Some(cgroup) = cgroup {
            clone_args.flags |= CLONE_INTO_CGROUP;
            clone_args.cgroup = cgroup.as_raw_fd() as u64;
            size = std::mem::size_of::<CloneArgs>();
        }
        // Marked busy before the child exists; the kernel clears it when the child lets go.
        slot.busy.store(1, Ordering::Relaxed);
        // SAFETY: the stack and the handoff belong to this slot, which stays reserved (busy)
        // until the kernel clears `busy` at the child's exec or exit; `keep` holds the memory
        // that `args` points into for as long; `status` is returned to the caller, who keeps
        // it until the child is reaped. `child_main` never returns.
        let result = unsafe { clone3(&mut clone_args, size, child_main, &slot.handoff) };
        if result < 0 {
            slot.busy.store(0, Ordering::Relaxed);
            slot.keep = None;
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
        // The child does this too; whichever comes first, the group exists once this returns
        // (after the child's exec it fails with EACCES, after its exit with ESRCH: both fine).
        if own_group {
            let _ = rustix::process::setpgid(Some(pid), Some(pid));
        }
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor, owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(Launched { pid, pidfd, status })
    })
}

/// What the child gets: its arguments and where to report a failure.
struct Handoff {
    args: ChildArgs,
    status: *const ExecStatus,
}

/// The child: set up, then `execve`. Runs on its slot's stack in the parent's memory, with
/// every signal blocked or at its default.
extern "C" fn child_main(handoff: *const Handoff) -> ! {
    // SAFETY: `start` passes its slot's handoff, which stays put until this child has exec'd
    // or exited, and a status word that outlives the child.
    unsafe {
        let handoff = &*handoff;
        let (step, errno) = child_steps(&handoff.args);
        let word = ((step as u64) << 32) | errno as u32 as u64;
        (*handoff.status).0.store(word, Ordering::Release);
        raw::syscall4(libc::SYS_exit_group, 127, 0, 0, 0);
    }
    unreachable!("exit_group returned")
}

/// The child's set-up, one raw system call at a time; returns only on failure.
///
/// # Safety
/// Only in the child made by [`start`], with `args` valid.
unsafe fn child_steps(args: &ChildArgs) -> (Step, i32) {
    use libc::{
        SYS_chdir, SYS_close_range, SYS_dup3, SYS_execve, SYS_rt_sigaction, SYS_rt_sigprocmask,
        SYS_setpgid,
    };
    let call = |nr, a: usize, b: usize, c: usize, d: usize| {
        // SAFETY: the caller's contract; each call below passes valid pointers or integers.
        let r = unsafe { raw::syscall4(nr, a, b, c, d) };
        if r < 0 {
            Err(-r as i32)
        } else {
            Ok(())
        }
    };
    // Its own process group: herd signals the job's whole tree, and a terminal's Ctrl-C
    // reaches herd rather than the jobs (unless the job is to use the terminal).
    if args.own_group {
        if let Err(e) = call(SYS_setpgid, 0, 0, 0, 0) {
            return (Step::ProcessGroup, e);
        }
    }
    // The three descriptors are above 2, so placing one never closes another (and `dup3`, the
    // call every architecture has, never sees the same number twice).
    for (from, to) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
        if let Err(e) = call(SYS_dup3, from as usize, to, 0, 0) {
            return (Step::Descriptors, e);
        }
    }
    if !args.cwd.is_null() {
        if let Err(e) = call(SYS_chdir, args.cwd as usize, 0, 0, 0) {
            return (Step::WorkingDir, e);
        }
    }
    // Every descriptor above 2 goes, also any a careless library left inheritable (before
    // Linux 5.9 there is no close_range; close-on-exec still covers herd's own).
    let _ = call(SYS_close_range, 3, u32::MAX as usize, 0, 0);
    // Rust ignores SIGPIPE, and children must not inherit that (`yes | head` would never end
    // `yes`). Other ignored signals are inherited, as from a shell (`nohup`). The kernel's
    // sigaction: handler, flags, restorer, mask; all zero is SIG_DFL.
    let default = [0u64; 4];
    let empty = 0u64;
    let sigset_size = std::mem::size_of::<u64>();
    let signals = call(
        SYS_rt_sigaction,
        libc::SIGPIPE as usize,
        default.as_ptr() as usize,
        0,
        sigset_size,
    )
    .and_then(|()| {
        let set = &empty as *const u64 as usize;
        call(
            SYS_rt_sigprocmask,
            libc::SIG_SETMASK as usize,
            set,
            0,
            sigset_size,
        )
    });
    if let Err(e) = signals {
        return (Step::Signals, e);
    }
    let exec = call(
        SYS_execve,
        args.path as usize,
        args.argv as usize,
        args.envp as usize,
        0,
    );
    (Step::Exec, exec.err().unwrap_or(libc::EINVAL))
}

thread_local! {
    /// This thread's stacks for children on their way to `execve`.
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { slots: Vec::new() }) };
}

/// Stacks (with what their children read) that are reused once their child has let go.
struct Pool {
    /// Boxed: a child holds pointers into its slot, which must not move when the vector grows.
    #[allow(clippy::vec_box)]
    slots: Vec<Box<Slot>>,
}

/// More children than this between clone and exec, per spawning thread, means exec is stalling
/// (a slow file system): wait for one rather than map more.
const MAX_SLOTS: usize = 64;

impl Pool {
    fn free_slot(&mut self) -> Result<&mut Slot, Errno> {
        let free = self
            .slots
            .iter()
            .position(|s| s.busy.load(Ordering::Acquire) == 0);
        let index = match free {
            Some(i) => i,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Box::new(Slot::new()?));
                self.slots.len() - 1
            }
            None => {
                self.slots[0].wait_until_free();
                0
            }
        };
        let slot = &mut self.slots[index];
        // The previous child is done with it: its memory can go.
        slot.keep = None;
        Ok(slot)
    }
}

/// One child's stack and what the child reads.
struct Slot {
    stack: ChildStack,
    /// 1 from clone until the kernel clears it (CLONE_CHILD_CLEARTID) at the child's exec or
    /// exit, and wakes any futex waiter.
    busy: AtomicU32,
    handoff: Handoff,
    keep: Option<Box<dyn std::any::Any>>,
}

impl Slot {
    fn new() -> Result<Self, Errno> {
        Ok(Slot {
            stack: ChildStack::new()?,
            busy: AtomicU32::new(0),
            handoff: Handoff {
                args: ChildArgs {
                    path: std::ptr::null(),
                    argv: std::ptr::null(),
                    envp: std::ptr::null(),
                    cwd: std::ptr::null(),
                    stdin: -1,
                    stdout: -1,
                    stderr: -1,
                    own_group: true,
                },
                status: std::ptr::null(),
            },
            keep: None,
        })
    }

    fn wait_until_free(&self) {
        loop {
            let busy = self.busy.load(Ordering::Acquire);
            if busy == 0 {
                return;
            }
            // Not a private futex: the kernel's wake at exec/exit is the shared kind.
            let _ = rustix::thread::futex::wait(
                &self.busy,
                rustix::thread::futex::Flags::empty(),
                busy,
                None,
            );
        }
    }
}

impl Drop for Slot {
    /// The thread is ending: its children must be done with the stack and handoff first (they
    /// are microseconds from exec, or killed with their herd).
    fn drop(&mut self) {
        self.wait_until_free();
    }
}

/// A small stack with a guard page below it, mapped once and reused.
struct ChildStack {
    /// The lowest usable address (above the guard page).
    base: *mut c_void,
    len: usize,
}

/// The child makes a few system calls; 64 KiB leaves room for a debug build.
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
        // SAFETY: the mapping made in `new`; its slot waited until no child uses it.
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
/// `args` must name a stack that no one else uses until the child lets go of it; `child` must
/// not return; `arg` must stay valid as long.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(
    args: &mut CloneArgs,
    size: usize,
    child: extern "C" fn(*const Handoff) -> !,
    arg: *const Handoff,
) -> isize {
    let ret: isize;
    // The kernel keeps every register but rax, rcx and r11 across `syscall`, in the child too,
    // where the stack pointer is the new stack's top. The child clears the frame pointer (the
    // end of backtraces) and calls `child(arg)`, which never returns; the parent falls through.
    // SAFETY: the caller's contract; in the parent the asm touches only declared registers.
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
            in("rsi") size,
            in("r8") child,
            in("r9") arg,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3(
    _args: &mut CloneArgs,
    _size: usize,
    _child: extern "C" fn(*const Handoff) -> !,
    _arg: *const Handoff,
) -> isize {
    -(libc::ENOSYS as isize)
}

/// System calls without libc, which would set `errno` in the parent thread's storage.
mod raw {
    /// A system call with up to four arguments; a negated errno on failure.
    ///
    /// # Safety
    /// The arguments must be what system call `nr` expects.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn syscall4(nr: i64, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller's contract; `syscall` clobbers only rcx and r11 besides rax.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn syscall4(_nr: i64, _a: usize, _b: usize, _c: usize, _d: usize) -> isize {
        -(libc::ENOSYS as isize)
    }
}
