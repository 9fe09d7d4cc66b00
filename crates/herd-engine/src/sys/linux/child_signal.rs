//! An inherited ignored SIGCHLD.
//!
//! A process started with SIGCHLD set to SIG_IGN (`trap '' CHLD`, Perl's `$SIG{CHLD} =
//! "IGNORE"`, some daemons) has its children reaped by the kernel the moment they exit: no
//! status is kept, waiting on a pidfd finds nothing (ECHILD), and every job would end with no
//! exit code. The disposition is inherited across exec, so herd cannot assume the default.
//! herd puts SIGCHLD back to its default (which ignores the signal too, but keeps exit statuses
//! until they are reaped) once, at start. A handler someone installed is left alone: only
//! SIG_IGN is reset.

use std::sync::Once;

pub(crate) fn reset_ignored_sigchld() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value to be filled in; sigaction with a null
        // new action only reads the current disposition into it.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above: reads SIGCHLD's disposition into `current`.
        let read = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut current) };
        if read == 0 && current.sa_sigaction == libc::SIG_IGN {
            // SAFETY: a zeroed sigaction with SIG_DFL and an empty mask is the default action.
            let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
            default.sa_sigaction = libc::SIG_DFL;
            // SAFETY: installs the default action for SIGCHLD; no handler code is involved.
            unsafe { libc::sigaction(libc::SIGCHLD, &default, std::ptr::null_mut()) };
        }
    });
}
