//! What herd writes into a job's stdin pipe, a piece at a time as the pipe drains.
//!
//! The platform pollers own the pipe and the writes; a [`Feed`] says what comes next. Bytes
//! held in memory are written straight from the caller's buffer. A byte range of a file is
//! never read whole: Linux moves it from the page cache into the pipe with `splice` (no copy
//! through herd), and a system that cannot splice reads it one [`PIECE`] at a time, so a job
//! fed a gigabyte costs herd one piece of memory. A stream ([`crate::stream`]) gives what its
//! sender sent, and says when there is nothing yet: the poller then waits for its wake-up.

use crate::stream::StreamFeed;
use crate::sys;
use crate::Stdin;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How much of a file range is read into memory at a time where it cannot be spliced.
pub(crate) const PIECE: usize = 256 * 1024;

pub(crate) enum Feed {
    /// [`Stdin::Bytes`](crate::Stdin::Bytes): `at` bytes of `data` are written.
    Bytes { data: Arc<Vec<u8>>, at: usize },
    /// [`Stdin::FileRange`](crate::Stdin::FileRange): `file`'s bytes from `at` to `end` are
    /// still to go; `piece` holds what was read from it and not yet written (from `piece_at`).
    Range {
        file: File,
        at: u64,
        end: u64,
        piece: Vec<u8>,
        piece_at: usize,
    },
    /// [`Stdin::Concat`](crate::Stdin::Concat): each part in turn.
    Chain(VecDeque<Feed>),
    /// [`Stdin::Stream`](crate::Stdin::Stream): what the sender sends.
    Stream(StreamFeed),
}

impl Feed {
    /// What to write for a stdin herd feeds through a pipe; `open` opens a file the way the
    /// platform reports a failure. A whole file inside [`Stdin::Concat`] is a range to its end;
    /// nothing, or a held-open pipe, inside one is nothing.
    pub(crate) fn of<E>(
        stdin: &Stdin,
        open: &mut impl FnMut(&Path) -> Result<File, E>,
    ) -> Result<Feed, E> {
        Ok(match stdin {
            Stdin::Bytes(data) => Feed::bytes(data.clone()),
            Stdin::FileRange { path, offset, len } => Feed::range(open(path)?, *offset, *len),
            Stdin::File(path) => Feed::range(open(path)?, 0, u64::MAX),
            Stdin::Null | Stdin::HeldOpen => Feed::Chain(VecDeque::new()),
            Stdin::Stream(stream) => Feed::Stream(stream.feed()),
            Stdin::Concat(parts) => Feed::Chain(
                parts
                    .iter()
                    .map(|part| Feed::of(part, open))
                    .collect::<Result<_, E>>()?,
            ),
        })
    }

    /// How many bytes are left to write, at most (a file may end first).
    pub(crate) fn size_hint(&self) -> u64 {
        match self {
            Feed::Bytes { data, at } => (data.len() - at) as u64,
            Feed::Range {
                at,
                end,
                piece,
                piece_at,
                ..
            } => (end - at).saturating_add((piece.len() - piece_at) as u64),
            Feed::Chain(parts) => parts
                .iter()
                .fold(0u64, |sum, part| sum.saturating_add(part.size_hint())),
            // Unknown until the sender is gone; zero only when nothing is left.
            Feed::Stream(stream) => match stream.pending() {
                0 => u64::from(!stream.is_done()),
                _ => u64::MAX,
            },
        }
    }

    /// Has the poller woken (through `waker`, which remembers that a stream asked) when a
    /// stream that had nothing to give gets bytes.
    pub(crate) fn wake_through(&mut self, waker: &Arc<sys::Waker>) {
        let waker = waker.clone();
        self.set_waker(&(Arc::new(move || waker.stream_ready()) as Arc<dyn Fn() + Send + Sync>));
    }

    fn set_waker(&mut self, wake: &Arc<dyn Fn() + Send + Sync>) {
        match self {
            Feed::Stream(stream) => stream.set_waker(wake.clone()),
            Feed::Chain(parts) => parts.iter_mut().for_each(|part| part.set_waker(wake)),
            Feed::Bytes { .. } | Feed::Range { .. } => {}
        }
    }

    pub(crate) fn bytes(data: Arc<Vec<u8>>) -> Feed {
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
    /// [`io::ErrorKind::WouldBlock`] when a stream has nothing yet: the poller is woken (see
    /// [`set_waker`](Self::set_waker)) when it has.
    pub(crate) fn next(&mut self) -> io::Result<&[u8]> {
        match self {
            Feed::Stream(stream) => match stream.next() {
                crate::stream::Next::Bytes(bytes) => Ok(bytes),
                crate::stream::Next::End => Ok(&[]),
                crate::stream::Next::Starved => Err(io::ErrorKind::WouldBlock.into()),
            },
            Feed::Chain(parts) => {
                // Parts that give nothing more are done.
                while let Some(part) = parts.front_mut() {
                    if part.next()?.is_empty() {
                        parts.pop_front();
                    } else {
                        break;
                    }
                }
                match parts.front_mut() {
                    Some(part) => part.next(),
                    None => Ok(&[]),
                }
            }
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
            Feed::Chain(parts) => {
                if let Some(part) = parts.front_mut() {
                    part.advance(n);
                }
            }
            Feed::Stream(stream) => stream.advance(n),
        }
    }

    /// For the kernel's own copy: the file, where the rest starts and where it ends, when
    /// what comes next is a file's range with bytes left and no piece half written. (A
    /// splice that finds the file ended sets the end to where it stopped.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn unread_range(&mut self) -> Option<(&File, &mut u64, &mut u64)> {
        match self {
            Feed::Range {
                file,
                at,
                end,
                piece,
                piece_at,
            } if *piece_at == piece.len() && *at < *end => Some((file, at, end)),
            Feed::Chain(parts) => {
                // Parts all written are done (a range's end is known without reading).
                while parts.front().is_some_and(|part| part.size_hint() == 0) {
                    parts.pop_front();
                }
                parts.front_mut()?.unread_range()
            }
            _ => None,
        }
    }
}
