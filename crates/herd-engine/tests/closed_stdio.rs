//! A parent that closed its own stdin, stdout and stderr (a daemon does) still gives every
//! child exact pipes. Then the pipes herd creates get numbers 0, 1 and 2, and moving them into
//! place in the child would close one with another unless herd moves them above 2 first.
//! (Alone in its test binary: it closes the whole process's standard descriptors.)
#![cfg(target_os = "linux")]

use herd_engine::{Herd, Job, Stdin};
use std::os::fd::{AsRawFd, OwnedFd};

/// Closes descriptors 0, 1 and 2 and puts them back when dropped (also when the test panics,
/// so that the test harness can report it).
struct ClosedStdio {
    saved: Vec<OwnedFd>,
}

impl ClosedStdio {
    fn new() -> Self {
        let saved = (0..3)
            .map(|fd| {
                // SAFETY: 0, 1 and 2 are open in a test process; the copy is ours.
                let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                borrowed.try_clone_to_owned().unwrap()
            })
            .collect();
        for fd in 0..3 {
            // SAFETY: closing the standard descriptors; copies are kept above to restore them.
            unsafe { libc::close(fd) };
        }
        ClosedStdio { saved }
    }
}

impl Drop for ClosedStdio {
    fn drop(&mut self) {
        for (fd, saved) in self.saved.iter().enumerate() {
            // SAFETY: putting the saved copies back on 0, 1 and 2.
            unsafe { libc::dup2(saved.as_raw_fd(), fd as i32) };
        }
    }
}

#[test]
fn children_get_exact_pipes_when_the_parent_closed_its_standard_descriptors() {
    let results: Vec<_> = {
        // Closed after the herd is built, so its own descriptors (epoll, waker) are not the
        // ones that fill the gap.
        let herd = Herd::new().unwrap();
        let closed = ClosedStdio::new();
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let job = Job::new("sh")
                    .args(["-c", "cat; echo out $0; echo err $0 >&2", &i.to_string()])
                    .stdin(Stdin::bytes(format!("in {i}\n")));
                herd.spawn(job).unwrap()
            })
            .collect();
        let results = handles.into_iter().map(|h| h.wait()).collect();
        drop(closed);
        results
    };
    for (i, r) in results.into_iter().enumerate() {
        let stdout = String::from_utf8(r.stdout.to_vec().unwrap()).unwrap();
        let stderr = String::from_utf8(r.stderr.to_vec().unwrap()).unwrap();
        assert_eq!(
            stdout,
            format!("in {i}\nout {i}\n"),
            "job {i}: {:?}",
            r.outcome
        );
        assert_eq!(stderr, format!("err {i}\n"), "job {i}");
        assert!(r.success(), "job {i}: {:?}", r.outcome);
    }
}
