//! `--halt`: when to stop starting jobs (`soon`) or to kill the running ones too (`now`).

use herd_engine::JobResult;

/// When halting stops the running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Kill the running jobs' trees at once.
    Now,
    /// Let the running jobs finish; start no new one.
    Soon,
}

/// Which finished jobs count toward the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Fail,
    Success,
    Done,
}

/// How many of them it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Count(u64),
    /// A percentage of all jobs (herd then counts the jobs before starting).
    Percent(f64),
}

/// A parsed `--halt` spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halt {
    pub when: When,
    pub why: Why,
    pub threshold: Threshold,
}

/// Jobs finished so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub done: u64,
    pub failed: u64,
    pub succeeded: u64,
}

impl Halt {
    /// Parses `now|soon,fail|success|done=N|N%`, `never`, `0`, `1` or `2`. `None` for never.
    pub fn parse(s: &str) -> Result<Option<Halt>, String> {
        let fail_1 = |when| Halt {
            when,
            why: Why::Fail,
            threshold: Threshold::Count(1),
        };
        match s {
            "never" | "0" => return Ok(None),
            "1" => return Ok(Some(fail_1(When::Soon))),
            "2" => return Ok(Some(fail_1(When::Now))),
            _ => {}
        }
        let expected = "expected now|soon,fail|success|done=N or =N%, or never";
        let (when, rest) = s.split_once(',').ok_or(expected)?;
        let when = match when {
            "now" => When::Now,
            "soon" => When::Soon,
            _ => return Err(format!("'{when}' is not now or soon; {expected}")),
        };
        let (why, n) = rest.split_once('=').ok_or(expected)?;
        let why = match why {
            "fail" => Why::Fail,
            "success" => Why::Success,
            "done" => Why::Done,
            _ => return Err(format!("'{why}' is not fail, success or done; {expected}")),
        };
        let threshold = match n.strip_suffix('%') {
            Some(p) => match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Threshold::Percent(p),
                _ => return Err(format!("'{n}' is not a percentage from 0 to 100")),
            },
            None => match n.parse::<u64>() {
                Ok(n) if n > 0 => Threshold::Count(n),
                _ => return Err(format!("'{n}' is not a positive number of jobs")),
            },
        };
        Ok(Some(Halt {
            when,
            why,
            threshold,
        }))
    }

    /// Whether the jobs must be counted before the run starts.
    pub fn needs_total(&self) -> bool {
        matches!(self.threshold, Threshold::Percent(_))
    }

    /// Whether herd must halt now that `counts` jobs are finished, of `total` in all.
    pub fn reached(&self, counts: Counts, total: Option<u64>) -> bool {
        let count = match self.why {
            Why::Fail => counts.failed,
            Why::Success => counts.succeeded,
            Why::Done => counts.done,
        };
        match self.threshold {
            Threshold::Count(n) => count >= n,
            Threshold::Percent(p) => {
                total.is_some_and(|t| t > 0 && count as f64 * 100.0 >= p * t as f64)
            }
        }
    }

    /// GNU parallel's note about a finished job that counts toward the halt: every failed job
    /// under `fail`, every successful one under `success`, every one under `done`.
    pub fn note(&self, result: &JobResult) -> Option<&'static str> {
        match self.why {
            Why::Fail if !result.success() => Some("This job failed:"),
            Why::Success if result.success() => Some("This job succeeded:"),
            Why::Done => Some("This job finished:"),
            _ => None,
        }
    }

    /// herd's exit status after halting because of `result`, GNU parallel's rule: with a
    /// threshold of one job, that job's status (signal + 128 if killed); with a count, the
    /// number of failed jobs (at most 101); with a percentage, the percentage of all jobs that
    /// failed, rounded up; 0 when halting on success.
    pub fn exit_status(&self, result: &JobResult, counts: Counts, total: Option<u64>) -> i32 {
        match (self.why, self.threshold) {
            (Why::Success, _) => 0,
            (_, Threshold::Percent(_)) => {
                let total = total.unwrap_or(counts.done).max(1);
                (counts.failed * 100).div_ceil(total) as i32
            }
            (_, Threshold::Count(1)) if result.success() => 0,
            (_, Threshold::Count(1)) => match (result.exit_code(), result.signal()) {
                (Some(c), _) if c != 0 => c.clamp(1, 255),
                (_, Some(s)) => (128 + s).min(255),
                _ => 1,
            },
            (_, Threshold::Count(_)) => counts.failed.min(101) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(Halt::parse("never").unwrap(), None);
        assert_eq!(
            Halt::parse("now,fail=1").unwrap(),
            Some(Halt {
                when: When::Now,
                why: Why::Fail,
                threshold: Threshold::Count(1)
            })
        );
        assert_eq!(
            Halt::parse("2").unwrap(),
            Halt::parse("now,fail=1").unwrap()
        );
        assert_eq!(
            Halt::parse("soon,done=30%").unwrap().unwrap().threshold,
            Threshold::Percent(30.0)
        );
        for bad in [
            "",
            "now",
            "now,fail",
            "later,fail=1",
            "now,oops=1",
            "now,fail=0",
            "soon,done=101%",
            "now,fail=x",
        ] {
            assert!(Halt::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds() {
        let h = Halt::parse("soon,fail=20%").unwrap().unwrap();
        let counts = Counts {
            done: 5,
            failed: 2,
            succeeded: 3,
        };
        assert!(h.reached(counts, Some(10)));
        assert!(!h.reached(counts, Some(11)));
        assert!(!h.reached(counts, None));
        let h = Halt::parse("now,success=3").unwrap().unwrap();
        assert!(h.reached(counts, None));
    }
}
