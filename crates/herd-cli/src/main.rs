//! `herd`: run commands in parallel and keep every byte of their output.
//!
//! The path of a run: [`cli`] parses the command line; [`input`] streams the input tuples;
//! [`template`] turns each into a command; [`run`] keeps up to `-j` of them in a
//! [`herd::Herd`] and hands what comes back to [`printer`], which writes it in the chosen
//! output mode (and as JSON with `--json`, see [`json`]), and to the other reports:
//! [`results`] files, the [`events`] stream, the [`joblog`] and the [`progress`] bar. [`halt`]
//! decides when to stop early; [`generate`] writes the man page and completions.

mod cli;
mod events;
mod generate;
mod halt;
mod input;
mod joblog;
mod json;
mod printer;
mod progress;
mod results;
mod run;
mod template;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::split_short_values(std::env::args_os().collect());
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line naming the problem (clap's message, up to its usage block).
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            eprintln!("herd: {message} (see herd --help)");
            return ExitCode::from(255);
        }
    };
    if let Some(kind) = cli.generate {
        return generate::generate(kind);
    }
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
