//! `--generate`: the man page and shell completions, made from the same definitions as
//! `--help`, so the three never disagree.

use crate::cli::{Cli, Generate};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

pub fn generate(kind: Generate) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    let shell = match kind {
        Generate::Man => {
            let r = clap_mangen::Man::new(cmd)
                .render(&mut out)
                .and_then(|_| out.flush());
            return finish(r);
        }
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompleteElvish => Shell::Elvish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "herd", &mut out);
    finish(out.flush())
}

fn finish(r: std::io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herd: cannot write: {e}");
            ExitCode::from(255)
        }
    }
}
