//! `--events`: the run as JSON Lines, one object per thing that happens, written (and
//! flushed) as it happens, so another program can follow a run live.
//!
//! `{"event":"start",…}` when a job's process starts; `{"event":"output",…}` per chunk of
//! output with `--events-output`; `{"event":"retry",…}` when a failed run will run again;
//! `{"event":"finish",…}` with the fields of `--json` (without the output); and one
//! `{"event":"end",…}` with the totals.

use crate::json::{Bytes, Record};
use herd_engine::Stream;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line<'a> {
    Start {
        seq: u64,
        slot: usize,
        /// `-S`: the host it runs on (the pid is of its local ssh).
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        pid: u32,
        command: &'a [String],
        time: String,
    },
    Output {
        seq: u64,
        stream: &'static str,
        #[serde(flatten)]
        data: Bytes,
    },
    Retry {
        seq: u64,
        run: u32,
        /// `-S`: the host of the attempt that failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        exit_code: Option<i32>,
        signal: Option<&'static str>,
    },
    Finish(&'a Record),
    End {
        jobs: u64,
        failed: u64,
        skipped: u64,
        exit_status: i32,
        duration_s: f64,
    },
}

/// The event stream.
pub struct EventLog {
    out: Box<dyn Write>,
    /// `--events-output`: chunks of output are events too.
    pub with_output: bool,
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

impl EventLog {
    pub fn new(out: Box<dyn Write>, with_output: bool) -> EventLog {
        EventLog { out, with_output }
    }

    fn write(&mut self, line: &Line<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn start(
        &mut self,
        seq: u64,
        slot: usize,
        host: Option<&str>,
        pid: u32,
        argv: &[Vec<u8>],
    ) -> io::Result<()> {
        let command: Vec<String> = argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        self.write(&Line::Start {
            seq,
            slot,
            host,
            pid,
            command: &command,
            time: now(),
        })
    }

    pub fn output(&mut self, seq: u64, stream: Stream, data: &[u8]) -> io::Result<()> {
        if !self.with_output {
            return Ok(());
        }
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        self.write(&Line::Output {
            seq,
            stream,
            data: Bytes::of(data),
        })
    }

    pub fn retry(
        &mut self,
        seq: u64,
        run: u32,
        host: Option<&str>,
        result: &herd_engine::JobResult,
    ) -> io::Result<()> {
        self.write(&Line::Retry {
            seq,
            run,
            host,
            exit_code: result.exit_code(),
            signal: result
                .signal()
                .map(|s| herd_engine::signal_name(s).unwrap_or("unknown")),
        })
    }

    pub fn finish(&mut self, record: &Record) -> io::Result<()> {
        self.write(&Line::Finish(record))
    }

    pub fn end(
        &mut self,
        jobs: u64,
        failed: u64,
        skipped: u64,
        exit_status: i32,
        duration: std::time::Duration,
    ) -> io::Result<()> {
        self.write(&Line::End {
            jobs,
            failed,
            skipped,
            exit_status,
            duration_s: (duration.as_secs_f64() * 1e6).round() / 1e6,
        })
    }
}
