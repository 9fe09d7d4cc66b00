//! `--shard` and `--bin`: every line goes to the job of the slot its column's value picks, one
//! long-lived job per job slot (GNU parallel's `--pipe --shard` and `--pipe --bin`), so all
//! the lines with one value meet in one job.
//!
//! `--bin`: the value, a number, modulo the number of slots, picks the slot (0 being the last,
//! as in GNU parallel: `seq 10 | parallel --pipe --bin 1 -j4` gives slot 1 lines 1, 5 and 9).
//! `--shard`: a hash of the value does (GNU parallel's hash changes from run to run; herd's is
//! FNV-1a, the same in every run).
//!
//! Every slot's job starts before any line is read, each with a stream for its stdin
//! ([`herd_engine::Stdin::stream`]); a thread then reads the input line by line and sends each
//! job its lines in chunks, waiting while that job's stream is full: memory stays bounded, and
//! the slowest job sets the pace. Unlike GNU parallel's sharders, each job gets its lines in
//! the input's order. A job that ends before its input does costs its lines, and the run says
//! so at its end.

use crate::groupby::Column;
use crate::input::Columns;
use herd_engine::{Stdin, StdinSender};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// How much of a job's lines gather before they are sent, and at most queued per job.
const CHUNK: usize = 64 * 1024;

/// Which of `--shard` and `--bin`, and on what column.
#[derive(Debug, Clone)]
pub struct ShardSpec {
    pub bin: bool,
    pub column: Column,
    pub colsep: Columns,
}

impl ShardSpec {
    pub fn name(&self) -> &'static str {
        if self.bin {
            "--bin"
        } else {
            "--shard"
        }
    }
}

/// Gives each slot's job its stream, then routes the input's lines to them.
pub struct Router {
    input: Option<BufReader<Box<dyn Read + Send>>>,
    spec: ShardSpec,
    /// The column's index (from 0), and the header that named it, which every job gets first.
    index: usize,
    header: Vec<u8>,
    slots: usize,
    senders: Vec<StdinSender>,
    /// What went wrong, for the run's end: until the routing ends, that it has not (every job
    /// ended first).
    pub failure: Arc<Mutex<Option<String>>>,
}

impl Router {
    /// A column named is looked up in the header, the input's first line, read now: a name
    /// that is not there stops the run before any job starts.
    pub fn new(
        input: Box<dyn Read + Send>,
        spec: ShardSpec,
        slots: usize,
    ) -> Result<Router, String> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut header = Vec::new();
        let index = match &spec.column {
            Column::Number(n) => n - 1,
            Column::Name(name) => {
                input
                    .read_until(b'\n', &mut header)
                    .map_err(|e| format!("cannot read the input: {e}"))?;
                Column::find_in(name, &header, &spec.colsep, spec.name())?
            }
        };
        let unfinished = format!(
            "every {} job ended before the input did; the rest of the input went to no job",
            spec.name()
        );
        Ok(Router {
            input: Some(input),
            spec,
            index,
            header,
            slots: slots.max(1),
            senders: Vec::new(),
            failure: Arc::new(Mutex::new(Some(unfinished))),
        })
    }

    /// The stdin of the next slot's job; once every slot has one, the lines start flowing
    /// (`None` from then on).
    pub fn next_stdin(&mut self) -> io::Result<Option<Stdin>> {
        if self.input.is_none() {
            return Ok(None);
        }
        let (stdin, sender) = Stdin::stream(CHUNK);
        self.senders.push(sender);
        if self.senders.len() == self.slots {
            let input = self.input.take().expect("checked above");
            let senders = std::mem::take(&mut self.senders);
            let (spec, index) = (self.spec.clone(), self.index);
            let header = std::mem::take(&mut self.header);
            let failure = self.failure.clone();
            std::thread::Builder::new()
                .name("herd-shard".into())
                .spawn(move || {
                    let result = route(input, &spec, index, &header, &senders);
                    // Told before the senders go: their end lets the jobs end, and the run's
                    // end looks here.
                    *failure.lock().unwrap() = result.err();
                    drop(senders);
                })?;
        }
        Ok(Some(stdin))
    }
}

/// Reads `input` line by line and sends each line to the job its value picks (in column
/// `index`), after `header`.
fn route(
    mut input: BufReader<Box<dyn Read + Send>>,
    spec: &ShardSpec,
    index: usize,
    header: &[u8],
    senders: &[StdinSender],
) -> Result<(), String> {
    let read_failed = |e: io::Error| format!("cannot read the input: {e}");
    let mut pending: Vec<Vec<u8>> = vec![header.to_vec(); senders.len()];
    let mut lost = vec![0u64; senders.len()];
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(read_failed)? == 0 {
            break;
        }
        let value = crate::groupby::value_of(&line, index, &spec.colsep);
        let slot = pick(spec.bin, &value, senders.len());
        pending[slot].extend_from_slice(&line);
        if pending[slot].len() >= CHUNK {
            send(&senders[slot], &mut pending[slot], &mut lost[slot]);
        }
    }
    for (slot, sender) in senders.iter().enumerate() {
        send(sender, &mut pending[slot], &mut lost[slot]);
    }
    match lost.iter().position(|&n| n > 0) {
        None => Ok(()),
        Some(slot) => Err(format!(
            "the {} job of slot {} ended before its input did: {} bytes of its lines went to no \
             job",
            spec.name(),
            slot + 1,
            lost[slot]
        )),
    }
}

/// Sends what gathered for one job (waiting for room); counts it lost if the job has ended.
fn send(sender: &StdinSender, pending: &mut Vec<u8>, lost: &mut u64) {
    if pending.is_empty() {
        return;
    }
    let chunk = std::mem::take(pending);
    if let Err(back) = sender.send(chunk) {
        *lost += back.len() as u64;
    }
}

/// The slot (from 0) a value goes to among `slots`.
fn pick(bin: bool, value: &[u8], slots: usize) -> usize {
    let slots = slots as u64;
    let n = if bin {
        // Perl's number of the text: its leading integer, 0 if none; modulo as Perl takes
        // it, never negative. The remainder 0 is the last slot, 1 the first.
        let r = leading_integer(value).rem_euclid(slots as i128) as u64;
        (r + slots - 1) % slots
    } else {
        fnv1a(value) % slots
    };
    n as usize
}

/// The integer a text starts with (after blanks; a sign allowed), as Perl reads numbers.
fn leading_integer(text: &[u8]) -> i128 {
    let text = text.trim_ascii_start();
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut n: i128 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()).take(30) {
        n = n * 10 + i128::from(b - b'0');
    }
    if negative {
        -n
    } else {
        n
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_as_gnu_parallel_picks_them() {
        // seq 10 | parallel --pipe --bin 1 -j4: slot 1 gets 1 5 9, slot 4 gets 4 8.
        let slots: Vec<usize> = (1..=10)
            .map(|i| pick(true, i.to_string().as_bytes(), 4) + 1)
            .collect();
        assert_eq!(slots, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]);
        assert_eq!(pick(true, b"x", 3), 2);
        assert_eq!(pick(true, b" 7.9", 3), 0);
        assert_eq!(pick(true, b"-1", 3), 1);
        assert_eq!(pick(false, b"key", 5), pick(false, b"key", 5));
    }
}
