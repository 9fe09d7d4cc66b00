//! Command composition, as GNU parallel does it: one shell line per job, values quoted.
//!
//! A job's command is a line of shell code in which every input value stands quoted
//! ([`Seg::Value`]), so values are never interpreted while the command's own words mean what
//! they mean in the user's shell (pipes, redirections, `$VAR`, `&&`, exported functions). The
//! line runs with the shell GNU parallel would pick: `$PARALLEL_SHELL`, else the shell herd
//! was started from, else `$SHELL`, else `/bin/sh`.
//!
//! Starting a shell per job costs a process start of its own, so a line that needs no shell
//! (plain words and quoted values, a program found on PATH) is executed directly with exactly
//! the arguments the shell would have given it: an optimisation that never changes meaning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A piece of a composed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// Shell code, written by the user.
    Code(Vec<u8>),
    /// An input value: always quoted, never interpreted.
    Value(Vec<u8>),
}

/// How the shell quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// sh, bash, dash, ksh, zsh, …: `'…'`.
    Posix,
    /// csh and tcsh: every special character behind a backslash.
    Csh,
    /// fish: `'…'` in which `\` and `'` are escaped.
    Fish,
    /// Windows' `cmd`.
    Cmd,
}

/// The shell that runs composed lines.
#[derive(Debug, Clone)]
pub struct Shell {
    pub path: PathBuf,
    pub dialect: Dialect,
    /// bash: its builtin `echo` behaves as `/bin/echo` does, so `echo` may run directly.
    pub bash: bool,
}

/// The shells GNU parallel recognises by name.
#[cfg(target_os = "linux")]
const SHELLS: &[&str] = &[
    "ash",
    "bash",
    "bsd-csh",
    "csh",
    "dash",
    "fdsh",
    "fish",
    "fizsh",
    "ksh",
    "ksh93",
    "lksh",
    "mksh",
    "pdksh",
    "posh",
    "rbash",
    "rc",
    "rush",
    "rzsh",
    "sash",
    "sh",
    "static-sh",
    "tcsh",
    "yash",
    "zsh",
];

#[cfg(target_os = "linux")]
fn shell_name(argv0: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(argv0).ok()?;
    let s = s.strip_prefix('-').unwrap_or(s);
    let base = s.rsplit('/').next()?;
    SHELLS.iter().copied().find(|&n| n == base)
}

/// The nearest ancestor process that is a shell (GNU parallel's `parent_shell`).
#[cfg(target_os = "linux")]
fn parent_shell() -> Option<PathBuf> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..64 {
        if pid <= 1 {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv0 = cmdline.split(|&b| b == 0).next()?;
        if let Some(name) = shell_name(argv0) {
            return std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .filter(|p| shell_name(p.as_os_str().as_encoded_bytes()).is_some())
                .or_else(|| which(name.as_bytes()));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The parent pid is the second field after the command name in parentheses.
        pid = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn parent_shell() -> Option<PathBuf> {
    None
}

/// The program `name` on PATH, as the shell would find it.
pub fn which(name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    if name.contains('/') {
        return is_executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

impl Shell {
    /// The shell GNU parallel would use.
    pub fn detect() -> Shell {
        if cfg!(windows) {
            return Shell {
                path: PathBuf::from("cmd"),
                dialect: Dialect::Cmd,
                bash: false,
            };
        }
        let chosen = std::env::var_os("PARALLEL_SHELL")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(parent_shell)
            .or_else(|| {
                std::env::var_os("SHELL")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        Shell::of(chosen)
    }

    pub fn of(path: PathBuf) -> Shell {
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dialect = match base.as_str() {
            "csh" | "tcsh" | "bsd-csh" => Dialect::Csh,
            "fish" => Dialect::Fish,
            _ => Dialect::Posix,
        };
        Shell {
            bash: base == "bash",
            path,
            dialect,
        }
    }

    /// Quotes `v` so this shell reads it back as exactly `v`.
    pub fn quote(&self, v: &[u8]) -> Vec<u8> {
        match self.dialect {
            Dialect::Posix => posix_quote(v),
            Dialect::Csh => csh_quote(v),
            Dialect::Fish => fish_quote(v),
            Dialect::Cmd => cmd_quote(v),
        }
    }

    /// The composed line as this shell reads it.
    pub fn line(&self, segs: &[Seg]) -> Vec<u8> {
        let mut out = Vec::new();
        for seg in segs {
            match seg {
                Seg::Code(c) => out.extend_from_slice(c),
                Seg::Value(v) => out.extend(self.quote(v)),
            }
        }
        out
    }
}

fn plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.+/".contains(&b)
}

/// GNU parallel's quoting for Bourne shells: plain text as it is, else `'…'` with each `'`
/// written as `'"'"'`, and `''` for nothing.
pub fn posix_quote(v: &[u8]) -> Vec<u8> {
    if v.is_empty() {
        return b"''".to_vec();
    }
    if v.iter().all(|&b| plain_byte(b)) {
        return v.to_vec();
    }
    let mut out = vec![b'\''];
    for &b in v {
        if b == b'\'' {
            out.extend_from_slice(b"'\"'\"'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    // `'it'"'"'s'` stays; `''"'"'a'` loses its empty start, as GNU parallel writes it.
    if out.starts_with(b"''") && out.len() > 2 {
        out.drain(..2);
    }
    if out.ends_with(b"''") && out.len() > 2 {
        out.truncate(out.len() - 2);
    }
    out
}

/// csh: a backslash before every special character; a newline as backslash-newline.
fn csh_quote(v: &[u8]) -> Vec<u8> {
    if v.is_empty() {
        return b"''".to_vec();
    }
    let mut out = Vec::new();
    for &b in v {
        if !plain_byte(b) && b < 0x80 {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// fish: inside `'…'` only `\` and `'` are special.
fn fish_quote(v: &[u8]) -> Vec<u8> {
    if !v.is_empty() && v.iter().all(|&b| plain_byte(b)) {
        return v.to_vec();
    }
    let mut out = vec![b'\''];
    for &b in v {
        if b == b'\\' || b == b'\'' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'\'');
    out
}

/// Quotes `v` for `cmd`: `"…"`, with each `"` doubled, which both `cmd` and the MSVC argument
/// parser read back as one `"`. (`cmd` still expands `%VAR%` inside quotes; nothing escapes that.)
pub fn cmd_quote(v: &[u8]) -> Vec<u8> {
    let safe = !v.is_empty()
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./\\=:,+@".contains(b));
    if safe {
        return v.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in v {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// Bytes of shell code that mean the same to every shell: nothing expands, nothing is special.
fn code_is_plain(c: &[u8]) -> bool {
    c.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-_./,+@%:= \t".contains(&b) || b >= 0x80)
}

/// Shell builtins and keywords: a first word among them needs the shell, even if a program of
/// that name exists (`cd`, `exit`, `export`, `time`, …).
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "]]",
    "{",
    "}",
    "!",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "setenv",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// The segments as plain text, values as they are (unquoted): for `--tagstring` and `-q`.
pub fn text(segs: &[Seg]) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in segs {
        match seg {
            Seg::Code(c) | Seg::Value(c) => out.extend_from_slice(c),
        }
    }
    out
}

/// Decides, per job, whether a line can skip the shell; remembers PATH look-ups.
pub struct Composer {
    pub shell: Shell,
    found: HashMap<Vec<u8>, bool>,
    /// Never run directly (`HERD_ALWAYS_SHELL`, for testing that both ways agree).
    always_shell: bool,
}

impl Composer {
    pub fn new(shell: Shell) -> Composer {
        Composer {
            shell,
            found: HashMap::new(),
            always_shell: std::env::var_os("HERD_ALWAYS_SHELL").is_some(),
        }
    }

    /// The words the shell would split `segs` into, when that needs no shell at all.
    fn plain_words(segs: &[Seg]) -> Option<Vec<Vec<u8>>> {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut current: Option<Vec<u8>> = None;
        for seg in segs {
            match seg {
                Seg::Value(v) => current.get_or_insert_with(Vec::new).extend_from_slice(v),
                Seg::Code(c) => {
                    if !code_is_plain(c) {
                        return None;
                    }
                    for &b in c {
                        if b == b' ' || b == b'\t' {
                            words.extend(current.take());
                        } else {
                            current.get_or_insert_with(Vec::new).push(b);
                        }
                    }
                }
            }
        }
        words.extend(current);
        Some(words)
    }

    /// The argument vector to run `segs` directly with (the program as the user named it:
    /// herd's engine finds it on PATH as the shell would), when the shell would only split
    /// words and find a program; `None` when the line needs the shell.
    pub fn direct_argv(&mut self, segs: &[Seg]) -> Option<Vec<Vec<u8>>> {
        if self.always_shell || self.shell.dialect == Dialect::Cmd {
            return None;
        }
        let words = Self::plain_words(segs)?;
        self.direct_program(&words).then_some(words)
    }

    /// The program to execute for `words`, if the shell would run a program found on PATH
    /// with no difference in meaning.
    fn direct_program(&mut self, words: &[Vec<u8>]) -> bool {
        let Some(first) = words.first() else {
            return false;
        };
        // An assignment (`A=1 cmd`) or a word with a special meaning in some shell.
        if first.is_empty() || first.contains(&b'=') || first.contains(&b'%') {
            return false;
        }
        let Ok(name) = std::str::from_utf8(first) else {
            return false;
        };
        if BUILTINS.contains(&name) {
            // bash's echo prints its arguments as /bin/echo does, except for --help/--version.
            let echo_ok = name == "echo"
                && self.shell.bash
                && !words[1..]
                    .iter()
                    .any(|w| w == b"--help" || w == b"--version");
            if !echo_ok {
                return false;
            }
        }
        // Looked up once per program: a function exported by bash shadows it; a program not
        // found is left to the shell, which says so in its own words, as GNU parallel's users
        // know them.
        let bash = self.shell.bash;
        *self.found.entry(first.clone()).or_insert_with(|| {
            let exported = bash && std::env::var_os(format!("BASH_FUNC_{name}%%")).is_some();
            !exported && which(first).is_some()
        })
    }
}

/// The first replacement string that the command puts in quotes of its own (`'{}'`, `"{.}"`),
/// when the command runs through a shell. herd quotes every value itself, so such quotes end
/// where the value's quoting begins: a value with a space is split, and one with a quote
/// character can run part of itself as code. GNU parallel says nothing; herd warns.
pub fn self_quoted(words: &[Vec<u8>], names: &crate::template::Names) -> Option<String> {
    let alternatives: Vec<String> = [
        &names.whole,
        &names.no_extension,
        &names.basename,
        &names.dirname,
        &names.basename_no_extension,
    ]
    .iter()
    .map(|n| regex::escape(&String::from_utf8_lossy(n)))
    .chain([r"\{\d+(?:\.|/|//|/\.)?\}".to_string()])
    .collect();
    let pattern = format!(r#"(['"])({})(['"])"#, alternatives.join("|"));
    let re = regex::bytes::Regex::new(&pattern).ok()?;
    let line = words.join(&b' ');
    let found = re
        .captures_iter(&line)
        .find(|c| c[1] == c[3])
        .map(|c| String::from_utf8_lossy(&c[0]).into_owned());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Seg {
        Seg::Code(s.as_bytes().to_vec())
    }
    fn val(s: &str) -> Seg {
        Seg::Value(s.as_bytes().to_vec())
    }

    #[test]
    fn quoting_as_gnu_parallel_writes_it() {
        let q = |s: &str| String::from_utf8(posix_quote(s.as_bytes())).unwrap();
        assert_eq!(q("plain-1.txt"), "plain-1.txt");
        assert_eq!(q(""), "''");
        assert_eq!(q("a b"), "'a b'");
        assert_eq!(q("it's"), "'it'\"'\"'s'");
        assert_eq!(q("'a"), "\"'\"'a'");
        assert_eq!(q("a'"), "'a'\"'\"");
        assert_eq!(q("$HOME"), "'$HOME'");
        assert_eq!(cmd_quote(b"two words"), br#""two words""#);
        assert_eq!(cmd_quote(br#"say "hi""#), br#""say ""hi""""#);
    }

    #[test]
    fn plain_lines_split_as_the_shell_splits_them() {
        let w = |segs: &[Seg]| Composer::plain_words(segs);
        assert_eq!(
            w(&[code("echo  a"), val("x y"), code(" "), val("")]),
            Some(vec![b"echo".to_vec(), b"ax y".to_vec(), b"".to_vec()])
        );
        assert_eq!(w(&[code("echo "), val("a"), code(" | wc")]), None);
        assert_eq!(w(&[code("echo $HOME")]), None);
        assert_eq!(w(&[code("ls *")]), None);
        assert_eq!(w(&[code("echo ~")]), None);
    }

    #[cfg(unix)]
    #[test]
    fn builtins_assignments_and_missing_programs_go_to_the_shell() {
        let mut c = Composer::new(Shell::of(PathBuf::from("/bin/bash")));
        c.always_shell = false;
        let direct = |c: &mut Composer, s: &str| c.direct_argv(&[code(s)]).is_some();
        assert!(direct(&mut c, "ls -l"));
        assert!(direct(&mut c, "echo hi"));
        assert!(!direct(&mut c, "echo --help"));
        assert!(!direct(&mut c, "cd /"));
        assert!(!direct(&mut c, "A=1 ls"));
        assert!(!direct(&mut c, "no-such-program-herd x"));
        let mut dash = Composer::new(Shell::of(PathBuf::from("/bin/sh")));
        dash.always_shell = false;
        // dash's echo reads backslashes: only the shell itself prints what it prints.
        assert!(!direct(&mut dash, "echo hi"));
    }
}
