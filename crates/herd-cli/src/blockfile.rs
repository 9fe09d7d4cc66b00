//! `--cat` and `--fifo`: a job's block as a file its command names with `{}`, for programs
//! that read files rather than stdin (or must seek, or read twice).
//!
//! `--cat`: herd writes the block into a file before the job starts (GNU parallel starts a
//! `cat > file` in front of every job for that; herd needs no process), gives the job an
//! empty stdin, and removes the file once the job has run for the last time (`--retries`
//! runs it again on the same file).
//!
//! `--fifo`: a named pipe. The job's stdin still carries the block, and a `cat` started
//! beside the command copies it into the pipe as the command reads (GNU parallel's way: the
//! block travels through herd's event loop like any other stdin). Unlike GNU parallel's, the
//! command's own stdin is empty, so it cannot take the block from the `cat`, and the `cat`
//! is killed when the command exits: a command that never opens the pipe does not hang.
//!
//! The files live in a directory of the run's own in `--tmpdir` (else `$TMPDIR`), removed
//! when the run ends; each job's `$PARALLEL_TMP` names its file, as in GNU parallel.

use herd_engine::Stdin;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a block reaches its job when not on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsFile {
    /// `--cat`: a regular file.
    Cat,
    /// `--fifo`: a named pipe.
    Fifo,
}

/// Makes each job's block file.
pub struct BlockFiles {
    how: AsFile,
    dir: Arc<tempfile::TempDir>,
    made: u64,
}

/// One job's block file, removed when the job is done with it (when this is dropped).
pub struct BlockFile {
    path: PathBuf,
    /// The run's directory lives as long as the last job's file.
    _dir: Arc<tempfile::TempDir>,
}

impl BlockFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BlockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl BlockFiles {
    /// The run's directory for block files, in `tmpdir` (else the system's).
    pub fn new(how: AsFile, tmpdir: Option<&Path>) -> Result<BlockFiles, String> {
        let parent = tmpdir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("herd-blocks-")
            .tempdir_in(&parent)
            .map_err(|e| {
                format!(
                    "cannot make a directory for --{} files in {}: {e}",
                    how.name(),
                    parent.display()
                )
            })?;
        Ok(BlockFiles {
            how,
            dir: Arc::new(dir),
            made: 0,
        })
    }

    /// The next job's file for `block`, and what the job's stdin becomes: nothing for
    /// `--cat` (the block is in the file), the block itself for `--fifo` (its `cat` reads it).
    pub fn make(&mut self, block: Stdin) -> Result<(BlockFile, Stdin), String> {
        self.made += 1;
        let file = BlockFile {
            path: self.dir.path().join(self.made.to_string()),
            _dir: self.dir.clone(),
        };
        let failed = |e: io::Error| format!("cannot write {}: {e}", file.path.display());
        match self.how {
            AsFile::Cat => {
                let mut out = File::create_new(&file.path).map_err(failed)?;
                write_stdin(&block, &mut out).map_err(failed)?;
                Ok((file, Stdin::Null))
            }
            AsFile::Fifo => {
                make_fifo(&file.path).map_err(failed)?;
                Ok((file, block))
            }
        }
    }
}

impl AsFile {
    pub fn name(self) -> &'static str {
        match self {
            AsFile::Cat => "cat",
            AsFile::Fifo => "fifo",
        }
    }
}

/// Writes what `stdin` would feed a job into `out`.
fn write_stdin(stdin: &Stdin, out: &mut File) -> io::Result<()> {
    match stdin {
        Stdin::Null => Ok(()),
        Stdin::Bytes(bytes) => out.write_all(bytes),
        Stdin::File(path) => io::copy(&mut File::open(path)?, out).map(drop),
        Stdin::FileRange { path, offset, len } => {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(*offset))?;
            // File to file: the kernel copies (copy_file_range), nothing passes through herd.
            io::copy(&mut io::Read::take(file, *len), out).map(drop)
        }
        Stdin::Concat(parts) => parts.iter().try_for_each(|part| write_stdin(part, out)),
        _ => Err(io::Error::other(
            "a streamed input cannot be kept in a file",
        )),
    }
}

#[cfg(unix)]
fn make_fifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(
        path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .map_err(io::Error::from)
}

#[cfg(not(unix))]
fn make_fifo(_path: &Path) -> io::Result<()> {
    // Refused with the options (see options.rs): Windows has no named pipes in the file system.
    Err(io::Error::other("--fifo is not available on Windows"))
}

/// `--dry-run`: the file a job's line names, as GNU parallel shows it.
pub const SHOWN: &[u8] = b"$PARALLEL_TMP";

/// `--dry-run`: `line` with [`SHOWN`] as it is, not quoted as a value (GNU parallel's look).
pub fn as_shown(line: Vec<u8>, shell: &crate::compose::Shell) -> Vec<u8> {
    let quoted = shell.quote(SHOWN);
    match memchr::memmem::find(&line, &quoted) {
        Some(i) => [&line[..i], SHOWN, &line[i + quoted.len()..]].concat(),
        None => line,
    }
}

/// `--fifo`: the job's program and arguments `argv`, run with a `cat` that copies the job's
/// stdin into the named pipe `fifo`; the command's own stdin is empty, the `cat` is killed
/// when the command ends, and the command's exit status is the job's.
pub fn fifo_wrapped(fifo: &[u8], argv: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    // The `cat` takes stdin through fd 3: an asynchronous command's stdin is /dev/null
    // unless redirected explicitly.
    const SCRIPT: &str = "f=$1; shift; exec 3<&0; cat <&3 3<&- > \"$f\" 2>/dev/null & c=$!; \
                          exec 3<&- 0</dev/null; \"$@\"; s=$?; kill $c 2>/dev/null; exit $s";
    let mut wrapped = vec![
        b"/bin/sh".to_vec(),
        b"-c".to_vec(),
        SCRIPT.as_bytes().to_vec(),
        b"herd-fifo".to_vec(),
        fifo.to_vec(),
    ];
    wrapped.extend(argv);
    wrapped
}
