//! `herd`: run commands in parallel and keep every byte of their output.
//!
//! The path of a run: [`gnu_args`] reads the command line as GNU parallel would, [`cli`]
//! parses it and [`options`] checks it; [`input`] streams the input tuples and [`batch`]
//! groups them into jobs; [`jobs`] makes each job: [`template`] fills the replacement strings
//! ([`perl`] evaluates GNU's Perl expressions among them) and [`compose`] turns the result
//! into a shell line, or an argument vector when no shell is needed; [`run`] keeps up to `-j`
//! jobs in a [`herd_engine::Herd`] ([`gate`] and [`timeouts`] may hold starts back or end
//! jobs early) and hands what comes back to [`printer`], which writes it in the chosen output
//! mode (and as JSON with `--json`, see [`json`]), and to the other reports: [`results`] files
//! and tables, the [`events`] stream, the [`joblog`] and the [`progress`] bar. [`halt`]
//! decides when to stop early; [`generate`] writes the man page and completions.
//!
//! With `--pipe` and `--pipepart` the input is data for the jobs' stdin, not values:
//! [`blocks`] cuts it into blocks of whole records, [`deal`] deals them to long-lived jobs
//! (`--round-robin`), [`shard`] routes lines to them by a column (`--shard`, `--bin`),
//! [`groupby`] marks where groups of lines start (`--group-by`), [`tee`] gives every job all
//! of it (`--tee`) and [`blockfile`] hands a block over as a file (`--cat`, `--fifo`). With
//! `-S`, [`remote`] runs jobs on other hosts.

mod batch;
mod blockfile;
mod blocks;
mod cli;
mod compose;
mod deal;
mod events;
mod feeder;
mod gate;
mod generate;
mod gnu_args;
mod groupby;
mod halt;
mod input;
mod joblog;
mod jobs;
mod json;
mod options;
mod parked;
mod perl;
mod printer;
mod progress;
mod remote;
mod results;
mod run;
mod shard;
mod tee;
mod template;
mod timed;
mod timeouts;
mod watch;

use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;

/// The GNU parallel release whose behaviour herd follows (`--minversion`).
pub const GNU_COMPATIBLE_VERSION: u64 = 20221122;

fn usage_error(message: &str) -> ExitCode {
    eprintln!("herd: {message}");
    ExitCode::from(255)
}

/// The directory of GNU parallel's profiles: `$PARALLEL_HOME`, else `~/.parallel`.
fn profile_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("PARALLEL_HOME")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".parallel")))
}

/// `--record-env`: the names of the current environment variables, one a line, in
/// `ignored_vars` beside the profiles.
fn record_env() -> Result<(), String> {
    let dir = profile_dir().ok_or("--record-env: no home directory")?;
    let path = dir.join("ignored_vars");
    let mut names = String::new();
    for (name, _) in std::env::vars_os() {
        names.push_str(&name.to_string_lossy());
        names.push('\n');
    }
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, names))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The words of a profile file: one or more options a line, `#` lines ignored.
fn profile_words(path: &std::path::Path) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read profile {}: {e}", path.display()))?;
    let mut words = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        words.extend(gnu_args::shell_words(line).map_err(|e| e.0)?);
    }
    Ok(words)
}

/// The command line with GNU parallel's defaults before it: the profiles (`-J NAME`, or
/// `~/.parallel/config`), then `$PARALLEL`; none of them with `--plain`.
fn with_defaults(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    // A first reading finds -J and --plain among the options.
    let first = gnu_args::normalize(argv.clone()).map_err(|e| e.0)?;
    let mut profiles = Vec::new();
    let mut plain = false;
    for a in first.args.iter().skip(1).take_while(|a| *a != "--") {
        let a = a.to_string_lossy();
        if a == "--plain" {
            plain = true;
        } else if let Some(p) = a.strip_prefix("--profile=") {
            profiles.push(p.to_owned());
        }
    }
    if plain {
        return Ok(argv);
    }
    let dir = profile_dir();
    let mut pre = Vec::new();
    if profiles.is_empty() {
        let config = dir.as_ref().map(|d| d.join("config"));
        for path in [
            Some(std::path::PathBuf::from("/etc/parallel/config")),
            config,
        ]
        .into_iter()
        .flatten()
        .filter(|p| p.is_file())
        {
            pre.extend(profile_words(&path)?);
        }
    }
    for name in profiles {
        let path = if name.starts_with('/') || name.starts_with("./") {
            std::path::PathBuf::from(&name)
        } else {
            dir.as_ref()
                .map(|d| d.join(&name))
                .ok_or_else(|| format!("profile {name}: no home directory"))?
        };
        pre.extend(profile_words(&path)?);
    }
    if let Some(env) = std::env::var_os("PARALLEL").filter(|v| !v.is_empty()) {
        pre.extend(gnu_args::shell_words(&env.to_string_lossy()).map_err(|e| e.0)?);
    }
    if pre.is_empty() {
        return Ok(argv);
    }
    let mut all = Vec::with_capacity(argv.len() + pre.len());
    let mut argv = argv.into_iter();
    all.extend(argv.next());
    all.extend(pre);
    all.extend(argv);
    Ok(all)
}

fn main() -> ExitCode {
    let argv = match gnu_args::unwrap_shebang(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => return usage_error(&e.0),
    };
    let argv = match with_defaults(argv) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let normalized = match gnu_args::normalize(argv) {
        Ok(n) => n,
        Err(e) => return usage_error(&format!("{} (see herd --help)", e.0)),
    };
    let cli = match cli::Cli::try_parse_from(normalized.args) {
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
            return usage_error(&format!("{message} (see herd --help)"));
        }
    };
    if cli.short_help {
        print!("{}", cli::SUMMARY);
        return ExitCode::SUCCESS;
    }
    if let Some(kind) = cli.generate {
        return generate::generate(kind);
    }
    if cli.record_env {
        return match record_env() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => usage_error(&e),
        };
    }
    if let Some((text, code)) = options::information(&cli) {
        print!("{text}");
        return ExitCode::from(code);
    }
    for note in &normalized.notes {
        eprintln!("herd: note: {note}");
    }
    let options = match cli.into_options() {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    match run::run(options) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(run::Fatal(message)) => usage_error(&message),
    }
}
