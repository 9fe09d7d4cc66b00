//! The scenario herd was made for: start a thousand little processes at once and capture
//! every byte of their output, with a handful of threads.
//!
//! Run with `cargo run --release -p herd --example thousand [JOBS]`.

use herd::{Event, Herd, Job};
use std::time::Instant;

fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    let herd = Herd::builder().max_running(jobs).build()?;
    let start = Instant::now();
    // Each job prints a line to stdout and one to stderr, then lingers a moment, so that they
    // all run at once.
    for i in 0..jobs {
        let script = "echo \"job $0 says hello\"; echo \"job $0 complains\" >&2; sleep 0.5";
        herd.submit(Job::new("sh").args(["-c", script, &i.to_string()]))?;
    }
    let (mut ok, mut bytes, mut peak_threads) = (0, 0, 0);
    for event in herd.events() {
        if let Event::Finished(result) = event {
            let i = result.id.get() - 1;
            let stdout = result.stdout.to_vec()?;
            let stderr = result.stderr.to_vec()?;
            assert_eq!(stdout, format!("job {i} says hello\n").into_bytes());
            assert_eq!(stderr, format!("job {i} complains\n").into_bytes());
            ok += result.success() as usize;
            bytes += stdout.len() + stderr.len();
        }
        peak_threads = peak_threads.max(threads().unwrap_or(0));
    }
    println!(
        "{ok} of {jobs} jobs succeeded, {bytes} bytes captured exactly, in {:.2} s, with at most {peak_threads} threads",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
