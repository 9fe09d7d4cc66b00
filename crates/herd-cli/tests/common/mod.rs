//! What the command's test files share: running herd, and reading what it printed.
#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Output, Stdio};

pub fn herd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herd"))
}

/// Runs herd with `args` and no input.
pub fn run(args: &[&str]) -> Output {
    herd().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Runs herd with `args`, `input` written to its stdin from a thread (herd prints while it
/// reads). A write cut short because herd stopped reading is not an error here: the
/// caller's assertions on the output say whether it should have.
pub fn with_input(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = herd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One JSON value per line.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    text(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `sh -c script`, where the script runs herd as `/usr/bin/time -f %M -o {rss} herd …`
/// (`{rss}` is replaced by a file's path). Returns what the script printed and herd's peak
/// RSS in KiB, from GNU time: it forks from a small process, so the peak is herd's own (a
/// child spawned with vfork semantics would carry its parent's peak into its `ru_maxrss`).
pub fn with_peak_rss(script: &str) -> (Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("rss");
    let script = script.replace("{rss}", rss.to_str().unwrap());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    let peak = std::fs::read_to_string(&rss)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (out, peak)
}
