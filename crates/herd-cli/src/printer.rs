//! Where job output goes: herd's stdout and stderr, in the chosen output mode, and `--json`.

use crate::cli::OutputMode;
use crate::json;
use crate::template::shell_quote;
use herd::{JobId, JobResult, Stream};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

/// What herd remembers of a job while it runs.
pub struct JobInfo {
    pub seq: u64,
    pub slot: usize,
    pub values: Vec<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    /// The job, kept to run it again (`--retries`), and how many times it has run.
    pub job: Option<herd::Job>,
    pub runs: u32,
}

impl JobInfo {
    /// The command as a shell would read it, for messages.
    pub fn display(&self) -> String {
        let words: Vec<Vec<u8>> = self.argv.iter().map(|a| shell_quote(a)).collect();
        String::from_utf8_lossy(&words.join(&b' ')).into_owned()
    }

    fn tag(&self) -> Vec<u8> {
        let mut t = self.values.join(&b'\t');
        t.push(b'\t');
        t
    }
}

/// Writes output and results.
pub struct Printer {
    mode: OutputMode,
    tag: bool,
    /// Job output goes to herd's stdout/stderr (not when `--json -` takes stdout).
    print_output: bool,
    out: BufWriter<io::Stdout>,
    err: BufWriter<io::Stderr>,
    json: Option<Box<dyn Write>>,
    joblog: Option<BufWriter<File>>,
    /// `-k`: finished jobs waiting for their turn, by sequence number.
    waiting: BTreeMap<u64, (JobInfo, JobResult)>,
    next_seq: u64,
    /// `--line-buffer`: the unfinished last line of each stream of each job.
    partial: HashMap<(JobId, usize), Vec<u8>>,
    /// Our stdout is gone (a closed pipe): stop writing to it.
    pub broken: bool,
}

fn write_lines(w: &mut dyn Write, prefix: Option<&[u8]>, data: &[u8]) -> io::Result<()> {
    match prefix {
        None => w.write_all(data),
        Some(prefix) => {
            for line in data.split_inclusive(|&b| b == b'\n') {
                w.write_all(prefix)?;
                w.write_all(line)?;
            }
            Ok(())
        }
    }
}

impl Printer {
    pub fn new(
        mode: OutputMode,
        tag: bool,
        json: Option<&std::path::Path>,
        joblog: Option<&std::path::Path>,
    ) -> io::Result<Printer> {
        let create = |p: &std::path::Path| {
            File::create(p)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", p.display())))
        };
        let joblog = match joblog {
            None => None,
            Some(p) => {
                let mut w = BufWriter::new(create(p)?);
                w.write_all(
                    b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
                )?;
                w.flush()?;
                Some(w)
            }
        };
        let json_to_stdout = json.is_some_and(|p| p.as_os_str() == "-");
        let json: Option<Box<dyn Write>> = match json {
            None => None,
            Some(_) if json_to_stdout => Some(Box::new(io::stdout())),
            Some(p) => Some(Box::new(BufWriter::new(File::create(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write {}: {e}", p.display()))
            })?))),
        };
        Ok(Printer {
            mode,
            tag,
            print_output: !json_to_stdout,
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            err: BufWriter::with_capacity(64 * 1024, io::stderr()),
            json,
            joblog,
            waiting: BTreeMap::new(),
            next_seq: 1,
            partial: HashMap::new(),
            broken: false,
        })
    }

    /// Whether jobs must stream their output to us as it arrives.
    pub fn wants_stream(&self) -> bool {
        self.print_output && matches!(self.mode, OutputMode::Ungroup | OutputMode::LineBuffer)
    }

    /// Whether jobs must keep their output for the end.
    pub fn wants_collect(&self) -> bool {
        self.json.is_some() || matches!(self.mode, OutputMode::Group | OutputMode::KeepOrder)
    }

    fn check(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if !self.broken {
                self.broken = true;
                if e.kind() != io::ErrorKind::BrokenPipe {
                    eprintln!("herd: cannot write output: {e}");
                }
            }
        }
    }

    /// A chunk of streamed output.
    pub fn chunk(&mut self, id: JobId, info: &JobInfo, stream: Stream, data: &[u8]) {
        if self.broken {
            return;
        }
        let r = match self.mode {
            OutputMode::LineBuffer => self.chunk_lines(id, info, stream, data),
            _ => {
                let w: &mut dyn Write = if stream == Stream::Stdout {
                    &mut self.out
                } else {
                    &mut self.err
                };
                w.write_all(data).and_then(|_| w.flush())
            }
        };
        self.check(r);
    }

    fn chunk_lines(
        &mut self,
        id: JobId,
        info: &JobInfo,
        stream: Stream,
        data: &[u8],
    ) -> io::Result<()> {
        let key = (id, stream as usize);
        let Some(last_nl) = data.iter().rposition(|&b| b == b'\n') else {
            self.partial.entry(key).or_default().extend_from_slice(data);
            return Ok(());
        };
        let tag = self.tag.then(|| info.tag());
        let w: &mut dyn Write = if stream == Stream::Stdout {
            &mut self.out
        } else {
            &mut self.err
        };
        let mut lines = self.partial.remove(&key).unwrap_or_default();
        lines.extend_from_slice(&data[..=last_nl]);
        write_lines(w, tag.as_deref(), &lines)?;
        w.flush()?;
        if last_nl + 1 < data.len() {
            self.partial.insert(key, data[last_nl + 1..].to_vec());
        }
        Ok(())
    }

    /// A failed run that will be retried: its unfinished lines are dropped with it.
    pub fn discard(&mut self, id: JobId) {
        self.partial.remove(&(id, 0));
        self.partial.remove(&(id, 1));
    }

    /// A job finished.
    pub fn finish(&mut self, info: JobInfo, result: JobResult) {
        if let Some(log) = self.joblog.as_mut() {
            let start = result
                .start_time
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            // GNU parallel's columns: Receive counts the output bytes; Send (stdin) is 0.
            let line = format!(
                "{}\t:\t{start:.3}\t{:10.3}\t0\t{}\t{}\t{}\t{}\n",
                info.seq,
                result.duration.as_secs_f64(),
                result.stdout.len() + result.stderr.len(),
                result.exit_code().unwrap_or(-1),
                result.signal().unwrap_or(0),
                info.display()
            );
            let r = log.write_all(line.as_bytes()).and_then(|_| log.flush());
            self.check(r);
        }
        if let Some(json) = self.json.as_mut() {
            let r = json::record(info.seq, &info.argv, &result)
                .and_then(|line| {
                    json.write_all(line.as_bytes())
                        .and_then(|_| json.write_all(b"\n"))
                })
                .and_then(|_| json.flush());
            self.check(r);
        }
        if !self.print_output || self.broken {
            return;
        }
        match self.mode {
            OutputMode::Ungroup => {}
            OutputMode::LineBuffer => {
                let tag = self.tag.then(|| info.tag());
                for stream in [Stream::Stdout, Stream::Stderr] {
                    if let Some(rest) = self.partial.remove(&(result.id, stream as usize)) {
                        let w: &mut dyn Write = if stream == Stream::Stdout {
                            &mut self.out
                        } else {
                            &mut self.err
                        };
                        let r = write_lines(w, tag.as_deref(), &rest).and_then(|_| w.flush());
                        self.check(r);
                    }
                }
            }
            OutputMode::Group => {
                let r = self.write_job(&info, &result);
                self.check(r);
            }
            OutputMode::KeepOrder => {
                self.waiting.insert(info.seq, (info, result));
                while let Some((info, result)) = self.waiting.remove(&self.next_seq) {
                    self.next_seq += 1;
                    let r = self.write_job(&info, &result);
                    self.check(r);
                    if self.broken {
                        break;
                    }
                }
            }
        }
    }

    /// One job's collected output, as one block per stream.
    fn write_job(&mut self, info: &JobInfo, result: &JobResult) -> io::Result<()> {
        let tag = self.tag.then(|| info.tag());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let output = result.output(stream);
            if output.is_empty() {
                continue;
            }
            let w: &mut dyn Write = if stream == Stream::Stdout {
                &mut self.out
            } else {
                &mut self.err
            };
            match (&tag, output.as_bytes()) {
                (None, _) => {
                    output.write_to(w)?;
                }
                (Some(tag), Some(bytes)) => write_lines(w, Some(tag), bytes)?,
                (Some(tag), None) => {
                    let mut reader = BufReader::new(output.reader()?);
                    let mut line = Vec::new();
                    while reader.read_until(b'\n', &mut line)? > 0 {
                        write_lines(w, Some(tag), &line)?;
                        line.clear();
                    }
                }
            }
            w.flush()?;
        }
        Ok(())
    }

    /// A message from herd itself, on stderr, in order with job output.
    pub fn message(&mut self, text: &str) {
        let _ = self.err.flush();
        let _ = writeln!(self.err, "herd: {text}");
        let _ = self.err.flush();
    }

    pub fn flush(&mut self) {
        let r = self.out.flush();
        self.check(r);
        let _ = self.err.flush();
        if let Some(json) = self.json.as_mut() {
            let _ = json.flush();
        }
        if let Some(log) = self.joblog.as_mut() {
            let _ = log.flush();
        }
    }
}
