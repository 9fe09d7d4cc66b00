//! JSON for machines: one record per finished job (`--json`, and the "finish" events of
//! `--events`), with the output as text, as base64 when it is not UTF-8, or as one timeline
//! of both streams (`--json-timeline`).

use herd::{JobResult, Outcome, Output, Stream};
use serde::Serialize;
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

/// One piece of a timeline: output of one stream, or the place where a cap cut it.
#[derive(Serialize)]
struct TimelineEntry {
    stream: &'static str,
    #[serde(flatten)]
    data: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    cut_bytes: Option<u64>,
}

/// What a record carries of the output itself.
pub enum OutputForm<'a> {
    /// Byte counts only.
    None,
    /// `stdout`/`stdout_base64` and `stderr`/`stderr_base64`.
    Separate,
    /// `timeline`: both streams in the order they were read.
    Timeline(&'a [Segment]),
}

#[derive(Serialize)]
pub struct Record {
    pub seq: u64,
    command: Vec<String>,
    exit_code: Option<i32>,
    signal: Option<&'static str>,
    timed_out: bool,
    /// Descendants held the output open after exit and were killed.
    leaked: bool,
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
    stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout_cut: Option<CutJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_cut: Option<CutJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Vec<TimelineEntry>>,
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

/// Lays the segments over the kept bytes of each stream. A segment that falls (partly) in the
/// part a cap dropped gives one `cut_bytes` entry instead.
fn timeline(result: &JobResult, segments: &[Segment]) -> std::io::Result<Vec<TimelineEntry>> {
    let kept = [result.stdout.to_vec()?, result.stderr.to_vec()?];
    let mut read = [0u64; 2];
    let mut cut_told = [false; 2];
    let mut entries = Vec::new();
    for &(stream, len) in segments {
        let i = stream as usize;
        let output = result.output(stream);
        let (start, end) = (read[i], read[i] + len);
        read[i] = end;
        // Positions in the stream as produced, mapped to positions in the kept bytes.
        let (cut_at, cut_len) = output.cut().map_or((u64::MAX, 0), |c| (c.offset, c.bytes));
        let piece = |from: u64, to: u64| {
            let (from, to) = (from as usize, (to as usize).min(kept[i].len()));
            (from < to).then(|| TimelineEntry {
                stream: stream_name(stream),
                data: Bytes::of(&kept[i][from..to]),
                cut_bytes: None,
            })
        };
        if start < cut_at {
            entries.extend(piece(start, end.min(cut_at)));
        }
        if end > cut_at && start < cut_at + cut_len && !cut_told[i] {
            cut_told[i] = true;
            entries.push(TimelineEntry {
                stream: stream_name(stream),
                data: Bytes::default(),
                cut_bytes: Some(cut_len),
            });
        }
        if end > cut_at.saturating_add(cut_len) {
            entries.extend(piece(start.max(cut_at + cut_len) - cut_len, end - cut_len));
        }
    }
    Ok(entries)
}

fn split(output: &Output) -> std::io::Result<(Option<String>, Option<String>)> {
    let b = Bytes::of(&output.to_vec()?);
    Ok((b.text, b.base64))
}

/// The record of a finished job.
pub fn record(
    seq: u64,
    argv: &[Vec<u8>],
    result: &JobResult,
    form: OutputForm<'_>,
) -> std::io::Result<Record> {
    let ((stdout, stdout_base64), (stderr, stderr_base64)) = match form {
        OutputForm::Separate => (split(&result.stdout)?, split(&result.stderr)?),
        _ => ((None, None), (None, None)),
    };
    let timeline = match form {
        OutputForm::Timeline(segments) => Some(timeline(result, segments)?),
        _ => None,
    };
    let error = match &result.outcome {
        Outcome::SpawnFailed(e) => Some(e.to_string()),
        Outcome::Cancelled => Some("cancelled before it started".to_string()),
        _ => None,
    };
    let cut = |o: &Output| {
        o.cut().map(|c| CutJson {
            offset: c.offset,
            bytes: c.bytes,
        })
    };
    Ok(Record {
        seq,
        command: argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        exit_code: result.exit_code(),
        signal: result
            .signal()
            .map(|s| herd::signal_name(s).unwrap_or("unknown")),
        timed_out: result.timed_out,
        leaked: result.leaked,
        error,
        start_time: humantime::format_rfc3339_micros(result.start_time).to_string(),
        duration_s: secs(result.duration),
        user_time_s: secs(result.usage.user_time),
        system_time_s: secs(result.usage.system_time),
        max_rss_kb: result.usage.max_rss_kb,
        stdout_bytes: result.stdout.len(),
        stderr_bytes: result.stderr.len(),
        stdout,
        stdout_base64,
        stderr,
        stderr_base64,
        stdout_cut: cut(&result.stdout),
        stderr_cut: cut(&result.stderr),
        timeline,
    })
}

/// Records a chunk in a job's timeline, merging it with the last one of the same stream.
pub fn add_segment(segments: &mut Vec<Segment>, stream: Stream, len: u64) {
    match segments.last_mut() {
        Some((s, n)) if *s == stream => *n += len,
        _ => segments.push((stream, len)),
    }
}
