//! What runs on the remote host: a small POSIX `sh` script around the job's command line,
//! and the one word that carries it through the remote login shell.
//!
//! The script starts the command in a session (process group) of its own and watches the
//! ssh channel's stdin, which herd holds open for the job's life
//! ([`herd_engine::Stdin::HeldOpen`]).
//! When herd cancels the job (timeout, `--halt now`, Ctrl-C) or dies, the stdin reaches end
//! of file and the script kills the whole group, SIGTERM then SIGKILL. GNU parallel polls
//! `getppid()` instead, which never changes over a control master: there the remote job
//! outlives its timeout (measured; ../shared/design/distributed.md §1.5, §4.5).
//!
//! sshd runs the command with the user's login shell, which may be sh, bash, zsh, csh or
//! fish, each quoting differently. So the script travels as octal escapes for `printf` in a
//! single-quoted word holding no character any of these shells treats specially there:
//! no `'`, `!` (csh's history), `\\` (fish), newline (csh) or `%` (printf).

use std::time::Duration;

/// A job's command, ready to run on any host.
#[derive(Debug, Clone)]
pub struct RemoteCommand {
    /// The command line, for the shell named by `shell`.
    pub line: Vec<u8>,
    /// The shell that runs it there (herd's own, by name, when the host has it; else `sh`).
    pub shell: String,
    /// Variables exported to the command (`PARALLEL_SEQ`, `--env`).
    pub env: Vec<(String, Vec<u8>)>,
    /// How long SIGTERM has before SIGKILL when the job is cancelled.
    pub kill_grace: Duration,
    /// `--workdir`: where it runs (relative to the login directory unless absolute), created
    /// if missing; `None`: the login directory.
    pub workdir: Option<Vec<u8>>,
    /// `--workdir ...`: the directory is the job's own, removed by `--cleanup`.
    pub own_workdir: bool,
    /// `--transferfile`: files sent before it runs (as named here).
    pub transfer: Vec<Vec<u8>>,
    /// `--return`: files fetched after it ran.
    pub returns: Vec<Vec<u8>>,
    /// `--cleanup`: remove the sent and fetched files on the host afterwards.
    pub cleanup: bool,
}

/// `'…'` for POSIX sh: every byte literal.
pub(super) fn sh_quote(v: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in v {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

impl RemoteCommand {
    /// The POSIX sh script the remote `/bin/sh` runs.
    pub fn script(&self) -> Vec<u8> {
        let mut s = Vec::new();
        for (name, value) in &self.env {
            s.extend_from_slice(name.as_bytes());
            s.push(b'=');
            s.extend(sh_quote(value));
            s.extend_from_slice(b"; export ");
            s.extend_from_slice(name.as_bytes());
            s.push(b'\n');
        }
        if let Some(w) = self.workdir.as_deref().filter(|w| !w.is_empty()) {
            let w = sh_quote(w);
            s.extend_from_slice(b"mkdir -p ");
            s.extend_from_slice(&w);
            s.extend_from_slice(b" 2>/dev/null; cd ");
            s.extend_from_slice(&w);
            s.extend_from_slice(b" || exit 255\n");
        }
        let grace = format!("{:.3}", self.kill_grace.as_secs_f64());
        let line = sh_quote(&self.line);
        // Lines of the script, with the command line spliced in as bytes.
        let mut put = |parts: &[&[u8]]| {
            for p in parts {
                s.extend_from_slice(p);
            }
            s.push(b'\n');
        };
        put(&[
            b"herd_sh=",
            &sh_quote(self.shell.as_bytes()),
            b"; command -v \"$herd_sh\" >/dev/null 2>&1 || herd_sh=/bin/sh",
        ]);
        // Async lists get /dev/null as stdin: keep the channel's stdin on fd 3.
        put(&[b"exec 3<&0"]);
        put(&[b"if command -v setsid >/dev/null 2>&1; then"]);
        put(&[b"setsid \"$herd_sh\" -c ", &line, b" </dev/null 3<&- &"]);
        put(&[b"else"]);
        // No setsid (macOS, the BSDs): the command shares the script's group.
        put(&[b"\"$herd_sh\" -c ", &line, b" </dev/null 3<&- &"]);
        put(&[b"fi"]);
        put(&[b"herd_job=$!"]);
        put(&[b"("]);
        put(&[b"trap 'kill $herd_cat 2>/dev/null; exit 0' TERM"]);
        put(&[b"cat <&3 >/dev/null & herd_cat=$!"]);
        put(&[b"wait $herd_cat"]);
        put(&[b"kill -TERM -$herd_job || kill -TERM $herd_job"]);
        put(&[b"sleep ", grace.as_bytes()]);
        put(&[b"kill -KILL -$herd_job || kill -KILL $herd_job"]);
        put(&[b") >/dev/null 2>&1 &"]);
        put(&[b"herd_watch=$!"]);
        put(&[b"exec 3<&-"]);
        // dash reports a job killed by a signal on stderr ("Terminated"): not the job's output.
        put(&[b"wait $herd_job 2>/dev/null; herd_rc=$?"]);
        put(&[b"kill $herd_watch 2>/dev/null"]);
        put(&[b"exit $herd_rc"]);
        s
    }

    /// The remote command as one word for ssh: every login shell passes the script intact
    /// to `/bin/sh`.
    pub fn word(&self) -> String {
        carry(&self.script())
    }

    /// Whether files travel with it (then it runs as a local script, [`super::files`]).
    pub fn has_files(&self) -> bool {
        !self.transfer.is_empty() || !self.returns.is_empty() || (self.cleanup && self.own_workdir)
    }
}

/// `exec /bin/sh -c 'eval "$(printf "$1")"' herd '<script, escaped>'`.
pub fn carry(script: &[u8]) -> String {
    let mut escaped = String::with_capacity(script.len() + script.len() / 8);
    for &b in script {
        if (b' '..=b'~').contains(&b) && !b"'!\\%".contains(&b) {
            escaped.push(b as char);
        } else {
            // Always three digits: a digit that follows is not taken into the escape.
            escaped.push_str(&format!("\\{b:03o}"));
        }
    }
    format!("exec /bin/sh -c 'eval \"$(printf \"$1\")\"' herd '{escaped}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_holds_nothing_a_login_shell_would_touch() {
        let script: Vec<u8> = (1..=255u8).collect();
        let word = carry(&script);
        let body = word
            .rsplit_once(" herd '")
            .unwrap()
            .1
            .strip_suffix('\'')
            .unwrap();
        assert!(!body.contains(['\'', '!', '%', '\n']), "{body}");
        // `\` appears only as the start of an octal escape.
        for (i, _) in body.match_indices('\\') {
            let digits = &body[i + 1..i + 4];
            assert!(
                digits.bytes().all(|b| (b'0'..=b'7').contains(&b)),
                "{digits}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn printf_gives_back_the_script() {
        // The remote decoding, run here by the local sh.
        let script: Vec<u8> = b"echo 'a b' \"$HOME\" 100% \\n !x\n\ttab \xff\xfe end".to_vec();
        let word = carry(&script);
        let body = word
            .rsplit_once(" herd '")
            .unwrap()
            .1
            .strip_suffix('\'')
            .unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", "printf \"$1\"", "sh", body])
            .output()
            .unwrap();
        assert_eq!(out.stdout, script);
    }
}
