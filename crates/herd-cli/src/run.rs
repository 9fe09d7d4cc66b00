//! The run: read inputs, keep up to `-j` jobs in the herd, print what they produce.

use crate::cli::Options;
use crate::input::Inputs;
use crate::printer::{JobInfo, Printer};
use crate::template::{Fill, Template};
use herd::{Event, Herd, Job, JobId, Outcome};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsString;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

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

#[cfg(unix)]
fn os(v: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(v)
}

#[cfg(not(unix))]
fn os(v: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&v).into_owned().into()
}

/// The shell that runs `--shell` commands and command lines read as input.
fn shell_argv(script: Vec<u8>) -> Vec<Vec<u8>> {
    if cfg!(windows) {
        vec![b"cmd".to_vec(), b"/c".to_vec(), script]
    } else {
        vec![b"sh".to_vec(), b"-c".to_vec(), script]
    }
}

/// Watches for SIGINT, SIGTERM and SIGHUP: the first one cancels every job (each tree gets
/// SIGTERM, then SIGKILL) and stops new jobs; herd then prints what finished and exits.
fn watch_signals(herd: Arc<Herd>) -> Result<Arc<AtomicI32>, Fatal> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let got = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Fatal(format!("cannot handle signals: {e}")))?;
    let flag = got.clone();
    std::thread::Builder::new()
        .name("herd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = flag.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                herd.cancel_all();
            }
        })
        .map_err(|e| Fatal(format!("cannot start the signal thread: {e}")))?;
    Ok(got)
}

/// Runs every job; returns herd's exit status.
pub fn run(opts: Options) -> Result<i32, Fatal> {
    let template = if opts.command.is_empty() {
        None
    } else {
        Some(Template::parse(&opts.command, opts.sources.len()).map_err(|e| Fatal(e.0))?)
    };
    let mut inputs = Inputs::open(&opts.sources, opts.delimiter).map_err(|e| Fatal(e.0))?;
    let mut printer = Printer::new(opts.mode, opts.tag, opts.json.as_deref())
        .map_err(|e| Fatal(e.to_string()))?;
    let mut builder = Herd::builder().max_running(opts.jobs);
    if let Some(g) = opts.eof_grace {
        builder = builder.eof_grace(g);
    }
    let herd = Arc::new(builder.build().map_err(|e| Fatal(e.to_string()))?);
    let signal = watch_signals(herd.clone())?;

    let (stream, collect) = (printer.wants_stream(), printer.wants_collect());
    let mut slots = Slots::default();
    let mut running: HashMap<JobId, JobInfo> = HashMap::new();
    let mut seq = 0u64;
    let mut failed = 0u64;
    let mut input_done = false;
    let mut input_error = None;
    let mut cancelled = false;
    loop {
        let stopping = signal.load(Ordering::SeqCst) != 0 || printer.broken;
        if stopping && !cancelled {
            cancelled = true;
            herd.cancel_all();
        }
        while !input_done && !stopping && running.len() < opts.jobs {
            let values = match inputs.next_tuple() {
                Ok(Some(v)) => v,
                Ok(None) => {
                    input_done = true;
                    break;
                }
                Err(e) => {
                    input_error = Some(e.0);
                    input_done = true;
                    break;
                }
            };
            seq += 1;
            let slot = slots.take();
            let fill = Fill {
                values: &values,
                seq,
                slot,
            };
            let argv = match &template {
                None => shell_argv(values.join(&b' ')),
                Some(t) if opts.shell => shell_argv(t.render_shell(&fill)),
                Some(t) => t.render_direct(&fill),
            };
            let mut job = Job::new(os(argv[0].clone()))
                .args(argv[1..].iter().cloned().map(os))
                .stream_output(stream)
                .collect_output(collect);
            if let Some(t) = opts.timeout {
                job = job.timeout(t);
            }
            let id = herd.submit(job).map_err(|e| Fatal(e.to_string()))?;
            running.insert(
                id,
                JobInfo {
                    seq,
                    slot,
                    values,
                    argv,
                },
            );
        }
        if running.is_empty() {
            break;
        }
        let Some(event) = herd.next_event() else {
            break;
        };
        match event {
            Event::Started { .. } => {}
            Event::Output { id, stream, data } => {
                if let Some(info) = running.get(&id) {
                    printer.chunk(id, info, stream, &data);
                }
            }
            Event::Finished(result) => {
                let Some(info) = running.remove(&result.id) else {
                    continue;
                };
                slots.give(info.slot);
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
    }
    printer.flush();
    if let Some(e) = input_error {
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
