//! `herd`: run commands in parallel and keep every byte of their output.
//!
//! The path of a run: [`cli`] parses the command line; [`input`] streams the input tuples;
//! [`template`] turns each into a command; [`run`] keeps up to `-j` of them in a
//! [`herd::Herd`] and hands what comes back to [`printer`], which writes it in the chosen
//! output mode (and as JSON with `--json`, see [`json`]).

mod cli;
mod input;
mod json;
mod printer;
mod run;
mod template;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line naming the problem, not clap's usage block.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "herd: {} (see herd --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(255);
        }
    };
    let options = match cli.into_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("herd: {}", e.0);
            return ExitCode::from(255);
        }
    };
    match run::run(options) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(run::Fatal(message)) => {
            eprintln!("herd: {message}");
            ExitCode::from(255)
        }
    }
}
