//! How many inputs make one job: GNU parallel's (and xargs') -n, -N, -L, -m, -X, --xargs,
//! -s, -E and -r.
//!
//! The input stream gives tuples (one value per source, or per column); a job takes one
//! tuple by default, `n` with `-n`/`-N`/`-L` (their values flattened in order, so `{2}` is
//! the second), or as many as fit the command-line length with `-m`, `-X` and `--xargs`. With
//! `-m`/`-X` and more than one job slot, the inputs left when the input ends are shared evenly
//! among the slots, as GNU parallel does.

use crate::input::{InputError, Inputs};

/// The settings that group inputs into jobs.
#[derive(Debug, Clone, Default)]
pub struct BatchSpec {
    /// `-n`/`-N`/`-L`: tuples per job (the last job may have fewer).
    pub per_job: Option<usize>,
    /// `-N0`: each job reads one input and uses none of it.
    pub no_values: bool,
    /// `-m`, `-X`, `--xargs`: as many tuples as fit `max_chars`.
    pub fill: bool,
    /// `-m`/`-X` with several slots: at the end of input, share what is left among this many jobs.
    pub share_among: Option<usize>,
    /// `-s`: the longest command line; also bounds `fill`.
    pub max_chars: usize,
    /// `-E`: input ends at a value equal to this.
    pub eof: Option<Vec<u8>>,
    /// `-r`: skip inputs that are empty or only white space.
    pub skip_empty: bool,
    /// `--trim`: remove white space at the left and/or right of each value.
    pub trim_left: bool,
    pub trim_right: bool,
}

/// The jobs' argument lists, read from the input tuples.
pub struct Batcher {
    inputs: Inputs,
    spec: BatchSpec,
    ended: bool,
    /// Inputs read but given back: they did not fit the job before.
    back: std::collections::VecDeque<Vec<Vec<u8>>>,
    /// With `share_among`, once the input has ended: how many tuples each job takes.
    share: Option<usize>,
}

fn is_blank(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// The values of one job, flattened, and how many inputs it consumed.
#[derive(Default)]
pub struct JobArgs {
    pub values: Vec<Vec<u8>>,
    /// The input tuples, one per consumed input, for `--tag` and the joblog.
    pub tuples: Vec<Vec<Vec<u8>>>,
    /// Why this job cannot run (its line is longer than `-s` allows, even alone): it fails
    /// with the reason, and the other jobs go on.
    pub too_long: Option<String>,
}

impl Batcher {
    pub fn new(inputs: Inputs, spec: BatchSpec) -> Batcher {
        Batcher {
            inputs,
            spec,
            ended: false,
            back: Default::default(),
            share: None,
        }
    }

    fn next_tuple(&mut self) -> Result<Option<Vec<Vec<u8>>>, InputError> {
        if let Some(t) = self.back.pop_front() {
            return Ok(Some(t));
        }
        loop {
            if self.ended {
                return Ok(None);
            }
            let Some(mut tuple) = self.inputs.next_tuple()? else {
                self.ended = true;
                return Ok(None);
            };
            if let Some(eof) = &self.spec.eof {
                if tuple.iter().any(|v| v == eof) {
                    self.ended = true;
                    return Ok(None);
                }
            }
            if self.spec.trim_left || self.spec.trim_right {
                for v in &mut tuple {
                    let end = if self.spec.trim_right {
                        v.iter().rposition(|b| !is_blank(b)).map_or(0, |p| p + 1)
                    } else {
                        v.len()
                    };
                    v.truncate(end);
                    if self.spec.trim_left {
                        let start = v.iter().position(|b| !is_blank(b)).unwrap_or(v.len());
                        v.drain(..start);
                    }
                }
            }
            if self.spec.skip_empty && tuple.iter().all(|v| v.iter().all(is_blank)) {
                continue;
            }
            return Ok(Some(tuple));
        }
    }

    /// The next job's arguments. `measure` gives the length of the command line a job with
    /// the given values would run (used by `-m`, `-X`, `--xargs` and `-s`).
    pub fn next_job(
        &mut self,
        measure: &mut dyn FnMut(&[Vec<u8>]) -> usize,
    ) -> Result<Option<JobArgs>, InputError> {
        let limit = if self.spec.fill {
            self.share.unwrap_or(usize::MAX)
        } else {
            self.spec.per_job.unwrap_or(1).max(1)
        };
        let mut tuples: Vec<Vec<Vec<u8>>> = Vec::new();
        // The line's length: exact for the first input, then grown by what one more input of
        // the same kind adds (its value, a space, and under -X its word again); checked
        // exactly below.
        let mut estimate = 0;
        while tuples.len() < limit {
            let Some(tuple) = self.next_tuple()? else {
                break;
            };
            if self.spec.fill || self.spec.max_chars > 0 {
                let once = measure(&tuple);
                if tuples.is_empty() && self.spec.max_chars > 0 && once > self.spec.max_chars {
                    // Even alone it does not fit. (GNU parallel stops the run here.)
                    let shown = String::from_utf8_lossy(&tuple.join(&b' ')).into_owned();
                    let shown: String = match shown.char_indices().nth(60) {
                        Some((cut, _)) => format!("{}…", &shown[..cut]),
                        None => shown,
                    };
                    let too_long = format!(
                        "the command line for {shown:?} is too long ({once} > {} characters, \
                         counting a NUL after each word)",
                        self.spec.max_chars
                    );
                    let values = if self.spec.no_values {
                        Vec::new()
                    } else {
                        tuple.clone()
                    };
                    return Ok(Some(JobArgs {
                        values,
                        tuples: vec![tuple],
                        too_long: Some(too_long),
                    }));
                }
                let added = if tuples.is_empty() {
                    once
                } else {
                    measure(&[tuple.clone(), tuple.clone()].concat()) - once
                };
                if !tuples.is_empty() && estimate + added > self.spec.max_chars {
                    // It opens the next job.
                    self.back.push_front(tuple);
                    break;
                }
                estimate += added;
            }
            tuples.push(tuple);
        }
        if tuples.is_empty() {
            return Ok(None);
        }
        if let (Some(slots), None, true) = (self.spec.share_among, self.share, self.ended) {
            // The input ended while this job was filling: share what is left among the slots.
            let share = tuples.len().div_ceil(slots.max(1)).max(1);
            self.share = Some(share);
            while tuples.len() > share {
                self.back.push_front(tuples.pop().expect("more than share"));
            }
        }
        if self.spec.fill {
            // Exactly: give back inputs from the end until the line fits (one always stays).
            while tuples.len() > 1 {
                let values: Vec<Vec<u8>> = tuples.iter().flatten().cloned().collect();
                if measure(&values) <= self.spec.max_chars {
                    break;
                }
                self.back.push_front(tuples.pop().expect("more than one"));
            }
        }
        let values = if self.spec.no_values {
            Vec::new()
        } else {
            tuples.iter().flatten().cloned().collect()
        };
        Ok(Some(JobArgs {
            values,
            tuples,
            too_long: None,
        }))
    }
}
