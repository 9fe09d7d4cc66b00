//! The run: a feeder thread turns inputs into jobs while the main thread prints what comes back.
//!
//! Reading input can block for ever (a terminal, `tail -f`), so it has a thread of its own: the
//! feeder takes one of `-j` permits, reads the next input, and submits its job. The main thread
//! follows the herd's events, prints, and gives a permit back for each finished job. Output is
//! never held up by input that has not arrived yet.

use crate::cli::Options;
use crate::input::Inputs;
use crate::printer::{JobInfo, Printer};
use crate::template::{Fill, Template};
use herd::{Event, Herd, Job, JobId, KeepOpen, Outcome};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsString;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// An error that stops herd before or during the run (exit status 255).
pub struct Fatal(pub String);

/// Job slots for `{%}`: the lowest free number from 1.
#[derive(Default)]
struct Slots {
    free: BinaryHeap<Reverse<usize>>,
    next: usize,
}

impl Slots {
    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                self.next += 1;
                self.next
            }
        }
    }

    fn give(&mut self, slot: usize) {
        self.free.push(Reverse(slot));
    }
}

/// The jobs in flight and the room for more.
struct Window {
    permits: usize,
    slots: Slots,
    running: HashMap<JobId, JobInfo>,
    stop: bool,
    input_error: Option<String>,
}

/// What the feeder, the main thread and the signal thread share.
struct Feed {
    window: Mutex<Window>,
    room: Condvar,
    /// Keeps the event stream open while the feeder may still submit.
    hold: Mutex<Option<KeepOpen>>,
}

impl Feed {
    /// Stops feeding: no new job starts, and the event stream ends with the running jobs.
    fn stop(&self) {
        self.window.lock().unwrap().stop = true;
        self.room.notify_all();
        self.hold.lock().unwrap().take();
    }
}

#[cfg(unix)]
fn os(v: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(v)
}

#[cfg(not(unix))]
fn os(v: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&v).into_owned().into()
}

/// The command that runs `script` in the shell: `sh -c` on Unix. On Windows `cmd /d /s /c`
/// with the script as a verbatim command-line tail: `cmd` parses its own command line, so the
/// script must not be quoted as an argument.
fn shell_job(script: Vec<u8>) -> (Job, Vec<Vec<u8>>) {
    if cfg!(windows) {
        let argv = vec![
            b"cmd".to_vec(),
            b"/d".to_vec(),
            b"/s".to_vec(),
            b"/c".to_vec(),
            script.clone(),
        ];
        let mut tail = b"\"".to_vec();
        tail.extend_from_slice(&script);
        tail.push(b'"');
        (
            Job::new("cmd").args(["/d", "/s", "/c"]).raw_arg(os(tail)),
            argv,
        )
    } else {
        let argv = vec![b"sh".to_vec(), b"-c".to_vec(), script];
        (Job::new("sh").arg("-c").arg(os(argv[2].clone())), argv)
    }
}

/// What to do when herd is asked to stop: cancel every job (each tree gets SIGTERM, then
/// SIGKILL; on Windows its job object is terminated), start no new one, and remember why.
fn on_stop(signal: i32, got: &AtomicI32, feed: &Feed, herd: &Herd) {
    let _ = got.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    feed.stop();
    herd.cancel_all();
}

/// Watches for SIGINT, SIGTERM and SIGHUP; herd then prints what finished and exits.
#[cfg(unix)]
fn watch_signals(herd: Arc<Herd>, feed: Arc<Feed>) -> Result<Arc<AtomicI32>, Fatal> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let got = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Fatal(format!("cannot handle signals: {e}")))?;
    let flag = got.clone();
    std::thread::Builder::new()
        .name("herd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_stop(signal, &flag, &feed, &herd);
            }
        })
        .map_err(|e| Fatal(format!("cannot start the signal thread: {e}")))?;
    Ok(got)
}

/// Watches for Ctrl-C and Ctrl-Break, reported like SIGINT (exit status 130).
#[cfg(windows)]
fn watch_signals(herd: Arc<Herd>, feed: Arc<Feed>) -> Result<Arc<AtomicI32>, Fatal> {
    const SIGINT: i32 = 2;
    let got = Arc::new(AtomicI32::new(0));
    let flag = got.clone();
    ctrlc::set_handler(move || on_stop(SIGINT, &flag, &feed, &herd))
        .map_err(|e| Fatal(format!("cannot handle Ctrl-C: {e}")))?;
    Ok(got)
}

/// How the feeder makes jobs.
struct JobMaker {
    template: Option<Template>,
    shell: bool,
    timeout: Option<Duration>,
    stream: bool,
    collect: bool,
    /// `--retries`: how many times a failing job may run in all.
    retries: u32,
}

impl JobMaker {
    fn make(&self, values: &[Vec<u8>], seq: u64, slot: usize) -> (Job, Vec<Vec<u8>>) {
        let fill = Fill { values, seq, slot };
        let (job, argv) = match &self.template {
            None => shell_job(values.join(&b' ')),
            Some(t) if self.shell => shell_job(t.render_shell(&fill)),
            Some(t) => {
                let argv = t.render_direct(&fill);
                (
                    Job::new(os(argv[0].clone())).args(argv[1..].iter().cloned().map(os)),
                    argv,
                )
            }
        };
        let mut job = job.stream_output(self.stream).collect_output(self.collect);
        if let Some(t) = self.timeout {
            job = job.timeout(t);
        }
        (job, argv)
    }
}

/// Reads inputs and submits their jobs, one per free permit, until the input ends or the run
/// stops.
fn feed(herd: &Herd, feed: &Feed, mut inputs: Inputs, maker: JobMaker) {
    let mut seq = 0;
    loop {
        {
            let mut window = feed.window.lock().unwrap();
            while window.permits == 0 && !window.stop {
                window = feed.room.wait(window).unwrap();
            }
            if window.stop {
                break;
            }
        }
        let values = match inputs.next_tuple() {
            Ok(Some(v)) => v,
            Ok(None) => break,
            Err(e) => {
                feed.window.lock().unwrap().input_error = Some(e.0);
                break;
            }
        };
        seq += 1;
        let mut window = feed.window.lock().unwrap();
        if window.stop {
            break;
        }
        window.permits -= 1;
        let slot = window.slots.take();
        let (job, argv) = maker.make(&values, seq, slot);
        let again = (maker.retries > 1).then(|| job.clone());
        // Submitting under the lock: the main thread cannot see the job's events before its info.
        match herd.submit(job) {
            Ok(id) => {
                window.running.insert(
                    id,
                    JobInfo {
                        seq,
                        slot,
                        values,
                        argv,
                        job: again,
                        runs: 1,
                    },
                );
            }
            Err(_) => break,
        }
    }
    feed.hold.lock().unwrap().take();
}

/// `--dry-run`: prints each job's command, as a shell would read it, and runs nothing.
fn dry_run(mut inputs: Inputs, maker: &JobMaker, jobs: usize) -> Result<i32, Fatal> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut seq = 0;
    while let Some(values) = inputs.next_tuple().map_err(|e| Fatal(e.0))? {
        seq += 1;
        // Slots as they would be taken with every job as long as the next.
        let slot = ((seq - 1) % jobs as u64) as usize + 1;
        let (_, argv) = maker.make(&values, seq, slot);
        let info = JobInfo {
            job: None,
            runs: 0,
            seq,
            slot,
            values,
            argv,
        };
        if writeln!(out, "{}", info.display()).is_err() {
            return Ok(141);
        }
    }
    out.flush().map_or(Ok(141), |_| Ok(0))
}

/// Runs every job; returns herd's exit status.
pub fn run(opts: Options) -> Result<i32, Fatal> {
    let template = if opts.command.is_empty() {
        None
    } else {
        Some(Template::parse(&opts.command, opts.sources.len()).map_err(|e| Fatal(e.0))?)
    };
    let inputs = Inputs::open(&opts.sources, opts.delimiter).map_err(|e| Fatal(e.0))?;
    let mut maker = JobMaker {
        template,
        shell: opts.shell,
        timeout: opts.timeout,
        stream: false,
        collect: false,
        retries: opts.retries,
    };
    if opts.dry_run {
        return dry_run(inputs, &maker, opts.jobs);
    }
    let mut printer = Printer::new(
        opts.mode,
        opts.tag,
        opts.json.as_deref(),
        opts.joblog.as_deref(),
    )
    .map_err(|e| Fatal(e.to_string()))?;
    let mut builder = Herd::builder().max_running(opts.jobs);
    if let Some(g) = opts.eof_grace {
        builder = builder.eof_grace(g);
    }
    let herd = Arc::new(builder.build().map_err(|e| Fatal(e.to_string()))?);
    let feed_state = Arc::new(Feed {
        window: Mutex::new(Window {
            permits: opts.jobs,
            slots: Slots::default(),
            running: HashMap::new(),
            stop: false,
            input_error: None,
        }),
        room: Condvar::new(),
        hold: Mutex::new(Some(herd.keep_open())),
    });
    let signal = watch_signals(herd.clone(), feed_state.clone())?;
    maker.stream = printer.wants_stream();
    maker.collect = printer.wants_collect();
    {
        let (herd, feed_state) = (herd.clone(), feed_state.clone());
        std::thread::Builder::new()
            .name("herd-feeder".into())
            .spawn(move || feed(&herd, &feed_state, inputs, maker))
            .map_err(|e| Fatal(format!("cannot start the input thread: {e}")))?;
    }

    let mut failed = 0u64;
    let mut stopped = false;
    while let Some(event) = herd.next_event() {
        match event {
            Event::Started { .. } => {}
            Event::Output { id, stream, data } => {
                let window = feed_state.window.lock().unwrap();
                if let Some(info) = window.running.get(&id) {
                    printer.chunk(id, info, stream, &data);
                }
            }
            Event::Finished(result) => {
                let info = {
                    let mut window = feed_state.window.lock().unwrap();
                    let Some(mut info) = window.running.remove(&result.id) else {
                        continue;
                    };
                    // --retries: run a failed job again in the same slot; only its last run is
                    // reported.
                    let retry = !result.success() && !result.cancelled && !window.stop;
                    let again = if retry && info.runs < opts.retries {
                        info.job.clone()
                    } else {
                        None
                    };
                    if let Some(job) = again {
                        if let Ok(id) = herd.submit(job) {
                            printer.discard(result.id);
                            info.runs += 1;
                            window.running.insert(id, info);
                            continue;
                        }
                    }
                    window.permits += 1;
                    window.slots.give(info.slot);
                    info
                };
                feed_state.room.notify_one();
                if !result.success() {
                    failed += 1;
                }
                if let Outcome::SpawnFailed(e) = &result.outcome {
                    printer.message(&format!("job {}: {e}", info.seq));
                }
                if result.timed_out {
                    let t = opts.timeout.unwrap_or_default().as_secs_f64();
                    printer.message(&format!(
                        "job {} timed out after {t}s and was killed: {}",
                        info.seq,
                        info.display()
                    ));
                }
                if result.leaked {
                    printer.message(&format!(
                        "job {}: descendants still held its output after it exited and were killed: {}",
                        info.seq,
                        info.display()
                    ));
                }
                printer.finish(info, result);
            }
        }
        if printer.broken && !stopped {
            // Nobody reads our output any more: stop, and end every job's tree.
            stopped = true;
            feed_state.stop();
            herd.cancel_all();
        }
    }
    printer.flush();
    if let Some(e) = feed_state.window.lock().unwrap().input_error.take() {
        printer.message(&e);
        return Ok(255);
    }
    let signal = signal.load(Ordering::SeqCst);
    if signal != 0 {
        return Ok(128 + signal);
    }
    if printer.broken {
        return Ok(141);
    }
    Ok(failed.min(101) as i32)
}
