//! The epoll instance that owns every pipe and pidfd, and the read loop.
//!
//! Pipes are registered edge-triggered: one readiness event per arrival, no matter how many
//! jobs sit idle, and no `epoll_ctl` per read. The rule that makes edge triggering safe is to
//! read until the pipe is known empty. A short read empties a pipe (Linux pipes return all
//! that is buffered, up to the buffer size), and any later write raises a new edge, so a
//! short read is enough; a full buffer, a hang-up, or a read cut short by the caller's budget
//! keeps the pipe on the `pending` list, which is read before waiting again.
//!
//! The budget is how the engine applies backpressure: when the consumer of streamed output
//! falls behind, it passes 0, the pipes fill, and the children block in `write` until the
//! consumer catches up. Memory stays bounded and nothing is lost.

use super::super::{Stream, SysEvent, Token, TokenTable};
use super::process::Process;
use crate::feed::Feed;
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The parent's ends of one child's pipes.
pub(crate) struct Pipes {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The write end of the child's stdin and what to write into it.
    pub stdin: Option<(OwnedFd, Feed)>,
}

/// Wakes the poller from another thread.
pub(crate) struct Waker {
    fd: OwnedFd,
    /// A stream's sender sent bytes, or went, after its feed found nothing to write.
    streams: AtomicBool,
}

impl Waker {
    /// A stream has bytes again, or ended: the poller feeds its starved stdins.
    pub(crate) fn stream_ready(&self) {
        self.streams.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        // EAGAIN means the counter is already non-zero: the poller is awake anyway.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }
}

const KIND_STDOUT: u64 = 0;
const KIND_STDERR: u64 = 1;
const KIND_STDIN: u64 = 2;
const KIND_EXIT: u64 = 3;
const WAKER: u64 = u64::MAX;

fn encode(token: Token, kind: u64) -> u64 {
    (u64::from(token.gen) << 34) | (u64::from(token.slot) << 2) | kind
}

fn decode(data: u64) -> (Token, u64) {
    let token = Token {
        slot: ((data >> 2) & 0xffff_ffff) as u32,
        gen: (data >> 34) as u32,
    };
    (token, data & 3)
}

struct StdinWriter {
    fd: OwnedFd,
    feed: Feed,
    /// The kernel refused to splice from this feed's file: it is read instead.
    no_splice: bool,
}

struct Registration {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin: Option<StdinWriter>,
    /// Whether each output stream is on the pending list already.
    pending: [bool; 2],
    /// Whether each output stream has reported a hang-up: its writers are gone, so after the
    /// data is read the next read returns EOF, and no new edge will announce it.
    hup: [bool; 2],
    /// Each output stream's spill file, once the engine lets the poller fill it directly.
    spill: [Option<File>; 2],
    /// Streams the engine has no room for: not read until released.
    held: [bool; 2],
}

pub(crate) struct Poller {
    epoll: OwnedFd,
    waker: Arc<Waker>,
    regs: TokenTable<Registration>,
    /// Pipes that may hold more data than was read from them so far.
    pending: Vec<(Token, Stream)>,
    events: Vec<epoll::Event>,
    /// Where reads land. The engine may take it with the bytes (see [`SysEvent::Output`]).
    buf: Vec<u8>,
    /// Jobs whose stdin stream had nothing to write: fed again when the waker says a stream
    /// has more.
    starved: Vec<Token>,
}

const READ_SIZE: usize = 64 * 1024;

// SAFETY: the only non-`Send` part is the epoll event buffer, whose entries hold plain `u64`
// tokens that herd registered (never pointers); the poller is used by one thread at a time.
unsafe impl Send for Poller {}

impl Poller {
    pub(crate) fn new(_options: &super::super::PollerOptions) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &fd,
            epoll::EventData::new_u64(WAKER),
            epoll::EventFlags::IN,
        )?;
        Ok(Poller {
            epoll,
            waker: Arc::new(Waker {
                fd,
                streams: AtomicBool::new(false),
            }),
            starved: Vec::new(),
            regs: TokenTable::new(),
            pending: Vec::new(),
            events: Vec::with_capacity(256),
            buf: Vec::with_capacity(READ_SIZE),
        })
    }

    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Starts watching a new child: its output pipes, its stdin (if herd feeds it) and its exit.
    pub(crate) fn register(
        &mut self,
        token: Token,
        process: &Process,
        pipes: Pipes,
    ) -> io::Result<()> {
        self.watch(token, process.pidfd().as_fd(), pipes)
    }

    /// [`register`](Self::register), with `exit` readable when the child has exited.
    fn watch(&mut self, token: Token, exit: BorrowedFd<'_>, pipes: Pipes) -> io::Result<()> {
        use epoll::EventFlags as F;
        let edge_in = F::IN | F::RDHUP | F::ET;
        epoll::add(
            &self.epoll,
            &pipes.stdout,
            epoll::EventData::new_u64(encode(token, KIND_STDOUT)),
            edge_in,
        )?;
        epoll::add(
            &self.epoll,
            &pipes.stderr,
            epoll::EventData::new_u64(encode(token, KIND_STDERR)),
            edge_in,
        )?;
        epoll::add(
            &self.epoll,
            exit,
            epoll::EventData::new_u64(encode(token, KIND_EXIT)),
            F::IN | F::ET,
        )?;
        let stdin = match pipes.stdin {
            Some((fd, mut feed)) => {
                feed.wake_through(&self.waker);
                epoll::add(
                    &self.epoll,
                    &fd,
                    epoll::EventData::new_u64(encode(token, KIND_STDIN)),
                    F::OUT | F::ET,
                )?;
                Some(StdinWriter {
                    fd,
                    feed,
                    no_splice: false,
                })
            }
            None => None,
        };
        self.regs.insert(
            token,
            Registration {
                stdout: Some(pipes.stdout),
                stderr: Some(pipes.stderr),
                stdin,
                pending: [false; 2],
                hup: [false; 2],
                spill: [None, None],
                held: [false; 2],
            },
        );
        Ok(())
    }

    /// Whether a job's output pipes still hold bytes, unread: written before its exit, most
    /// likely, and read in the next turns.
    pub(crate) fn output_in_transit(&self, token: Token) -> bool {
        let Some(reg) = self.regs.get(token) else {
            return false;
        };
        [&reg.stdout, &reg.stderr]
            .into_iter()
            .flatten()
            .any(|fd| rustix::io::ioctl_fionread(fd).is_ok_and(|n| n > 0))
    }

    /// Stops watching a child and closes what is left of its pipes.
    pub(crate) fn deregister(&mut self, token: Token) {
        // Closing a descriptor removes it from the epoll set.
        if self.regs.remove(token).is_some() {
            self.pending.retain(|(t, _)| *t != token);
            self.starved.retain(|t| *t != token);
        }
    }

    /// Stops reading this stream: its pipe fills and the child blocks in `write`. For when
    /// neither memory nor disk has room for more of it.
    pub(crate) fn hold(&mut self, token: Token, stream: Stream) {
        if let Some(reg) = self.reg(token) {
            reg.held[stream as usize] = true;
        }
    }

    /// Reads this held stream again (at once: what arrived meanwhile raised no new edge).
    pub(crate) fn release(&mut self, token: Token, stream: Stream) {
        if let Some(reg) = self.reg(token) {
            reg.held[stream as usize] = false;
        }
        self.mark_pending(token, stream);
    }

    /// From now on, moves this stream's bytes from its pipe to the end of `file` with
    /// `splice`, reporting [`SysEvent::Spilled`] counts instead of the bytes: a stream that
    /// spills a gigabyte is never copied through herd's memory. If the kernel refuses a
    /// splice, the stream goes back to being read.
    pub(crate) fn spill_into(&mut self, token: Token, stream: Stream, file: File) {
        if let Some(reg) = self.reg(token) {
            reg.spill[stream as usize] = Some(file);
        }
    }

    fn reg(&mut self, token: Token) -> Option<&mut Registration> {
        self.regs.get_mut(token)
    }

    /// Waits for events (at most `timeout`; `None` waits for ever) and reports them to `on`.
    /// At most about `budget` bytes of output are read; pipes left unread stay pending.
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        budget: usize,
        on: &mut dyn FnMut(SysEvent<'_>),
    ) -> io::Result<()> {
        let timeout = if !self.pending.is_empty() && budget > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            ts.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut budget = budget;
        // Pipes that were pending go first: they have waited longest. Their flags stay set
        // until they are read, so that an edge reported for one of them now does not list it
        // twice (each copy would be read, and put back on the list, every turn).
        let mut ready = std::mem::take(&mut self.pending);
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let data = event.data.u64();
            if data == WAKER {
                let mut counter = [0u8; 8];
                let _ = rustix::io::read(&self.waker.fd, &mut counter);
                if self.waker.streams.swap(false, Ordering::AcqRel) {
                    for token in std::mem::take(&mut self.starved) {
                        self.feed_stdin(token);
                    }
                }
                continue;
            }
            let (token, kind) = decode(data);
            match kind {
                KIND_STDOUT | KIND_STDERR => {
                    let stream = if kind == KIND_STDOUT {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    let flags = event.flags;
                    let hangup = flags.intersects(
                        epoll::EventFlags::HUP | epoll::EventFlags::RDHUP | epoll::EventFlags::ERR,
                    );
                    if let Some(reg) = self.reg(token) {
                        reg.hup[stream as usize] |= hangup;
                        if !reg.pending[stream as usize] {
                            reg.pending[stream as usize] = true;
                            ready.push((token, stream));
                        }
                    }
                }
                KIND_STDIN => self.feed_stdin(token),
                _ => on(SysEvent::Exited { token }),
            }
        }
        self.events = events;
        for (token, stream) in ready {
            if let Some(reg) = self.reg(token) {
                reg.pending[stream as usize] = false;
                if reg.held[stream as usize] {
                    continue;
                }
            }
            if budget == 0 {
                self.mark_pending(token, stream);
                continue;
            }
            budget = budget.saturating_sub(self.read_stream(token, stream, on));
        }
        Ok(())
    }

    fn mark_pending(&mut self, token: Token, stream: Stream) {
        if let Some(reg) = self.reg(token) {
            if !reg.pending[stream as usize] {
                reg.pending[stream as usize] = true;
                self.pending.push((token, stream));
            }
        }
    }

    /// Reads one pipe once; returns the bytes read.
    fn read_stream(
        &mut self,
        token: Token,
        stream: Stream,
        on: &mut dyn FnMut(SysEvent<'_>),
    ) -> usize {
        let Some(reg) = self.regs.get_mut(token) else {
            return 0;
        };
        let hup = reg.hup[stream as usize];
        let spill = &mut reg.spill[stream as usize];
        let slot = match stream {
            Stream::Stdout => &mut reg.stdout,
            Stream::Stderr => &mut reg.stderr,
        };
        let Some(fd) = slot.as_ref() else { return 0 };
        if let Some(file) = spill.as_ref() {
            match splice_all(fd, file) {
                Spliced::Bytes(n) => {
                    on(SysEvent::Spilled {
                        token,
                        stream,
                        bytes: n,
                    });
                    if n == READ_SIZE || hup {
                        self.mark_pending(token, stream);
                    }
                    return n;
                }
                Spliced::Empty => return 0,
                Spliced::Eof => {
                    *slot = None;
                    *spill = None;
                    on(SysEvent::Eof { token, stream });
                    return 0;
                }
                // Not into this file (or not now): read the stream as any other, and let the
                // engine's capture write the file, or fall back to memory.
                Spliced::Refused => *spill = None,
            }
        }
        loop {
            self.buf.clear();
            self.buf.reserve(READ_SIZE);
            match rustix::io::read(fd.as_fd(), rustix::buffer::spare_capacity(&mut self.buf)) {
                Ok(0) => {
                    *slot = None;
                    on(SysEvent::Eof { token, stream });
                    return 0;
                }
                Ok(n) => {
                    // A full read leaves the buffer's capacity exactly used.
                    let full = n == self.buf.capacity();
                    on(SysEvent::Output {
                        token,
                        stream,
                        data: &mut self.buf,
                    });
                    if full || hup {
                        // There may be more, or an EOF no edge will announce: read again
                        // after the other ready pipes.
                        self.mark_pending(token, stream);
                    }
                    return n;
                }
                Err(Errno::AGAIN) => return 0,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    // Not expected on a pipe; treat as the end of the stream.
                    *slot = None;
                    on(SysEvent::Eof { token, stream });
                    return 0;
                }
            }
        }
    }

    fn feed_stdin(&mut self, token: Token) {
        let Some(reg) = self.reg(token) else { return };
        let Some(w) = reg.stdin.as_mut() else { return };
        loop {
            // A file's range goes from the page cache into the pipe without passing through
            // herd; a file the kernel will not splice from is read a piece at a time instead.
            if let Some((file, at, end)) = w.feed.unread_range().filter(|_| !w.no_splice) {
                let want = (*end - *at).min(1 << 20) as usize;
                use rustix::pipe::{splice, SpliceFlags};
                match splice(file, Some(at), &w.fd, None, want, SpliceFlags::NONBLOCK) {
                    // The file ended early (it shrank): the range ends here.
                    Ok(0) => *end = *at,
                    Ok(_) => {}
                    Err(Errno::AGAIN) => return,
                    Err(Errno::INTR) => {}
                    Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => w.no_splice = true,
                    // EPIPE: the child closed its stdin; the rest is not wanted.
                    Err(_) => {
                        reg.stdin = None;
                        return;
                    }
                }
                continue;
            }
            let bytes = match w.feed.next() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A stream with nothing yet: its sender's next bytes wake the poller.
                    if !self.starved.contains(&token) {
                        self.starved.push(token);
                    }
                    return;
                }
                Ok([]) | Err(_) => {
                    reg.stdin = None;
                    return;
                }
                Ok(bytes) => bytes,
            };
            match rustix::io::write(&w.fd, bytes) {
                Ok(n) => w.feed.advance(n),
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    reg.stdin = None;
                    return;
                }
            }
        }
    }
}

enum Spliced {
    Bytes(usize),
    Empty,
    Eof,
    Refused,
}

/// Moves what the pipe holds (up to a read's worth) to the end of `file`, in the kernel.
fn splice_all(pipe: &OwnedFd, file: &File) -> Spliced {
    use rustix::pipe::{splice, SpliceFlags};
    loop {
        return match splice(pipe, None, file, None, READ_SIZE, SpliceFlags::NONBLOCK) {
            Ok(0) => Spliced::Eof,
            Ok(n) => Spliced::Bytes(n),
            Err(Errno::AGAIN) => Spliced::Empty,
            Err(Errno::INTR) => continue,
            // ENOSPC, EIO, or a file system without splice: nothing was moved.
            Err(_) => Spliced::Refused,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};

    /// A pipe whose read end the poller watches, and whose write end the test fills.
    fn pipe(size: usize) -> (OwnedFd, OwnedFd) {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        fcntl_setpipe_size(&write, size).unwrap();
        (read, write)
    }

    /// Writes `data` into a pipe that has room for it.
    fn write_all(fd: &OwnedFd, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            done += rustix::io::write(fd, &data[done..]).unwrap();
        }
    }

    fn fill(fd: &OwnedFd, bytes: usize) {
        write_all(fd, &vec![b'x'; bytes]);
    }

    /// One job's stdout and stderr pipes (1 MiB each) under a new poller, with an eventfd
    /// standing in for its pidfd; returns the poller, the job's token and the write ends.
    fn watched_job() -> (Poller, Token, OwnedFd, OwnedFd, OwnedFd) {
        let mut poller = Poller::new(&Default::default()).unwrap();
        let (stdout, stdout_w) = pipe(1 << 20);
        let (stderr, stderr_w) = pipe(1 << 20);
        let exit = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let token = Token { slot: 0, gen: 1 };
        let pipes = Pipes {
            stdout,
            stderr,
            stdin: None,
        };
        poller.watch(token, exit.as_fd(), pipes).unwrap();
        (poller, token, stdout_w, stderr_w, exit)
    }

    /// Output events per stream in one turn of the poller.
    fn turn(poller: &mut Poller) -> [usize; 2] {
        let mut reads = [0; 2];
        poller
            .poll(Some(Duration::ZERO), usize::MAX, &mut |ev| {
                if let SysEvent::Output { stream, .. } = ev {
                    reads[stream as usize] += 1;
                }
            })
            .unwrap();
        reads
    }

    // A pipe still pending from the last turn that also reports a new edge was listed twice,
    // read twice in the turn, and put back on the list twice, so the copies multiplied. The
    // busiest pipe got read again and again while its writer was still filling it: the two
    // fought over the pipe's lock, and streaming ran at 0.73 of a raw drain instead of 0.95.
    #[test]
    fn a_pipe_is_read_once_per_turn_however_often_it_is_announced() {
        let (mut poller, _, stdout_w, stderr_w, _exit) = watched_job();
        // Far more than one read each: both stay pending turn after turn.
        fill(&stdout_w, 8 * READ_SIZE);
        fill(&stderr_w, 8 * READ_SIZE);
        let mut total = [0; 2];
        for _ in 0..4 {
            // A new edge on a pipe that is pending already.
            fill(&stdout_w, 1);
            let reads = turn(&mut poller);
            assert_eq!(reads, [1, 1], "each pipe read once in a turn");
            total[0] += reads[0];
            total[1] += reads[1];
        }
        assert_eq!(total, [4, 4]);
    }

    /// Polls until the stream `stream` of token 0 reaches EOF; returns the bytes reported as
    /// output, and the count reported as spilled.
    fn drain(poller: &mut Poller, stream: Stream) -> (Vec<u8>, usize) {
        let (mut read, mut spilled, mut eof) = (Vec::new(), 0, false);
        while !eof {
            poller
                .poll(
                    Some(Duration::from_secs(5)),
                    usize::MAX,
                    &mut |ev| match ev {
                        SysEvent::Output {
                            data, stream: s, ..
                        } if s == stream => read.extend_from_slice(data),
                        SysEvent::Spilled {
                            bytes, stream: s, ..
                        } if s == stream => spilled += bytes,
                        SysEvent::Eof { stream: s, .. } if s == stream => eof = true,
                        _ => {}
                    },
                )
                .unwrap();
        }
        (read, spilled)
    }

    #[test]
    fn a_spilling_stream_goes_from_the_pipe_to_its_file_in_the_kernel() {
        let (mut poller, token, stdout_w, _stderr_w, _exit) = watched_job();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"already on disk|").unwrap();
        poller.spill_into(token, Stream::Stdout, file.try_clone().unwrap());
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let writer = std::thread::spawn(move || {
            let mut done = 0;
            while done < data.len() {
                match rustix::io::write(&stdout_w, &data[done..]) {
                    Ok(n) => done += n,
                    Err(Errno::AGAIN) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            data
        });
        let (read, spilled) = drain(&mut poller, Stream::Stdout);
        let data = writer.join().unwrap();
        assert!(read.is_empty(), "no byte came up to herd");
        assert_eq!(spilled, data.len());
        let mut on_disk = Vec::new();
        std::io::Seek::rewind(&mut file).unwrap();
        std::io::Read::read_to_end(&mut file, &mut on_disk).unwrap();
        assert!(on_disk.starts_with(b"already on disk|"));
        assert!(
            on_disk[16..] == data[..],
            "the file holds the stream, in order"
        );
    }

    #[test]
    fn a_spill_file_the_kernel_will_not_splice_into_leaves_the_stream_to_reads() {
        let (mut poller, token, stdout_w, _stderr_w, _exit) = watched_job();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        write_all(&stdout_w, &data);
        drop(stdout_w);
        // splice refuses a file opened for appending (EINVAL).
        let dir = tempfile::tempdir().unwrap();
        let appending = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.path().join("spill"))
            .unwrap();
        poller.spill_into(token, Stream::Stdout, appending);
        let (read, spilled) = drain(&mut poller, Stream::Stdout);
        assert_eq!(spilled, 0);
        assert!(read == data, "every byte was read instead");
    }
}
