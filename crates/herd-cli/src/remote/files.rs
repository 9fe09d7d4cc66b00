//! Files that travel with a remote job (`--transferfile`, `--return`, `--cleanup`,
//! `--basefile`), over the host's master like the job itself.
//!
//! A job with files runs locally as a small `sh` script: send the files, run the job's session,
//! fetch the results, remove what was sent or fetched, and exit with the job's status. rsync
//! carries the files when both ends have it (GNU parallel's choice: permissions and times
//! kept); otherwise one `cat` per file through a session. A file that cannot be sent fails
//! the job with status 255 and a line saying which (GNU parallel goes on and runs the job
//! without it); one that cannot be fetched back does the same.
//!
//! Paths follow GNU parallel (rsync's `-R`): a relative path lands relative to the remote
//! working directory, an absolute one at the same place, and in a path with `/./` what
//! follows `/./` lands relative to the working directory.

use super::wrapper::{carry, sh_quote, RemoteCommand};

/// What one host needs to run a session: the ssh command with the options that put it
/// over the master, and the destination.
pub struct Session<'a> {
    pub ssh: &'a [String],
    pub destination: &'a str,
    /// Whether both ends have rsync.
    pub rsync: bool,
}

/// Where a file named `path` on this machine lives on the host: relative to the working
/// directory, or absolute.
pub fn remote_path(path: &[u8]) -> Vec<u8> {
    if let Some(i) = find(path, b"/./") {
        return path[i + 3..].to_vec();
    }
    path.strip_prefix(b"./").unwrap_or(path).to_vec()
}

/// The path on this machine, with GNU's `/./` marker taken out.
pub fn local_path(path: &[u8]) -> Vec<u8> {
    match find(path, b"/./") {
        Some(i) => [&path[..i + 1], &path[i + 3..]].concat(),
        None => path.to_vec(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `dir/path`, or `path` when it is absolute or there is no directory.
fn under(workdir: Option<&[u8]>, path: &[u8]) -> Vec<u8> {
    match workdir {
        Some(w) if !path.starts_with(b"/") && !w.is_empty() => {
            let mut p = w.to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(path);
            p
        }
        _ => path.to_vec(),
    }
}

impl Session<'_> {
    /// The local command that runs `script` (POSIX sh) on the host, quoted for sh.
    pub fn remote(&self, script: &[u8]) -> Vec<u8> {
        let mut line = Vec::new();
        for w in self.ssh {
            line.extend(sh_quote(w.as_bytes()));
            line.push(b' ');
        }
        line.extend(sh_quote(self.destination.as_bytes()));
        line.extend_from_slice(b" -- ");
        line.extend(sh_quote(carry(script).as_bytes()));
        line
    }

    /// rsync's `-e`: the ssh command, each word quoted for rsync's own splitting.
    fn rsync_shell(&self) -> Vec<u8> {
        let words: Vec<Vec<u8>> = self.ssh.iter().map(|w| sh_quote(w.as_bytes())).collect();
        words.join(&b' ')
    }

    /// Local commands that send `files` to the host, each ending in `|| fail`.
    pub fn send(&self, workdir: Option<&[u8]>, files: &[Vec<u8>], what: &str) -> Vec<u8> {
        let mut s = Vec::new();
        if let Some(w) = workdir.filter(|w| !w.is_empty()) {
            let mut mk = b"mkdir -p ".to_vec();
            mk.extend(sh_quote(w));
            s.extend(self.remote(&mk));
            s.extend(fail_line(&format!(
                "{what}: cannot create the working directory"
            )));
        }
        for file in files {
            let shown = String::from_utf8_lossy(file).into_owned();
            let remote = under(workdir, &remote_path(file));
            if self.rsync {
                // -R keeps the path (after /./) under the destination; -s keeps the remote
                // shell out of the names.
                let dest_dir: &[u8] = if remote.starts_with(b"/") && find(file, b"/./").is_none() {
                    b"/"
                } else {
                    workdir.unwrap_or_default()
                };
                let mut dest = format!("{}:", self.destination).into_bytes();
                dest.extend_from_slice(dest_dir);
                s.extend_from_slice(b"rsync -rlDzRsq -e ");
                s.extend(sh_quote(&self.rsync_shell()));
                s.extend_from_slice(b" -- ");
                s.extend(sh_quote(file));
                s.push(b' ');
                s.extend(sh_quote(&dest));
            } else {
                let mut script = b"mkdir -p \"$(dirname ".to_vec();
                script.extend(sh_quote(&remote));
                script.extend_from_slice(b")\" && cat > ");
                script.extend(sh_quote(&remote));
                s.extend(self.remote(&script));
                s.extend_from_slice(b" < ");
                s.extend(sh_quote(&local_path(file)));
            }
            s.extend(fail_line(&format!("{what}: cannot send {shown}")));
        }
        s
    }

    /// Local commands that fetch `files` back from the host into the same paths here.
    pub fn fetch(&self, workdir: Option<&[u8]>, files: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Vec::new();
        for file in files {
            let shown = String::from_utf8_lossy(file).into_owned();
            let remote = under(workdir, &remote_path(file));
            let local = local_path(file);
            s.extend_from_slice(b"mkdir -p \"$(dirname ");
            s.extend(sh_quote(&local));
            s.extend_from_slice(b")\" && ");
            if self.rsync {
                let mut src = format!("{}:", self.destination).into_bytes();
                src.extend_from_slice(&remote);
                s.extend_from_slice(b"rsync -lDzsq -e ");
                s.extend(sh_quote(&self.rsync_shell()));
                s.extend_from_slice(b" -- ");
                s.extend(sh_quote(&src));
                s.push(b' ');
                s.extend(sh_quote(&local));
            } else {
                // Into a temporary name first: a failed fetch leaves no half file.
                let mut script = b"cat ".to_vec();
                script.extend(sh_quote(&remote));
                let mut part = local.clone();
                part.extend_from_slice(b".herd-part");
                s.extend(self.remote(&script));
                s.extend_from_slice(b" > ");
                s.extend(sh_quote(&part));
                s.extend_from_slice(b" && mv -f ");
                s.extend(sh_quote(&part));
                s.push(b' ');
                s.extend(sh_quote(&local));
            }
            s.extend_from_slice(b" || { printf '%s\\n' ");
            s.extend(sh_quote(
                format!(
                    "herd: --return: cannot fetch {shown} from {}",
                    self.destination
                )
                .as_bytes(),
            ));
            s.extend_from_slice(b" >&2; herd_rc=255; }\n");
        }
        s
    }

    /// The local script of a job with files: send, run (the session reads the stdin herd
    /// holds open, so a cancelled job still ends on the host), fetch, clean up, and exit with
    /// the job's status.
    pub fn job_script(&self, command: &RemoteCommand) -> Vec<u8> {
        let workdir = command.workdir.as_deref();
        // The job's session alone gets herd's held-open stdin (as fd 3 until then).
        let mut s = b"exec 3<&0 0</dev/null\n".to_vec();
        s.extend(self.send(workdir, &command.transfer, "--transferfile"));
        s.extend(self.remote(&command.script()));
        s.extend_from_slice(b" 0<&3 3<&-\nherd_rc=$?\nexec 3<&-\n");
        s.extend(self.fetch(workdir, &command.returns));
        if command.cleanup {
            let sent: Vec<Vec<u8>> = command
                .transfer
                .iter()
                .chain(&command.returns)
                .cloned()
                .collect();
            s.extend(self.remove(workdir, &sent, command.own_workdir));
        }
        s.extend_from_slice(b"exit $herd_rc\n");
        s
    }

    /// A local command that removes `files` on the host (and the working directory, when it
    /// is one of herd's own), whatever happened.
    pub fn remove(&self, workdir: Option<&[u8]>, files: &[Vec<u8>], own_dir: bool) -> Vec<u8> {
        let mut script = Vec::new();
        for file in files {
            let remote = remote_path(file);
            script.extend_from_slice(b"rm -f ");
            script.extend(sh_quote(&under(workdir, &remote)));
            script.push(b'\n');
            // The directories the copy created, when empty (relative ones only: from the
            // working directory down).
            if let (false, Some(slash)) = (
                remote.starts_with(b"/"),
                remote.iter().rposition(|&b| b == b'/'),
            ) {
                script.extend_from_slice(b"(");
                if let Some(w) = workdir.filter(|w| !w.is_empty()) {
                    script.extend_from_slice(b"cd ");
                    script.extend(sh_quote(w));
                    script.extend_from_slice(b" && ");
                }
                script.extend_from_slice(b"rmdir -p ");
                script.extend(sh_quote(&remote[..slash]));
                script.extend_from_slice(b") 2>/dev/null\n");
            }
        }
        if let (true, Some(w)) = (own_dir, workdir) {
            script.extend_from_slice(b"rm -rf ");
            script.extend(sh_quote(w));
            script.push(b'\n');
        }
        if script.is_empty() {
            return Vec::new();
        }
        let mut s = self.remote(&script);
        s.extend_from_slice(b" >/dev/null 2>&1\n");
        s
    }
}

/// `|| { message; exit 255; }` and a newline.
fn fail_line(message: &str) -> Vec<u8> {
    let mut s = b" || { printf '%s\\n' ".to_vec();
    s.extend(sh_quote(format!("herd: {message}").as_bytes()));
    s.extend_from_slice(b" >&2; exit 255; }\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_gnu_parallel_places_them() {
        // The table of GNU parallel's --transferfile, work dir /home/user.
        for (given, remote, local) in [
            (
                &b"/tmp/foo/bar"[..],
                &b"/tmp/foo/bar"[..],
                &b"/tmp/foo/bar"[..],
            ),
            (b"tmp/foo/bar", b"/home/user/tmp/foo/bar", b"tmp/foo/bar"),
            (b"/tmp/./foo/bar", b"/home/user/foo/bar", b"/tmp/foo/bar"),
            (b"tmp/./foo/bar", b"/home/user/foo/bar", b"tmp/foo/bar"),
        ] {
            assert_eq!(
                under(Some(b"/home/user"), &remote_path(given)),
                remote,
                "{}",
                String::from_utf8_lossy(given)
            );
            assert_eq!(local_path(given), local);
        }
    }
}
