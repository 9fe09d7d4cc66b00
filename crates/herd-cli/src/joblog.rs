//! `--joblog`: one tab-separated row per finished job, in GNU parallel's format, and its
//! reading back for `--resume` and `--resume-failed`.

use crate::options::Resume;
use herd_engine::JobResult;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// The job numbers an existing joblog says need not run again.
pub fn finished_jobs(path: &Path, resume: Resume) -> Result<HashSet<u64>, String> {
    Ok(read(path, resume)?.skip)
}

/// `--retry-failed`: the jobs to run again, as the log's commands by job number (from 1; a
/// number the log does not list has none), and the numbers not to run.
pub fn failed_commands(path: &Path) -> Result<(Vec<Vec<u8>>, HashSet<u64>), String> {
    let Logged { mut skip, commands } = read(path, Resume::Successful)?;
    let last = commands.keys().max().copied().unwrap_or(0);
    let mut all = Vec::new();
    for seq in 1..=last {
        match commands.get(&seq) {
            Some(c) => all.push(c.clone()),
            None => {
                skip.insert(seq);
                all.push(Vec::new());
            }
        }
    }
    Ok((all, skip))
}

/// What a joblog says: the job numbers a resume skips, and each job's command.
struct Logged {
    skip: HashSet<u64>,
    commands: HashMap<u64, Vec<u8>>,
}

fn read(path: &Path, resume: Resume) -> Result<Logged, String> {
    let mut commands = HashMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        // Nothing to resume from: every job runs.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let skip = HashSet::new();
            return Ok(Logged { skip, commands });
        }
        Err(e) => return Err(format!("cannot read joblog {}: {e}", path.display())),
    };
    let bad = |n: usize, what: &str| {
        format!(
            "joblog {} line {n}: {what} (expected GNU parallel's columns: {})",
            path.display(),
            HEADER.replace('\t', " ")
        )
    };
    let mut skip = HashSet::new();
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(|e| format!("cannot read joblog {}: {e}", path.display()))?;
        let last = lines.peek().is_none();
        let line = String::from_utf8_lossy(&line);
        if i == 0 {
            if line != HEADER {
                return Err(bad(1, "not a joblog header"));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(9, '\t').collect();
        if fields.len() < 9 && last {
            // A row cut short (herd or GNU parallel killed while writing it): that job runs
            // again.
            continue;
        }
        if fields.len() < 9 {
            return Err(bad(i + 1, "fewer than 9 tab-separated fields"));
        }
        let seq: u64 = fields[0]
            .parse()
            .map_err(|_| bad(i + 1, "Seq is not a job number"))?;
        let exit: i64 = fields[6]
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, "Exitval is not a number"))?;
        let signal: i64 = fields[7]
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, "Signal is not a number"))?;
        if resume == Resume::All || (exit == 0 && signal == 0) {
            skip.insert(seq);
        }
        commands.insert(seq, fields[8].as_bytes().to_vec());
    }
    Ok(Logged { skip, commands })
}

/// The joblog being written.
pub struct Joblog {
    out: BufWriter<File>,
    /// For errors.
    path: String,
}

impl Joblog {
    /// Creates the log (with its header), or appends to it when resuming.
    pub fn open(path: &Path, append: bool) -> io::Result<Joblog> {
        let exists = append && path.metadata().is_ok_and(|m| m.len() > 0);
        let file = if append {
            OpenOptions::new().create(true).append(true).open(path)
        } else {
            File::create(path)
        }
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))?;
        let mut log = Joblog {
            out: BufWriter::new(file),
            path: path.display().to_string(),
        };
        let start = if !exists {
            format!("{HEADER}\n")
        } else if !ends_with_newline(path)? {
            // The last row was cut short: end it, so the next row is not glued onto it.
            "\n".to_string()
        } else {
            String::new()
        };
        log.put(&start)?;
        Ok(log)
    }

    /// Writes and flushes `text`; an error names the log.
    fn put(&mut self, text: &str) -> io::Result<()> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write joblog {}: {e}", self.path))
            })
    }

    /// Logs a job that did not run (GNU's exit values: -2 for `skip()`, -1 for a failure).
    pub fn unrun_row(&mut self, seq: u64, command: &str, exit_value: i32) -> io::Result<()> {
        let row = Row {
            seq,
            host: ":".into(),
            start: std::time::SystemTime::now(),
            runtime: 0.0,
            received: 0,
            exit_value,
            signal: 0,
        };
        self.write(&row, command)
    }

    /// Logs a finished job, and flushes: the log is current while the run goes on.
    pub fn row(
        &mut self,
        seq: u64,
        host: &str,
        command: &str,
        result: &JobResult,
    ) -> io::Result<()> {
        let row = Row {
            seq,
            host: host.replace(['\t', '\n'], " "),
            start: result.start_time,
            runtime: result.duration.as_secs_f64(),
            received: result.stdout.len() + result.stderr.len(),
            exit_value: result.exit_code().unwrap_or(-1),
            signal: result.signal().unwrap_or(0),
        };
        self.write(&row, command)
    }

    fn write(&mut self, row: &Row, command: &str) -> io::Result<()> {
        let start = row
            .start
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // GNU parallel's columns: Receive counts the output bytes; Send (stdin) is 0. A command
        // never holds a newline here: it is shell-quoted, which keeps it on one line only if
        // it has none, so newlines are written as the two characters \n.
        let command = command.replace('\n', "\\n");
        let line = format!(
            "{}\t{}\t{start:.3}\t{:10.3}\t0\t{}\t{}\t{}\t{command}\n",
            row.seq, row.host, row.runtime, row.received, row.exit_value, row.signal,
        );
        self.put(&line)
    }
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// One joblog line's numbers.
struct Row {
    seq: u64,
    host: String,
    start: std::time::SystemTime,
    runtime: f64,
    received: u64,
    exit_value: i32,
    signal: i32,
}
