//! `--results DIR`: each job's output in `DIR/<seq>/stdout` and `DIR/<seq>/stderr`, written as
//! it arrives, so a long run's output is on disk (and can be followed with `tail -f`) while it
//! runs, never held in memory for it.

use herd::Stream;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The result files of the running jobs.
pub struct Results {
    dir: PathBuf,
    /// Open files by job number and stream; opened on a job's first output.
    open: HashMap<(u64, Stream), File>,
}

impl Results {
    /// Creates DIR (and its parents) before any job starts.
    pub fn new(dir: &Path) -> Result<Results, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create --results directory {}: {e}", dir.display()))?;
        Ok(Results {
            dir: dir.to_path_buf(),
            open: HashMap::new(),
        })
    }

    fn path(&self, seq: u64, stream: Stream) -> PathBuf {
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        self.dir.join(seq.to_string()).join(name)
    }

    fn create(&self, seq: u64, stream: Stream) -> Result<File, String> {
        let path = self.path(seq, stream);
        let make = || {
            std::fs::create_dir_all(path.parent().expect("a job directory"))?;
            File::create(&path)
        };
        make().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// A job (or a run of it again, under `--retries`) starts: its files will be written
    /// afresh from its first output (or created empty when it finishes without any).
    pub fn start(&mut self, seq: u64) {
        self.open.remove(&(seq, Stream::Stdout));
        self.open.remove(&(seq, Stream::Stderr));
    }

    /// A chunk of a job's output.
    pub fn write(&mut self, seq: u64, stream: Stream, data: &[u8]) -> Result<(), String> {
        if !self.open.contains_key(&(seq, stream)) {
            let file = self.create(seq, stream)?;
            self.open.insert((seq, stream), file);
        }
        let file = self.open.get_mut(&(seq, stream)).expect("just opened");
        file.write_all(data)
            .map_err(|e| format!("cannot write {}: {e}", self.path(seq, stream).display()))
    }

    /// A job finished: both files exist (empty if it wrote nothing) and are closed.
    pub fn finish(&mut self, seq: u64) -> Result<(), String> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if self.open.remove(&(seq, stream)).is_none() {
                self.create(seq, stream)?;
            }
        }
        Ok(())
    }
}
