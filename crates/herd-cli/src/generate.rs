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
        Generate::Man => return finish(man(cmd, &mut out).and_then(|_| out.flush())),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompleteElvish => Shell::Elvish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "herd", &mut out);
    finish(out.flush())
}

/// The man page: clap's NAME, DESCRIPTION and OPTIONS (value names included), and the
/// sections a man page has that clap does not write: a readable SYNOPSIS (clap's lists every
/// option), EXAMPLES, EXIT STATUS, ENVIRONMENT and SEE ALSO.
fn man(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let usage = cmd.get_overridden_usage().map(|u| u.to_string());
    let man = clap_mangen::Man::new(cmd);
    man.render_title(out)?;
    man.render_name_section(out)?;
    writeln!(out, ".SH SYNOPSIS")?;
    writeln!(out, "{}", roff_text(usage.as_deref().unwrap_or("herd")))?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH EXAMPLES")?;
    let examples = crate::cli::EXAMPLES.trim_start_matches("Examples:\n");
    for line in examples.lines() {
        match line.strip_prefix("    ") {
            // A command: shown as typed.
            Some(command) => writeln!(out, ".RS 4\n.nf\n{}\n.fi\n.RE", roff_text(command))?,
            None => writeln!(out, ".PP\n{}", roff_text(line.trim()))?,
        }
    }
    for (title, text) in [
        ("\"EXIT STATUS\"", crate::cli::EXIT_STATUS),
        ("ENVIRONMENT", ENVIRONMENT),
        ("\"SEE ALSO\"", SEE_ALSO),
    ] {
        writeln!(out, ".SH {title}")?;
        for paragraph in text.split("\n\n") {
            writeln!(out, ".PP\n{}", roff_text(&paragraph.replace('\n', " ")))?;
        }
    }
    man.render_version_section(out)
}

const ENVIRONMENT: &str = "\
PARALLEL: options read before the command line's, as GNU parallel reads them (after \
~/.parallel/config; --plain ignores both).

PARALLEL_SHELL: the shell that runs composed command lines (else the calling shell, else \
SHELL, else /bin/sh).

PARALLEL_SEQ, PARALLEL_JOBSLOT: set for each job, its number and its slot.

HERD_NO_CGROUP=1: contain jobs in process groups even where herd may create cgroups.";

const SEE_ALSO: &str = "parallel(1), parallel_tutorial(7), xargs(1), sh(1)

herd --help prints this manual; herd -h a one-screen summary.";

/// `text` as roff body text: backslashes and hyphens escaped, no line read as a request.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_has_the_sections_of_a_man_page() {
        let mut page = Vec::new();
        man(Cli::command(), &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        let sections: Vec<&str> = page.lines().filter(|l| l.starts_with(".SH ")).collect();
        for wanted in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH EXAMPLES",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(sections.contains(&wanted), "{wanted} missing: {sections:?}");
        }
        // The synopsis is herd's usage, not every option in a row.
        let synopsis = page.split(".SH SYNOPSIS\n").nth(1).unwrap();
        assert!(synopsis.starts_with("herd [OPTIONS] [COMMAND [ARG]...] [::: VALUE...]"));
        // Options show the values they take.
        assert!(
            page.contains("\\fB\\-\\-jobs\\fR \\fI<N>\\fR"),
            "no value names"
        );
        assert!(page.contains("herd \\-j 8 gzip \\-9 ::: *.log"));
        assert!(page.contains("0 if every job succeeded"));
        // No line of text is taken for a roff request.
        for line in page.lines().filter(|l| l.starts_with('.')) {
            let request = line[1..].split([' ', '\\']).next().unwrap();
            assert!(
                [
                    "TH", "SH", "SS", "PP", "TP", "IP", "RS", "RE", "nf", "fi", "ie", "el", "B",
                    "I", "br", ""
                ]
                .contains(&request),
                "{line}"
            );
        }
    }
}
