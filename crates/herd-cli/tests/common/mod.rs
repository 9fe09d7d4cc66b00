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
