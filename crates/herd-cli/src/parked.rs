//! `-k`: finished jobs waiting for their turn, kept as the bytes they will print.
//!
//! Behind one slow job, a `-k` run may finish a hundred thousand others before it can print
//! any. Keeping each one's result (its command, values, job, output handles) cost 1.4 KB a
//! job and, for output that had spilled, a descriptor each. A parked job is only what it
//! will print, rendered now: small output in memory (up to [`IN_MEMORY`] for all parked jobs
//! together), anything else appended to one unnamed backlog file in the temporary directory
//! (spilled output gets there with the kernel's copy). A parked job then costs its bytes and
//! a few words, and no descriptor.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Rendered bytes of parked jobs kept in memory, in all; beyond it they go to the backlog.
const IN_MEMORY: usize = 16 << 20;

/// What one stream of a parked job prints.
pub enum Piece {
    Nothing,
    Bytes(Box<[u8]>),
    /// `len` bytes at `offset` in the backlog file.
    Backlog {
        offset: u64,
        len: u64,
    },
}

/// A parked job: what it prints on stdout, then on stderr.
pub struct Parked {
    pub out: Piece,
    pub err: Piece,
}

/// Where parked jobs' bytes are kept.
pub struct Backlog {
    dir: Option<PathBuf>,
    file: Option<File>,
    in_memory: usize,
}

impl Backlog {
    /// `dir`: where the backlog file goes (`--tmpdir`, else the system's).
    pub fn new(dir: Option<PathBuf>) -> Backlog {
        Backlog {
            dir,
            file: None,
            in_memory: 0,
        }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let file = match &self.dir {
                Some(d) => tempfile::tempfile_in(d)?,
                None => tempfile::tempfile()?,
            };
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("made above");
        file.seek(SeekFrom::End(0))?;
        Ok(file)
    }

    /// Parks what `render` writes: into memory when `large` is false and there is room,
    /// else into the backlog file (`render` then writes to the file itself, so that a spill
    /// file's bytes are copied by the kernel).
    pub fn park(
        &mut self,
        large: bool,
        render: impl FnOnce(&mut dyn WriteTo) -> io::Result<()>,
    ) -> io::Result<Piece> {
        if !large {
            let mut bytes = Vec::new();
            render(&mut bytes)?;
            if bytes.is_empty() {
                return Ok(Piece::Nothing);
            }
            if self.in_memory + bytes.len() <= IN_MEMORY {
                self.in_memory += bytes.len();
                return Ok(Piece::Bytes(bytes.into_boxed_slice()));
            }
            let file = self.file()?;
            let offset = file.stream_position()?;
            file.write_all(&bytes)?;
            return Ok(Piece::Backlog {
                offset,
                len: bytes.len() as u64,
            });
        }
        let file = self.file()?;
        let offset = file.stream_position()?;
        render(file)?;
        let len = file.stream_position()? - offset;
        Ok(match len {
            0 => Piece::Nothing,
            _ => Piece::Backlog { offset, len },
        })
    }

    /// Gives up a piece that will not be printed (its job is kept another way).
    pub fn forget(&mut self, piece: Piece) {
        if let Piece::Bytes(bytes) = piece {
            self.in_memory -= bytes.len();
        }
    }

    /// Writes a parked piece to `to` (from the backlog by the kernel's copy where it can).
    pub fn print<W: Write>(&mut self, piece: Piece, to: &mut W) -> io::Result<()> {
        match piece {
            Piece::Nothing => Ok(()),
            Piece::Bytes(bytes) => {
                self.in_memory -= bytes.len();
                to.write_all(&bytes)
            }
            Piece::Backlog { offset, len } => {
                let file = self.file.as_mut().expect("a backlog piece has its file");
                file.seek(SeekFrom::Start(offset))?;
                let copied = io::copy(&mut Read::by_ref(file).take(len), to)?;
                if copied < len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the -k backlog file ended early",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Something a job's output can be rendered into: memory, or the backlog file (kept apart so
/// that a spilled output reaches a `File` as one, for the kernel's copy).
pub trait WriteTo: Write {
    /// Copies a job's captured output here.
    fn output(&mut self, output: &herd_engine::Captured) -> io::Result<()>;
}

impl<W: Write> WriteTo for W {
    fn output(&mut self, output: &herd_engine::Captured) -> io::Result<()> {
        // Monomorphic here: a spill file copied into a `File` (or a `BufWriter` of one) goes
        // through the kernel.
        output.write_to(self).map(drop)
    }
}
