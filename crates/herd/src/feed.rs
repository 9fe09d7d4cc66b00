//! What herd writes into a job's stdin pipe, a piece at a time as the pipe drains.
//!
//! The platform pollers own the pipe and the writes; a [`Feed`] says what comes next. Bytes
//! held in memory are written straight from the caller's buffer. A byte range of a file is
//! never read whole: Linux moves it from the page cache into the pipe with `splice` (no copy
//! through herd), and a system that cannot splice reads it one [`PIECE`] at a time, so a job
//! fed a gigabyte costs herd one piece of memory.

use crate::sys;
use std::fs::File;
use std::io;
use std::sync::Arc;

/// How much of a file range is read into memory at a time where it cannot be spliced.
pub(crate) const PIECE: usize = 256 * 1024;

pub(crate) enum Feed {
    /// [`Stdin::Bytes`](crate::Stdin::Bytes): `at` bytes of `data` are written.
    Bytes { data: Arc<[u8]>, at: usize },
    /// [`Stdin::FileRange`](crate::Stdin::FileRange): `file`'s bytes from `at` to `end` are
    /// still to go; `piece` holds what was read from it and not yet written (from `piece_at`).
    Range {
        file: File,
        at: u64,
        end: u64,
        piece: Vec<u8>,
        piece_at: usize,
    },
}

impl Feed {
    pub(crate) fn bytes(data: Arc<[u8]>) -> Feed {
        Feed::Bytes { data, at: 0 }
    }

    pub(crate) fn range(file: File, offset: u64, len: u64) -> Feed {
        Feed::Range {
            file,
            at: offset,
            end: offset.saturating_add(len),
            piece: Vec::new(),
            piece_at: 0,
        }
    }

    /// The bytes to write next, read from the file when the last piece is all written. Empty
    /// when everything is written, or when the file ended before the range did (it shrank).
    pub(crate) fn next(&mut self) -> io::Result<&[u8]> {
        match self {
            Feed::Bytes { data, at } => Ok(&data[*at..]),
            Feed::Range {
                file,
                at,
                end,
                piece,
                piece_at,
            } => {
                if *piece_at == piece.len() && *at < *end {
                    let want = (*end - *at).min(PIECE as u64) as usize;
                    piece.resize(want, 0);
                    let n = sys::read_at(file, piece, *at)?;
                    piece.truncate(n);
                    *piece_at = 0;
                    *at += n as u64;
                    if n == 0 {
                        *end = *at;
                    }
                }
                Ok(&piece[*piece_at..])
            }
        }
    }

    /// `n` bytes of what [`next`](Self::next) returned were written.
    pub(crate) fn advance(&mut self, n: usize) {
        match self {
            Feed::Bytes { at, .. } => *at += n,
            Feed::Range { piece_at, .. } => *piece_at += n,
        }
    }

    /// For the kernel's own copy: the file and the range left, when no piece is half written.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn unread_range(&mut self) -> Option<(&File, &mut u64, u64)> {
        match self {
            Feed::Range {
                file,
                at,
                end,
                piece,
                piece_at,
            } if *piece_at == piece.len() => Some((file, at, *end)),
            _ => None,
        }
    }
}
