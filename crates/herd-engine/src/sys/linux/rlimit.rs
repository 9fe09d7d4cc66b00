//! Raising the descriptor limit.
//!
//! Each running job holds three descriptors (stdout, stderr, pidfd) and two more while it is
//! being spawned. Linux starts processes with a soft `RLIMIT_NOFILE` of 1024 and a much higher
//! hard limit; like Go's runtime, herd raises the soft limit to the hard one once, at start.
//! Children inherit the raised limit: `posix_spawn` cannot give them back the old one without a
//! fork, and programs that use `select()` on descriptors above 1023 are rare and already broken.
//! Whatever limit remains is handled as backpressure, not as an error.

use rustix::process::{getrlimit, setrlimit, Resource};
use std::sync::Once;

pub(crate) fn raise_fd_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            // Failure leaves the old limit, which backpressure copes with.
            let _ = setrlimit(Resource::Nofile, limit);
        }
    });
}
