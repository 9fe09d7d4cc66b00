//! JSON for machines: one record per finished job (`--json`, and the "finish" events of
//! `--events`), with the output as text, as base64 when it is not UTF-8, or as one timeline
//! of both streams (`--json-timeline`).

use herd_engine::{Captured, JobResult, Outcome, Stream};
use serde::Serialize;
use std::io::{self, Read, Write};
use std::time::Duration;

/// A run of output from one stream, as read: the timeline of `--json-timeline` is a list of
/// these, consecutive chunks of a stream merged.
pub type Segment = (Stream, u64);

/// Text when the bytes are UTF-8, else base64: exactly one of the two is set.
#[derive(Serialize, Default)]
pub struct Bytes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl Bytes {
    pub fn of(bytes: &[u8]) -> Bytes {
        use base64::Engine;
        match std::str::from_utf8(bytes) {
            Ok(s) => Bytes {
                text: Some(s.to_owned()),
                base64: None,
            },
            Err(_) => Bytes {
                text: None,
                base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
        }
    }
}

/// Where `--max-output` cut a stream: after `offset` kept bytes, `bytes` were dropped.
#[derive(Serialize)]
struct CutJson {
    offset: u64,
    bytes: u64,
}

/// How a `--json` record carries the output.
pub enum OutputForm<'a> {
    /// `stdout`/`stdout_base64` and `stderr`/`stderr_base64`.
    Separate,
    /// `timeline`: both streams in the order they were read.
    Timeline(&'a [Segment]),
}

#[derive(Serialize)]
pub struct Record {
    pub seq: u64,
    /// `-S`: the sshlogin it ran on (`:` for this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// The runs before this one, when it ran more than once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attempts: Vec<Attempt>,
    command: Vec<String>,
    exit_code: Option<i32>,
    signal: Option<&'static str>,
    timed_out: bool,
    /// Descendants held the output open after exit and were killed.
    leaked: bool,
    /// Stopped for reading the terminal, and killed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stopped_for_terminal: bool,
    /// Why the job could not start, if it could not.
    error: Option<String>,
    start_time: String,
    duration_s: f64,
    user_time_s: f64,
    system_time_s: f64,
    max_rss_kb: u64,
    stdout_bytes: u64,
    stderr_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout_cut: Option<CutJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_cut: Option<CutJson>,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// The record of a finished job, without its output (see [`write_record`] for that).
/// An earlier run of a job that ran again (`--retries`, or its host failed).
#[derive(Serialize, Debug, Clone)]
pub struct Attempt {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    exit_code: Option<i32>,
    signal: Option<&'static str>,
    start_time: String,
    duration_s: f64,
}

impl Attempt {
    pub fn of(host: Option<&str>, result: &JobResult) -> Attempt {
        Attempt {
            host: host.map(str::to_string),
            exit_code: result.exit_code(),
            signal: result
                .signal()
                .map(|s| herd_engine::signal_name(s).unwrap_or("unknown")),
            start_time: humantime::format_rfc3339_micros(result.start_time).to_string(),
            duration_s: secs(result.duration),
        }
    }
}

pub fn record(
    seq: u64,
    host: Option<&str>,
    attempts: &[Attempt],
    argv: &[Vec<u8>],
    result: &JobResult,
) -> Record {
    let error = match &result.outcome {
        Outcome::SpawnFailed(e) => Some(e.to_string()),
        Outcome::Cancelled => Some("cancelled before it started".to_string()),
        _ => None,
    };
    let cut = |o: &Captured| {
        o.cut().map(|c| CutJson {
            offset: c.offset,
            bytes: c.bytes,
        })
    };
    Record {
        seq,
        host: host.map(str::to_string),
        attempts: attempts.to_vec(),
        command: argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        exit_code: result.exit_code(),
        signal: result
            .signal()
            .map(|s| herd_engine::signal_name(s).unwrap_or("unknown")),
        timed_out: result.timed_out,
        leaked: result.leaked,
        stopped_for_terminal: result.stopped_for_terminal,
        error,
        start_time: humantime::format_rfc3339_micros(result.start_time).to_string(),
        duration_s: secs(result.duration),
        user_time_s: secs(result.usage.user_time),
        system_time_s: secs(result.usage.system_time),
        max_rss_kb: result.usage.max_rss_kb,
        stdout_bytes: result.stdout.len(),
        stderr_bytes: result.stderr.len(),
        stdout_cut: cut(&result.stdout),
        stderr_cut: cut(&result.stderr),
    }
}

/// Records a chunk in a job's timeline, merging it with the last one of the same stream.
pub fn add_segment(segments: &mut Vec<Segment>, stream: Stream, len: u64) {
    match segments.last_mut() {
        Some((s, n)) if *s == stream => *n += len,
        _ => segments.push((stream, len)),
    }
}

/// Writes the record of a finished job with its output, as one line: the fields of
/// [`record`], then `stdout`/`stdout_base64` and `stderr`/`stderr_base64`, or `timeline`.
///
/// The output is streamed from where the job's capture keeps it (memory, or its spill file)
/// and never held whole: a job that printed 300 MB costs a few buffers here, not the 300 MB
/// and then some for its escaped copy. Whether a piece is text or base64 is decided by a first
/// pass over it, then a second pass writes it.
pub fn write_record(
    out: &mut dyn Write,
    seq: u64,
    host: Option<&str>,
    attempts: &[Attempt],
    argv: &[Vec<u8>],
    result: &JobResult,
    form: OutputForm<'_>,
) -> io::Result<()> {
    let mut head = serde_json::to_vec(&record(seq, host, attempts, argv, result))?;
    head.pop(); // The closing brace: the output fields follow.
    out.write_all(&head)?;
    match form {
        OutputForm::Separate => {
            for (stream, name) in [(Stream::Stdout, "stdout"), (Stream::Stderr, "stderr")] {
                let output = result.output(stream);
                let len = output.kept_len();
                let text = is_utf8(&mut output.reader()?, len)?;
                let key = if text {
                    name.to_string()
                } else {
                    format!("{name}_base64")
                };
                write!(out, ",\"{key}\":")?;
                write_piece(out, &mut output.reader()?, len, text)?;
            }
        }
        OutputForm::Timeline(segments) => {
            out.write_all(b",\"timeline\":[")?;
            write_timeline(out, result, segments)?;
            out.write_all(b"]")?;
        }
    }
    out.write_all(b"}\n")
}

/// Reads `len` bytes of `from` in buffers and hands each to `f`.
fn each_buffer(
    from: &mut dyn Read,
    len: u64,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a job's kept output ended early",
            ));
        }
        f(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Whether the next `len` bytes of `from` are UTF-8 (a character may span two buffers).
fn is_utf8(from: &mut dyn Read, len: u64) -> io::Result<bool> {
    let mut valid = true;
    let mut carry: Vec<u8> = Vec::new();
    each_buffer(from, len, |data| {
        if !valid {
            return Ok(());
        }
        carry.extend_from_slice(data);
        match std::str::from_utf8(&carry) {
            Ok(_) => carry.clear(),
            // Only an unfinished character at the end: keep it for the next buffer.
            Err(e) if e.error_len().is_none() => {
                carry.drain(..e.valid_up_to());
            }
            Err(_) => valid = false,
        }
        Ok(())
    })?;
    Ok(valid && carry.is_empty())
}

/// Writes the next `len` bytes of `from` as one JSON string: escaped text (they are UTF-8,
/// as [`is_utf8`] found) or base64.
fn write_piece(out: &mut dyn Write, from: &mut dyn Read, len: u64, text: bool) -> io::Result<()> {
    out.write_all(b"\"")?;
    if text {
        let mut carry: Vec<u8> = Vec::new();
        each_buffer(from, len, |data| {
            carry.extend_from_slice(data);
            let valid = match std::str::from_utf8(&carry) {
                Ok(_) => carry.len(),
                Err(e) => e.valid_up_to(),
            };
            let s = std::str::from_utf8(&carry[..valid]).expect("checked above");
            let quoted = serde_json::to_vec(s)?;
            out.write_all(&quoted[1..quoted.len() - 1])?;
            carry.drain(..valid);
            Ok(())
        })?;
    } else {
        use base64::write::EncoderWriter;
        let mut encoder = EncoderWriter::new(&mut *out, &base64::engine::general_purpose::STANDARD);
        each_buffer(from, len, |data| encoder.write_all(data))?;
        encoder.finish()?;
    }
    out.write_all(b"\"")
}

/// The entries of `--json-timeline`: the segments laid over the kept bytes of each stream,
/// each as text or base64. A segment that falls (partly) in the part a cap dropped gives one
/// `cut_bytes` entry instead. Two readers per stream go through it in order: one looks at a
/// piece, the other writes it.
fn write_timeline(out: &mut dyn Write, result: &JobResult, segments: &[Segment]) -> io::Result<()> {
    let outputs = [&result.stdout, &result.stderr];
    let mut look = [outputs[0].reader()?, outputs[1].reader()?];
    let mut write = [outputs[0].reader()?, outputs[1].reader()?];
    let mut kept_at = [0u64; 2];
    let mut read = [0u64; 2];
    let mut cut_told = [false; 2];
    let mut first = true;
    for &(stream, len) in segments {
        let i = stream as usize;
        let name = stream_name(stream);
        let output = outputs[i];
        let (start, end) = (read[i], read[i] + len);
        read[i] = end;
        // Positions in the stream as produced, mapped to positions in the kept bytes.
        let (cut_at, cut_len) = output.cut().map_or((u64::MAX, 0), |c| (c.offset, c.bytes));
        let mut pieces = Vec::with_capacity(2);
        if start < cut_at {
            pieces.push((start, end.min(cut_at), false));
        }
        if end > cut_at && start < cut_at + cut_len && !cut_told[i] {
            cut_told[i] = true;
            pieces.push((0, 0, true));
        }
        if end > cut_at.saturating_add(cut_len) {
            pieces.push((start.max(cut_at + cut_len) - cut_len, end - cut_len, false));
        }
        for (from, to, is_cut) in pieces {
            let separator = if first { "" } else { "," };
            if is_cut {
                write!(
                    out,
                    "{separator}{{\"stream\":\"{name}\",\"cut_bytes\":{cut_len}}}"
                )?;
                first = false;
                continue;
            }
            let to = to.min(output.kept_len());
            if from >= to {
                continue;
            }
            if from > kept_at[i] {
                // Not expected (segments are contiguous), but then the readers must skip too.
                let gap = from - kept_at[i];
                each_buffer(&mut look[i], gap, |_| Ok(()))?;
                each_buffer(&mut write[i], gap, |_| Ok(()))?;
            }
            let piece = to - from;
            kept_at[i] = to;
            let text = is_utf8(&mut look[i], piece)?;
            let key = if text { "text" } else { "base64" };
            write!(out, "{separator}{{\"stream\":\"{name}\",\"{key}\":")?;
            write_piece(out, &mut write[i], piece, text)?;
            out.write_all(b"}")?;
            first = false;
        }
    }
    Ok(())
}
