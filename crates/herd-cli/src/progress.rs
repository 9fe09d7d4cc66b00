//! `--bar`, `--eta` and `--summary`: how far the run is, on stderr.
//!
//! The bar and the estimate are drawn only when stderr is a terminal (a log file would fill
//! with redraws); the summary line is always printed when asked for.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    /// The bar, when one is drawn. The printer suspends it around every write.
    pub bar: Option<ProgressBar>,
    started: Instant,
    summary: bool,
}

impl Progress {
    /// Whether `--bar`/`--eta` will draw anything (and so need the number of jobs).
    pub fn visible(bar: bool, eta: bool) -> bool {
        (bar || eta) && std::io::stderr().is_terminal()
    }

    pub fn new(bar: bool, eta: bool, total: Option<u64>, summary: bool) -> Progress {
        let bar = Progress::visible(bar, eta).then(|| {
            let template = if bar {
                "{wide_bar} {pos}/{len} jobs {percent}% {elapsed_precise} ETA {eta}"
            } else {
                "{pos}/{len} jobs, {elapsed_precise} elapsed, ETA {eta}"
            };
            let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("#>-"),
            );
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Progress {
            bar,
            started: Instant::now(),
            summary,
        }
    }

    /// A job finished (skipped ones count: the bar's length includes them).
    pub fn advance(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar and prints the summary line, if asked for.
    pub fn finish(&self, jobs: u64, failed: u64, skipped: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.summary {
            let skipped = if skipped > 0 {
                format!(", {skipped} skipped")
            } else {
                String::new()
            };
            eprintln!(
                "herd: {jobs} jobs, {failed} failed{skipped}, {:.2}s",
                self.elapsed().as_secs_f64()
            );
        }
    }
}
