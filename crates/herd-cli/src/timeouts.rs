//! `--timeout N%`: GNU parallel's relative timeout. A job is killed once it has run N% of the
//! median runtime of the jobs that succeeded so far (no limit until one has). The median is a
//! remedian (Rousseeuw and Bassett, 1990), as in GNU parallel: three levels of 999 values, so
//! memory stays bounded however many jobs run.

use std::time::Duration;

const BASE: usize = 999;

/// The limit, learned from the successful jobs' runtimes.
pub struct RelativeTimeout {
    percent: f64,
    levels: [Vec<f64>; 3],
    added: usize,
    median: Option<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

fn put(level: &mut Vec<f64>, at: usize, value: f64) {
    if at < level.len() {
        level[at] = value;
    } else {
        level.push(value);
    }
}

impl RelativeTimeout {
    pub fn new(percent: f64) -> RelativeTimeout {
        RelativeTimeout {
            percent,
            levels: [Vec::new(), Vec::new(), Vec::new()],
            added: 0,
            median: None,
        }
    }

    /// A job succeeded after running `runtime`.
    pub fn succeeded(&mut self, runtime: Duration) {
        let i = self.added;
        self.added += 1;
        put(&mut self.levels[0], i % BASE, runtime.as_secs_f64());
        let m0 = median(&self.levels[0]);
        put(&mut self.levels[1], i / BASE % BASE, m0);
        let m1 = median(&self.levels[1]);
        put(&mut self.levels[2], i / BASE / BASE % BASE, m1);
        self.median = Some(median(&self.levels[2]));
    }

    /// How long a job may run now, if any job has succeeded yet.
    pub fn limit(&self) -> Option<Duration> {
        self.median
            .map(|m| Duration::from_secs_f64(m * self.percent / 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_the_median_of_successes() {
        let mut t = RelativeTimeout::new(200.0);
        assert_eq!(t.limit(), None);
        for ms in [10, 1000, 20, 30, 25] {
            t.succeeded(Duration::from_millis(ms));
        }
        // Median 25 ms, 200%: 50 ms; one slow success does not move it much.
        assert_eq!(t.limit(), Some(Duration::from_millis(50)));
        for _ in 0..5000 {
            t.succeeded(Duration::from_millis(40));
        }
        assert_eq!(t.limit(), Some(Duration::from_millis(80)));
        assert!(t.levels.iter().all(|l| l.len() <= BASE));
    }
}
