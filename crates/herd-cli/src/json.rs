//! `--json`: one JSON object per finished job.

use herd::{JobResult, Outcome, Output};
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize)]
struct Record<'a> {
    seq: u64,
    command: Vec<String>,
    exit_code: Option<i32>,
    signal: Option<&'a str>,
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
}

/// The output as UTF-8 text, or else as base64.
fn text_or_base64(output: &Output) -> std::io::Result<(Option<String>, Option<String>)> {
    use base64::Engine;
    let bytes = output.to_vec()?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
        ),
    })
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// One line of JSON (without the newline) for a finished job.
pub fn record(seq: u64, argv: &[Vec<u8>], result: &JobResult) -> std::io::Result<String> {
    let (stdout, stdout_base64) = text_or_base64(&result.stdout)?;
    let (stderr, stderr_base64) = text_or_base64(&result.stderr)?;
    let error = match &result.outcome {
        Outcome::SpawnFailed(e) => Some(e.to_string()),
        Outcome::Cancelled => Some("cancelled before it started".to_string()),
        _ => None,
    };
    let record = Record {
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
    };
    Ok(serde_json::to_string(&record).expect("a record always serialises"))
}
