//! The cost of a spawn from a large parent (benchmark W5).
//!
//! ```sh
//! cargo run --release -p herd-engine --example spawn_cost -- RESIDENT_MIB JOBS PROGRAM
//! ```
//!
//! Makes RESIDENT_MIB of memory resident (every page written), then runs PROGRAM JOBS times
//! through a herd, 8 at a time, and prints the wall time per job in microseconds. herd's
//! children borrow the parent's memory (`clone3` with `CLONE_VM`), so the parent's page tables
//! are never copied: the cost should not grow with the parent's size, as it would with `fork`.

use herd_engine::{Event, Herd, Job};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, resident_mib, jobs, program] = &args[..] else {
        return Err("usage: spawn_cost RESIDENT_MIB JOBS PROGRAM".into());
    };
    let resident_mib: usize = resident_mib.parse()?;
    let jobs: usize = jobs.parse()?;
    let mut ballast = vec![0u8; resident_mib << 20];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    let herd = Herd::builder().max_running(8).build()?;
    let start = Instant::now();
    for _ in 0..jobs {
        herd.submit(Job::new(program))?;
    }
    let mut failed = 0;
    for event in herd.events() {
        if let Event::Finished(r) = event {
            failed += usize::from(!r.success());
        }
    }
    let per_job = start.elapsed().as_secs_f64() * 1e6 / jobs as f64;
    // Keep the ballast alive (and resident) until the last job is done.
    std::hint::black_box(&ballast);
    println!("{per_job:.1}");
    if failed > 0 {
        return Err(format!("{failed} jobs failed").into());
    }
    Ok(())
}
