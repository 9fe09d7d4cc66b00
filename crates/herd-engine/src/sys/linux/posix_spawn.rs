//! Starting a child with glibc's `posix_spawn`: the fallback where `clone3` is refused.
//!
//! glibc implements it with `clone(CLONE_VM|CLONE_VFORK)` too, so its cost does not grow with
//! the parent's memory either; it is only slower per child (see [`super::clone3`]). The child
//! gets the same set-up: its own process group, the three descriptors in place, every other
//! descriptor closed, an empty signal mask, SIGPIPE and every handled signal at its default.

use super::spawn::ChildArgs;
use rustix::process::Pid;
use std::io;

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

/// Starts the child described by `setup`. Returns once it has exec'd; a failure of the child's
/// set-up or of `execve` comes back as the error.
pub(super) fn start(setup: &ChildArgs) -> io::Result<Pid> {
    let mut attrs = SpawnAttrs::new()?;
    // SAFETY: `attrs` holds initialised attribute and file-action objects; every pointer passed
    // (signal sets, path strings, argv, envp) points to memory that outlives the spawn call, and
    // every descriptor named is open in this process.
    let pid = unsafe {
        let attr = &mut attrs.attr;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        // Only SIGPIPE is forced to its default (Rust ignores it); glibc resets every handled
        // signal itself and leaves ignored ones ignored, as `clone3`'s path does.
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        check(libc::posix_spawnattr_setsigmask(attr, &empty))?;
        check(libc::posix_spawnattr_setsigdefault(attr, &pipe))?;
        check(libc::posix_spawnattr_setpgroup(attr, 0))?;
        let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        if setup.own_group {
            flags |= libc::POSIX_SPAWN_SETPGROUP;
        }
        check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short))?;

        let actions = &mut attrs.actions;
        check(libc::posix_spawn_file_actions_adddup2(
            actions,
            setup.stdin,
            0,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(
            actions,
            setup.stdout,
            1,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(
            actions,
            setup.stderr,
            2,
        ))?;
        if !setup.cwd.is_null() {
            check(libc::posix_spawn_file_actions_addchdir_np(
                actions, setup.cwd,
            ))?;
        }
        check(libc::posix_spawn_file_actions_addclosefrom_np(actions, 3))?;

        let mut pid: libc::pid_t = 0;
        check(libc::posix_spawn(
            &mut pid,
            setup.path,
            &attrs.actions,
            &attrs.attr,
            setup.argv as *const *mut libc::c_char,
            setup.envp as *const *mut libc::c_char,
        ))?;
        pid
    };
    Ok(Pid::from_raw(pid).expect("posix_spawn returned pid 0"))
}
