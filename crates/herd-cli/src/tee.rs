//! `--tee`: the whole input on every job's stdin, the jobs made from the values of `:::` and
//! the other sources (GNU parallel's `--pipe --tee` and `--pipepart --tee`).
//!
//! `--pipepart --tee`: every job reads the file (the first `-a`) from its start.
//!
//! `--pipe --tee`: herd reads standard input once and sends each chunk to every job's stream,
//! as `tee` does. The slowest job sets the pace of all: each stream holds at most one chunk
//! beyond its pipe, so memory stays bounded whatever the input's size, but every job must be
//! running before the input flows (hence `-j 0` by default, and an error when `-j` is smaller
//! than the number of jobs). A job that ends without reading everything stops getting the
//! input; the others go on (GNU parallel's `tee --output-error=warn-nopipe`).

use herd_engine::{Stdin, StdinSender};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How much is read at a time, and queued for each job beyond its pipe.
const CHUNK: usize = 256 * 1024;

/// Where the jobs' common input comes from.
pub enum Tee {
    /// `--pipepart`: every job reads this file.
    File(PathBuf),
    /// `--pipe`: standard input, sent to every job's stream once every job is made.
    Stream {
        input: Option<Box<dyn Read + Send>>,
        senders: Vec<StdinSender>,
        /// Why reading the input failed, for the run's end.
        error: Arc<Mutex<Option<String>>>,
    },
}

impl Tee {
    pub fn stream(input: Box<dyn Read + Send>) -> Tee {
        Tee::Stream {
            input: Some(input),
            senders: Vec::new(),
            error: Arc::default(),
        }
    }

    /// The next job's stdin.
    pub fn stdin(&mut self) -> Stdin {
        match self {
            Tee::File(path) => Stdin::file(path.clone()),
            Tee::Stream { senders, .. } => {
                let (stdin, sender) = Stdin::stream(CHUNK);
                senders.push(sender);
                stdin
            }
        }
    }

    /// Whether jobs wait for the input, which flows only once every job is made.
    pub fn waiting(&self) -> bool {
        matches!(self, Tee::Stream { input: Some(_), senders, .. } if !senders.is_empty())
    }

    /// Every job is made: the input starts flowing to them all, on a thread of its own.
    pub fn start(&mut self) -> io::Result<()> {
        let Tee::Stream {
            input,
            senders,
            error,
        } = self
        else {
            return Ok(());
        };
        let Some(input) = input.take() else {
            return Ok(());
        };
        let senders = std::mem::take(senders);
        if senders.is_empty() {
            return Ok(());
        }
        let error = error.clone();
        std::thread::Builder::new()
            .name("herd-tee".into())
            .spawn(move || {
                if let Err(e) = broadcast(input, &senders) {
                    *error.lock().unwrap() = Some(format!("cannot read the input: {e}"));
                }
                // Dropping the senders gives every job end of file.
            })
            .map(drop)
    }

    /// Why the input could not be read to its end, once the run has ended.
    pub fn failure(&self) -> Option<Arc<Mutex<Option<String>>>> {
        match self {
            Tee::Stream { error, .. } => Some(error.clone()),
            Tee::File(_) => None,
        }
    }
}

/// Sends every chunk of `input` to every sender whose job still reads; stops early when no job
/// does.
fn broadcast(mut input: Box<dyn Read + Send>, senders: &[StdinSender]) -> io::Result<()> {
    loop {
        let mut chunk = vec![0; CHUNK];
        let n = match input.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        chunk.truncate(n);
        let mut reading = 0;
        for sender in senders.iter().filter(|s| !s.is_closed()) {
            // Waits while this job's stream is full; gives the chunk back if the job ended.
            if sender.send(chunk.clone()).is_ok() {
                reading += 1;
            }
        }
        if reading == 0 {
            return Ok(());
        }
    }
}

/// Splits the sources of a `--tee` run into the common input and the jobs' values: with
/// `--pipepart` the first file (`-a`, `::::`) is the input; with `--pipe`, standard input.
pub fn open(
    sources: &[crate::input::Source],
    part: bool,
) -> Result<(Tee, Vec<crate::input::Source>), String> {
    use crate::input::SourceSpec;
    let is_stdin = |s: &&crate::input::Source| match &s.spec {
        SourceSpec::Stdin => true,
        SourceSpec::File(p) => p.as_os_str() == "-",
        SourceSpec::Values(_) => false,
    };
    if part {
        let first_file = sources
            .iter()
            .position(|s| matches!(&s.spec, SourceSpec::File(p) if p.as_os_str() != "-"));
        let Some(i) = first_file else {
            return Err(
                "--pipepart --tee gives every job the file of -a or ::::, and none was given"
                    .into(),
            );
        };
        let SourceSpec::File(path) = &sources[i].spec else {
            unreachable!("found above")
        };
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut values = sources.to_vec();
        let data = values.remove(i);
        let SourceSpec::File(path) = data.spec else {
            unreachable!("found above")
        };
        return Ok((Tee::File(path), values));
    }
    if sources.is_empty() || sources.iter().any(|s| is_stdin(&s)) {
        return Err(
            "--pipe --tee gives standard input to every job: give the jobs' values with ::: \
             or -a FILE"
                .into(),
        );
    }
    let input = Box::new(crate::input::stdin_said("the input every job gets"));
    Ok((Tee::stream(input), sources.to_vec()))
}
