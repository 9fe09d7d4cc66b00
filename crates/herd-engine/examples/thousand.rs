//! The scenario herd was made for: start a thousand little processes at once and capture
//! every byte of their output, with a handful of threads.
//!
//! Run with `cargo run --release -p herd-engine --example thousand [JOBS]`.

use herd_engine::{Event, Herd, Job};
use std::time::{Duration, Instant};

/// How long each job lingers, so that they all run at once.
const LINGER: Duration = Duration::from_millis(500);

/// Job `i`: a line on stdout, one on stderr, then a pause (Unix). `cmd` has no sleep that
/// works without a console, so on Windows the jobs do not linger.
fn job(i: usize) -> Job {
    if cfg!(windows) {
        Job::shell(format!(
            "echo job {i} says hello&& echo job {i} complains>&2"
        ))
    } else {
        let secs = LINGER.as_secs_f64();
        Job::shell(format!(
            "echo 'job {i} says hello'; echo 'job {i} complains' >&2; sleep {secs}"
        ))
    }
}

/// The threads of this process, where the system says (Linux).
fn threads() -> Option<usize> {
    if cfg!(target_os = "linux") {
        std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
    } else {
        None
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    let herd = Herd::builder().max_running(jobs).build()?;
    let start = Instant::now();
    for i in 0..jobs {
        herd.submit(job(i))?;
    }
    let newline = if cfg!(windows) { "\r\n" } else { "\n" };
    let (mut ok, mut bytes, mut peak_threads) = (0, 0, None);
    for event in herd.events() {
        if let Event::Finished(result) = event {
            let i = result.id.get() - 1;
            ok += result.success() as usize;
            let stdout = result.stdout.into_vec()?;
            let stderr = result.stderr.into_vec()?;
            assert_eq!(stdout, format!("job {i} says hello{newline}").into_bytes());
            assert_eq!(stderr, format!("job {i} complains{newline}").into_bytes());
            bytes += stdout.len() + stderr.len();
        }
        peak_threads = threads().max(peak_threads);
    }
    let took = start.elapsed().as_secs_f64();
    // What no runner can beat: every job at once, processes created for free.
    let ideal = if cfg!(windows) {
        0.0
    } else {
        LINGER.as_secs_f64()
    };
    let one_by_one = ideal * jobs as f64;
    println!("{ok} of {jobs} jobs succeeded, {bytes} bytes captured exactly, in {took:.2} s");
    if ideal > 0.0 {
        println!(
            "  ideal {ideal:.2} s (each job lingers {ideal:.2} s; one after another: \
             {one_by_one:.0} s); the rest is creating {jobs} processes"
        );
    } else {
        println!("  the jobs do not linger: all of it is creating {jobs} processes");
    }
    if let Some(n) = peak_threads {
        println!("  at most {n} threads in this process");
    }
    Ok(())
}
