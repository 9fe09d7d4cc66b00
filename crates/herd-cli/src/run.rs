//! The run: the feeder ([`crate::feeder`]) turns inputs into jobs while the main thread
//! reports what comes back. The main thread follows the herd's events and hands each to the
//! places that want it — the [`Printer`] (stdout, stderr, `--json`), [`Results`] files, the
//! [`EventLog`], the [`Joblog`] and the [`Progress`] bar — gives a permit (or a host's slot)
//! back for each finished job, decides on `--retries`, `--halt` and jobs to run again after
//! their host failed, and acts on SIGINT/SIGTERM, which a signal handler only records.

use crate::batch::Batcher;
use crate::blockfile::BlockFiles;
use crate::events::EventLog;
use crate::feeder::{host_at_fault, no_host_left, Feed, Feeder, Slots, Why, Window};
use crate::gate::Gate;
use crate::halt::{Counts, When};
use crate::input::{Columns, Inputs, Source, SourceSpec};
use crate::joblog::{self, Joblog};
use crate::jobs::{JobMaker, NotRun, ResultsLayout};
use crate::json;
use crate::options::Options;
use crate::printer::{Printer, PrinterOptions};
use crate::progress::Progress;
use crate::remote::Hosts;
use crate::results::{Results, Row, Table};
use crate::timeouts::RelativeTimeout;
use crate::watch::{watch_signals, ReaderWatch, SIGNAL_CHECK};
use herd_engine::{Event, Herd, Outcome};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// An error that stops herd before or during the run (exit status 255).
pub struct Fatal(pub String);

/// `--dry-run`: prints each job's command line, as GNU parallel shows it, and runs nothing.
/// Jobs that would be skipped are shown too, and counted as failed, as GNU does. With
/// `--pipe`, the input is read and cut, and each block's job shown.
fn dry_run(
    mut batcher: Batcher,
    mut blocks: Option<crate::blocks::BlockSource>,
    maker: &mut JobMaker,
    jobs: usize,
    shell_quote: bool,
) -> Result<i32, Fatal> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut seq = 0;
    let mut failed = 0;
    loop {
        let args = if let Some(blocks) = blocks.as_mut() {
            match blocks.next_stdin() {
                // --cat, --fifo: no file is made; the line names it as GNU parallel shows it.
                Ok(Some(_)) if maker.block_file.is_some() => crate::batch::JobArgs {
                    values: vec![crate::blockfile::SHOWN.to_vec()],
                    ..Default::default()
                },
                Ok(Some(_)) => Default::default(),
                Ok(None) => break,
                Err(e) => return Err(Fatal(e)),
            }
        } else {
            let measure = &mut |v: &[Vec<u8>]| maker.measure(v);
            let Some(args) = batcher.next_job(measure).map_err(|e| Fatal(e.0))? else {
                break;
            };
            args
        };
        seq += 1;
        // Slots as they would be taken with every job as long as the next.
        let slot = ((seq - 1) % jobs as u64) as usize + 1;
        let line = match maker.make(&args, seq, slot) {
            Ok(made) => made.line,
            Err(NotRun::Skipped(line)) => {
                failed += 1;
                line
            }
            Err(NotRun::Failed(_, reason)) => {
                eprintln!("herd: job {seq}: {reason}");
                failed += 1;
                continue;
            }
            Err(NotRun::Fatal(e)) => return Err(Fatal(e)),
        };
        let line = match maker.block_file {
            Some(_) => crate::blockfile::as_shown(line, &maker.composer.shell),
            None => line,
        };
        let line = if shell_quote {
            maker.composer.shell.quote(&line)
        } else {
            line
        };
        if out
            .write_all(&line)
            .and_then(|_| out.write_all(b"\n"))
            .is_err()
        {
            return Ok(141);
        }
    }
    out.flush().map_or(Ok(141), |_| Ok(failed.min(101)))
}

/// The places a run reports to, besides the printer.
struct Reports {
    joblog: Option<Joblog>,
    results: Option<Results>,
    /// `--results NAME.csv|.tsv|.json`.
    table: Option<Table>,
    events: Option<EventLog>,
    progress: Progress,
    /// The first error writing a report; herd stops starting jobs and exits with 255.
    error: Option<String>,
}

impl Reports {
    fn check<E: std::fmt::Display>(&mut self, r: Result<(), E>, what: &str) {
        if let Err(e) = r {
            if self.error.is_none() {
                self.error = Some(format!("{what}: {e}"));
            }
        }
    }
}

fn open_output(path: &std::path::Path) -> Result<Box<dyn std::io::Write>, Fatal> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    let f = std::fs::File::create(path)
        .map_err(|e| Fatal(format!("cannot write {}: {e}", path.display())))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

/// Reports the jobs that did not run: under `-k` the jobs after them need not wait; skipped
/// and failed ones count as failed and get a joblog row, as in GNU parallel.
fn report_unrun(feed: &Feed, printer: &mut Printer, reports: &mut Reports, counts: &mut Counts) {
    let unrun = std::mem::take(&mut feed.window.lock().unwrap().unrun);
    for job in unrun {
        printer.skip(job.seq);
        if let Some(table) = reports.table.as_mut() {
            let r = table.skip(job.seq);
            reports.check(r, "--results");
        }
        reports.progress.advance();
        let (line, exit_value) = match &job.why {
            Why::Resumed => continue,
            Why::Skipped { line } => (line, -2),
            Why::Failed { line, reason } => {
                printer.message(&format!("job {}: {reason}", job.seq));
                (line, -1)
            }
        };
        counts.done += 1;
        counts.failed += 1;
        if let Some(log) = reports.joblog.as_mut() {
            let r = log.unrun_row(job.seq, &String::from_utf8_lossy(line), exit_value);
            reports.check(r, "--joblog");
        }
    }
}

/// Runs every job; returns herd's exit status.
pub fn run(mut opts: Options) -> Result<i32, Fatal> {
    if opts.results.is_some() || opts.files {
        // Each running job keeps its result files open beside the engine's descriptors.
        if let Some((fit, limit)) = crate::gate::jobs_within_descriptors(opts.jobs, 2) {
            eprintln!(
                "herd: warning: only enough file descriptors (ulimit -n {limit}) to run {fit} \
                 jobs at once with their result files; running {fit}"
            );
            opts.jobs = fit;
        }
    }
    if let (false, Some(q)) = (
        opts.command.quote,
        crate::compose::self_quoted(&opts.command.words, &opts.command.names),
    ) {
        eprintln!(
            "herd: warning: the command quotes a replacement string itself ({q}). herd quotes \
             every value, so a value with a space or a quote would break out of these quotes: \
             write it without them"
        );
    }
    // Everything that can be wrong with the options or the input is found before a job starts.
    let multi = opts.batch.per_job.is_some() || opts.batch.fill;
    let check_positions = opts.colsep.is_none() && !multi;
    let mut sources = opts.sources.clone();
    let mut spec = opts.command.clone();
    let mut skip = match (&opts.joblog, opts.resume) {
        (Some(path), Some(resume)) => joblog::finished_jobs(path, resume).map_err(Fatal)?,
        _ => HashSet::new(),
    };
    if let (true, Some(path)) = (opts.retry_failed, &opts.joblog) {
        // The log's failed commands, each run as it was logged, under its own number.
        let (commands, done) = joblog::failed_commands(path).map_err(Fatal)?;
        sources = vec![Source {
            spec: SourceSpec::Values(commands),
            linked: false,
        }];
        spec.words.clear();
        skip = done;
    }
    let never_blocks = Inputs::never_block(&sources);
    // --pipe, --pipepart: the input is data, cut into blocks, not values.
    let mut dealt = None;
    // --tee, --shard, --bin: where their threads say what went wrong.
    let mut failures = Vec::new();
    let mut tee = None;
    let blocks = match &opts.pipe {
        // --tee: the input goes whole to every job, made from the other sources' values.
        Some(spec) if spec.tee => {
            let (source, values) = crate::tee::open(&sources, spec.part).map_err(Fatal)?;
            failures.extend(source.failure());
            tee = Some(source);
            sources = values;
            None
        }
        Some(spec) => {
            let source = crate::blocks::open_source(&sources, spec, opts.jobs).map_err(Fatal)?;
            dealt = source.dealt();
            failures.extend(source.failure());
            sources = vec![Source {
                spec: SourceSpec::Values(Vec::new()),
                linked: false,
            }];
            Some(source)
        }
        None => None,
    };
    let mut inputs = Inputs::open(&sources, opts.delimiter, opts.colsep.clone(), opts.link)
        .map_err(|e| Fatal(e.0))?;
    if opts.header {
        let split = opts
            .colsep
            .clone()
            .unwrap_or_else(|| Columns::Regex(regex::bytes::Regex::new("\t").expect("regex")));
        let mut columns = Vec::new();
        for line in inputs.take_headers().map_err(|e| Fatal(e.0))? {
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            columns.extend(split.split(line));
        }
        spec.name_columns(columns);
    }
    let columns = spec.columns.clone();
    let table = match &opts.results {
        Some(name) => Table::open(name, &columns, opts.keep_order())
            .transpose()
            .map_err(Fatal)?,
        None => None,
    };
    let mut maker = JobMaker::new(
        spec,
        sources.len(),
        check_positions && !opts.header,
        // --cat and --fifo: a job's value is its block's file, appended as GNU parallel does.
        // (--tee's values are not appended: GNU parallel appends none with --pipe.)
        !opts.batch.no_values && opts.pipe.as_ref().is_none_or(|p| p.as_file.is_some()),
    )?;
    maker.block_file = opts.pipe.as_ref().and_then(|p| p.as_file);
    maker.timeout = opts.timeout;
    maker.terminal = opts.terminal;
    maker.retries = opts.retries;
    maker.max_output = opts.max_output;
    maker.slots = opts.jobs;
    if let Some(remote) = &opts.remote {
        maker.set_remote(remote, opts.kill_grace.unwrap_or(Duration::from_secs(1)))?;
    }
    if table.is_some() {
        maker.keep_values = true;
    } else if let Some(name) = &opts.results {
        maker.set_results(name)?;
    } else if opts.files {
        let dir = opts.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
        maker.results = Some(ResultsLayout::Files(dir));
    }
    maker.start_perl()?;
    if opts.skip_first_line {
        inputs.next_tuple().map_err(|e| Fatal(e.0))?;
    }
    if opts.shuf {
        inputs.shuffle().map_err(|e| Fatal(e.0))?;
    }
    // --onall numbers each host's jobs after the previous host's, as GNU parallel's -k shows
    // them: host by host.
    let everywhere = opts.remote.as_ref().is_some_and(|r| r.everywhere);
    let needs_total = everywhere
        || opts.halt.is_some_and(|h| h.needs_total())
        || Progress::visible(opts.bar, opts.eta)
        || maker.uses_total();
    let total = match opts.total_jobs {
        Some(t) => Some(t),
        None if needs_total => {
            let inputs_left = inputs.count().map_err(|e| Fatal(e.0))?;
            // With -n N, N inputs make a job; with -m/-X the count is of inputs (an upper bound).
            Some(match opts.batch.per_job {
                Some(n) if !opts.batch.no_values => inputs_left.div_ceil(n.max(1) as u64),
                _ => inputs_left,
            })
        }
        None => None,
    };
    maker.total = total;
    let batcher = Batcher::new(inputs, opts.batch.clone());
    if opts.dry_run {
        return dry_run(batcher, blocks, &mut maker, opts.jobs, opts.shell_quote);
    }
    let progress = Progress::new(opts.bar, opts.eta, total, opts.summary);
    let stdout_taken = opts.events.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let mut printer = Printer::new(PrinterOptions {
        mode: opts.mode,
        tag: opts.tag,
        json: opts.json.as_deref(),
        json_timeline: opts.json_timeline,
        max_output: opts.max_output,
        // Output kept by --results is not printed, as in GNU parallel.
        stdout_taken: stdout_taken || opts.results.is_some(),
        files: opts.files && opts.results.is_none(),
        bar: progress.bar.clone(),
        verbose: opts.verbose,
        tmpdir: opts.tmpdir.as_deref(),
    })
    .map_err(|e| Fatal(e.to_string()))?;
    let mut reports = Reports {
        joblog: opts
            .joblog
            .as_deref()
            .map(|p| Joblog::open(p, opts.resume.is_some() || opts.joblog_append))
            .transpose()
            .map_err(|e| Fatal(e.to_string()))?,
        results: ((opts.results.is_some() && table.is_none()) || opts.files).then(Results::default),
        table,
        events: match &opts.events {
            Some(p) => Some(EventLog::new(open_output(p)?, opts.events_output)),
            None => None,
        },
        progress,
        error: None,
    };
    maker.stream = printer.wants_stream() || reports.results.is_some() || opts.events_output;
    maker.collect = printer.wants_collect() || reports.table.is_some();
    // With neither memory nor disk to spare, the job still read prints as it goes.
    printer.letting_through = !maker.stream && printer.lets_through();
    // Only --events and --results look at the start of a job.
    let mut builder = Herd::builder()
        // With hosts, each host limits its own jobs.
        .max_running(if opts.remote.is_some() {
            crate::options::NO_LIMIT
        } else {
            opts.jobs
        })
        .started_events(opts.events.is_some() || opts.results.is_some() || opts.files)
        // herd's other children (the Perl helper) stay in its process group.
        .adopt_orphans(true)
        .stream_when_full(printer.letting_through);
    // Process groups only: to test that level where cgroup v2 is available, and a way out
    // should a machine's cgroups misbehave.
    if std::env::var_os("HERD_NO_CGROUP").is_some() {
        builder = builder.use_cgroups(false);
    }
    if let Some(g) = opts.eof_grace {
        builder = builder.eof_grace(g);
    }
    if let Some(g) = opts.kill_grace {
        builder = builder.kill_grace(g);
    }
    if let Some(dir) = &opts.tmpdir {
        builder = builder.spill_dir(dir);
    }
    let herd = Arc::new(builder.build().map_err(|e| Fatal(e.to_string()))?);
    let containment = herd.containment();
    let terminal = opts.terminal.is_some();
    // -S: connect to the hosts; jobs start as soon as one is up. They wake the feeder when
    // they have room (the feed does not exist yet: it is found through `waker`).
    let waker: Arc<std::sync::OnceLock<Weak<Feed>>> = Arc::default();
    let hosts = match &opts.remote {
        Some(remote) => {
            let slots = remote.clone();
            let waker = waker.clone();
            let config = crate::remote::Config {
                logins: remote.logins.clone(),
                login_files: remote.login_files.clone(),
                ssh: remote.ssh.clone(),
                slots_for: Box::new(move |cpus| slots.slots_for(cpus)),
                basefiles: remote.basefiles.clone(),
                cleanup: remote.cleanup,
                wake: Box::new(move || {
                    if let Some(feed) = waker.get().and_then(Weak::upgrade) {
                        feed.room.notify_all();
                    }
                }),
            };
            Some(Arc::new(Hosts::start(config).map_err(Fatal)?))
        }
        None => None,
    };
    let feed_state = Arc::new(Feed {
        window: Mutex::new(Window {
            permits: opts.jobs,
            slots: Slots::default(),
            running: HashMap::new(),
            unrun: Vec::new(),
            skipped_total: 0,
            stop: false,
            input_error: None,
            waiting: VecDeque::new(),
        }),
        room: Condvar::new(),
        hold: Mutex::new(Some(herd.keep_open())),
        hosts: hosts.clone(),
    });
    let _ = waker.set(Arc::downgrade(&feed_state));
    let signal = watch_signals()?;
    let mut reader = ReaderWatch::new();
    let mut spill_told = false;
    let block_files = match opts.pipe.as_ref().and_then(|p| p.as_file) {
        Some(how) => Some(BlockFiles::new(how, opts.tmpdir.as_deref()).map_err(Fatal)?),
        None => None,
    };
    let feeder = Feeder {
        herd: Arc::downgrade(&herd),
        batcher,
        maker,
        skip,
        seq: 0,
        delay: opts.delay,
        last_start: None,
        verbose_stderr: opts.verbose_stderr,
        gate: Gate::new(opts.gate),
        said_why: false,
        keep_jobs: opts.gate.memfree.is_some(),
        input_done: false,
        blocks,
        block_files,
        tee,
        everywhere,
        hosts_at_once: opts.remote.as_ref().and_then(|r| r.hosts_at_once),
    };
    let mut inline = if never_blocks {
        Some(feeder)
    } else {
        let feed_state = feed_state.clone();
        std::thread::Builder::new()
            .name("herd-feeder".into())
            .spawn(move || feeder.run_thread(&feed_state))
            .map_err(|e| Fatal(format!("cannot start the input thread: {e}")))?;
        None
    };

    let mut counts = Counts::default();
    // The exit status of the job that made herd halt, once one has.
    let mut halted: Option<i32> = None;
    let mut stopped = false;
    let mut signalled = 0;
    // --timeout N%: the limit learned so far, and the jobs killed for passing it.
    let mut relative = opts.timeout_percent.map(RelativeTimeout::new);
    let mut killed_late = HashSet::new();
    // --memfree: jobs killed to free memory, to run again.
    let mut requeue = HashSet::new();
    loop {
        if !printer.broken && reader.gone() {
            // As a write that failed with a broken pipe.
            printer.broken = true;
        }
        if (printer.broken || reports.error.is_some()) && !stopped {
            // Nobody reads our output any more, or a report cannot be written: stop, and end
            // every job's tree.
            stopped = true;
            feed_state.stop();
            herd.cancel_all();
        }
        if let Some(feeder) = inline.as_mut() {
            if !feeder.fill(&feed_state) {
                inline = None;
            }
        }
        if let (Some(hosts), false) = (&hosts, stopped) {
            hosts.reload();
            if let Some(why) = hosts.all_down() {
                stopped = no_host_left(&feed_state, why);
            }
        }
        report_unrun(&feed_state, &mut printer, &mut reports, &mut counts);
        if opts.gate.must_free_memory() {
            // Under half of --memfree left: the youngest job makes room (unless it is alone).
            let window = feed_state.window.lock().unwrap();
            let youngest = window
                .running
                .iter()
                .filter(|(id, _)| !requeue.contains(*id))
                .max_by_key(|(_, info)| info.started)
                .map(|(id, _)| *id);
            if let (Some(id), true) = (youngest, window.running.len() - requeue.len() > 1) {
                requeue.insert(id);
                herd.cancel(id);
            }
        }
        if let Some(limit) = relative.as_ref().and_then(RelativeTimeout::limit) {
            let window = feed_state.window.lock().unwrap();
            for (id, info) in &window.running {
                if info.started.elapsed() > limit && killed_late.insert(*id) {
                    herd.cancel(*id);
                }
            }
        }
        let waiting = std::time::Instant::now();
        let event = herd.next_event_timeout(SIGNAL_CHECK);
        if signalled == 0 {
            signalled = signal.load(Ordering::SeqCst);
            if signalled != 0 {
                // Cancel every job (each tree gets SIGTERM, then SIGKILL; on Windows its job
                // object is terminated), start no new one, and report what finished.
                feed_state.stop();
                herd.cancel_all();
            }
        }
        if !spill_told {
            if let Some(problem) = herd.spill_problem() {
                printer.message(&format!("warning: {problem}"));
                spill_told = true;
            }
        }
        let Some(event) = event else {
            // Only the end of the event stream (every job reported, nothing held open, or the
            // engine gone) returns before the time is up.
            if waiting.elapsed() < SIGNAL_CHECK {
                break;
            }
            continue;
        };
        match event {
            Event::Started { id, pid, .. } => {
                let window = feed_state.window.lock().unwrap();
                if let Some(info) = window.running.get(&id) {
                    if let (Some(results), Some(files)) = (reports.results.as_mut(), &info.results)
                    {
                        let r = results.start(info.seq, files);
                        reports.check(r, "--results");
                    }
                    if let Some(events) = reports.events.as_mut() {
                        let r =
                            events.start(info.seq, info.slot, info.remote_host(), pid, &info.argv);
                        reports.check(r, "cannot write --events");
                    }
                }
            }
            Event::Output {
                id, stream, data, ..
            } => {
                let window = feed_state.window.lock().unwrap();
                if let Some(info) = window.running.get(&id) {
                    printer.chunk(id, info, stream, &data);
                    if let Some(results) = reports.results.as_mut() {
                        let r = results.write(info.seq, stream, &data);
                        reports.check(r, "--results");
                    }
                    if let Some(events) = reports.events.as_mut() {
                        let r = events.output(info.seq, stream, &data);
                        reports.check(r, "cannot write --events");
                    }
                }
            }
            Event::Finished(result) => {
                let (info, halting, still_running) = {
                    let mut window = feed_state.window.lock().unwrap();
                    let Some(mut info) = window.running.remove(&result.id) else {
                        continue;
                    };
                    if let Some(place) = host_at_fault(hosts.as_deref(), &info, &result) {
                        // The host failed (or refused the session), not the job: it runs
                        // again, on another host if that one is down, and this attempt is on
                        // record.
                        hosts.as_deref().expect("hosts").release(place);
                        printer.discard(result.id);
                        if let Some(log) = reports.joblog.as_mut() {
                            let r = log.row(info.seq, info.host(), &info.display(), &result);
                            reports.check(r, "--joblog");
                        }
                        if let Some(events) = reports.events.as_mut() {
                            let r = events.retry(info.seq, info.runs, info.remote_host(), &result);
                            reports.check(r, "cannot write --events");
                        }
                        info.attempts
                            .push(json::Attempt::of(info.remote_host(), &result));
                        if let Some(r) = info.remote.as_mut() {
                            r.place = None;
                        }
                        window.waiting.push_back(info);
                        feed_state.room.notify_one();
                        continue;
                    }
                    // --retries: run a failed job again in the same slot; only its last run is
                    // reported.
                    let retry = !result.success() && !result.cancelled && !window.stop;
                    let freed = requeue.remove(&result.id) && !window.stop;
                    if let (true, Some(hosts)) =
                        (retry && info.runs < opts.retries && !freed, &hosts)
                    {
                        if let Some(r) = info.remote.as_mut().filter(|r| r.pin.is_none()) {
                            // -S: it runs again on a host where it has not failed (GNU parallel's
                            // "on another computer"), before any new job that host could take.
                            if let Some(place) = r.place.take() {
                                if !r.failed_on.contains(&place.host) {
                                    r.failed_on.push(place.host);
                                }
                                hosts.release(place);
                            }
                            printer.discard(result.id);
                            if let Some(events) = reports.events.as_mut() {
                                let r =
                                    events.retry(info.seq, info.runs, info.remote_host(), &result);
                                reports.check(r, "cannot write --events");
                            }
                            info.attempts
                                .push(json::Attempt::of(info.remote_host(), &result));
                            info.runs += 1;
                            window.waiting.push_front(info);
                            feed_state.room.notify_one();
                            continue;
                        }
                    }
                    let again = if (retry && info.runs < opts.retries) || freed {
                        info.job.clone()
                    } else {
                        None
                    };
                    if freed {
                        printer.message(&format!(
                            "job {} was killed to free memory (--memfree) and will run again",
                            info.seq
                        ));
                    }
                    if let Some(job) = again {
                        if let Ok(id) = herd.submit(job) {
                            printer.discard(result.id);
                            if let Some(events) = reports.events.as_mut() {
                                let r =
                                    events.retry(info.seq, info.runs, info.remote_host(), &result);
                                reports.check(r, "cannot write --events");
                            }
                            // Killed for room, not failed: that run does not count.
                            if !freed {
                                info.runs += 1;
                                info.attempts
                                    .push(json::Attempt::of(info.remote_host(), &result));
                            }
                            info.started = std::time::Instant::now();
                            window.running.insert(id, info);
                            continue;
                        }
                    }
                    // Counted, and --halt decided, before the permit goes back: once halted, the
                    // feeder must not start another job.
                    counts.done += 1;
                    if result.success() {
                        counts.succeeded += 1;
                    } else {
                        counts.failed += 1;
                    }
                    let halting = opts
                        .halt
                        .filter(|h| halted.is_none() && h.reached(counts, total));
                    if let Some(halt) = halting {
                        halted = Some(halt.exit_status(&result, counts, total));
                        window.stop = true;
                    }
                    let still_running = window.running.len();
                    window.permits += 1;
                    window.slots.give(info.slot);
                    if let (Some(hosts), Some(place)) =
                        (&hosts, info.remote.as_ref().and_then(|r| r.place))
                    {
                        hosts.release(place);
                    }
                    (info, halting, still_running)
                };
                feed_state.room.notify_one();
                if let Outcome::SpawnFailed(e) = &result.outcome {
                    printer.message(&format!("job {}: {e}", info.seq));
                }
                if result.success() {
                    if let Some(relative) = relative.as_mut() {
                        relative.succeeded(result.duration);
                    }
                }
                if result.timed_out || killed_late.remove(&result.id) {
                    let t = match relative.as_ref().and_then(RelativeTimeout::limit) {
                        Some(limit) => format!(
                            "{:.3}s ({}% of the median runtime)",
                            limit.as_secs_f64(),
                            opts.timeout_percent.unwrap_or_default()
                        ),
                        None => format!("{}s", opts.timeout.unwrap_or_default().as_secs_f64()),
                    };
                    printer.message(&format!(
                        "job {} timed out after {t} and was killed: {}",
                        info.seq,
                        info.shown()
                    ));
                }
                if result.stopped_for_terminal {
                    let why = if terminal {
                        "herd is not the terminal's foreground job (run it in the foreground)"
                    } else {
                        "jobs run in their own process group, where a program that asks the \
                         terminal for input (ssh, sudo, git) waits for ever. Run it with --tty, \
                         or give it its input another way (ssh -n, sudo -S, a credential helper)"
                    };
                    printer.message(&format!(
                        "job {} was stopped for reading the terminal, and killed: {why}: {}",
                        info.seq,
                        info.shown()
                    ));
                }
                // A remote job's output is held by the host's master until the host has
                // ended the session (its wrapper kills the job's group there): nothing of the
                // job's own is left here.
                let remote = info
                    .remote
                    .as_ref()
                    .and_then(|r| r.place)
                    .is_some_and(|p| hosts.as_ref().is_some_and(|h| !h.is_local(p)));
                if result.leaked && !remote {
                    // Only a cgroup reaches every descendant; a process group misses those
                    // that left it, so say only what was done.
                    let what = match containment {
                        herd_engine::Containment::ProcessGroup => "its process group was killed",
                        _ => "they were killed",
                    };
                    printer.message(&format!(
                        "job {}: descendants still held its output after it exited; {what}: {}",
                        info.seq,
                        info.shown()
                    ));
                }
                if let Some(log) = reports.joblog.as_mut() {
                    let r = log.row(info.seq, info.host(), &info.display(), &result);
                    reports.check(r, "--joblog");
                }
                if let (Some(results), Some(files)) = (reports.results.as_mut(), &info.results) {
                    let r = results.finish(info.seq, files);
                    reports.check(r, "--results");
                }
                if let Some(table) = reports.table.as_mut() {
                    let row = Row {
                        seq: info.seq,
                        result: &result,
                        command: &info.line,
                        values: &info.values,
                    };
                    let r = table.row(&row);
                    reports.check(r, "--results");
                }
                if let Some(events) = reports.events.as_mut() {
                    let record = json::record(
                        info.seq,
                        info.remote_host(),
                        &info.attempts,
                        &info.argv,
                        &result,
                    );
                    let r = events.finish(&record);
                    reports.check(r, "cannot write --events");
                }
                reports.progress.advance();
                // Jobs killed by the halt itself get no note, as under GNU parallel.
                let note = opts
                    .halt
                    .filter(|_| !result.cancelled)
                    .and_then(|h| h.note(&result));
                if let Some(note) = note {
                    printer.message(&format!("{note}\n{}", info.shown()));
                }
                if let Some(halt) = halting {
                    if halt.when == When::Soon && still_running > 0 {
                        printer.message(&format!(
                            "Starting no more jobs. Waiting for {still_running} jobs to finish."
                        ));
                    }
                    feed_state.stop();
                    if halt.when == When::Now {
                        herd.cancel_all();
                    }
                }
                printer.finish(info, *result);
            }
        }
    }
    report_unrun(&feed_state, &mut printer, &mut reports, &mut counts);
    if let Some(table) = reports.table.as_mut() {
        let r = table.finish();
        reports.check(r, "--results");
    }
    let (skipped, input_error) = {
        let mut window = feed_state.window.lock().unwrap();
        (window.skipped_total, window.input_error.take())
    };
    printer.flush();
    // --round-robin: input the jobs did not all take (unless the run was stopped).
    let input_error = input_error.or_else(|| {
        let dealt = dealt.filter(|_| halted.is_none() && signalled == 0)?;
        let failure = dealt.lock().unwrap().failure();
        failure
    });
    // --tee, --shard, --bin: input read to no end, or lines that reached no job (unless the
    // run was stopped).
    let input_error = input_error.or_else(|| {
        let stopped = halted.is_some() || signalled != 0;
        let failed = failures.iter().find_map(|f| f.lock().unwrap().take());
        failed.filter(|_| !stopped)
    });
    let status = if let Some(e) = input_error.or(reports.error.take()) {
        printer.message(&e);
        255
    } else if signalled != 0 {
        128 + signalled as i32
    } else if let Some(status) = halted {
        status
    } else if printer.failure.is_some() {
        255
    } else if printer.broken {
        141
    } else {
        counts.failed.min(101) as i32
    };
    if let Some(events) = reports.events.as_mut() {
        let r = events.end(
            counts.done,
            counts.failed,
            skipped,
            status,
            reports.progress.elapsed(),
        );
        reports.check(r, "cannot write --events");
    }
    reports.progress.finish(counts.done, counts.failed, skipped);
    if let Some(hosts) = &hosts {
        hosts.end();
    }
    // The last reference: the feeder holds the herd weakly, and upgrades it only under the
    // window's lock. Dropping it removes the spill directory, even when the
    // feeder is still blocked reading input.
    let window = feed_state.window.lock().unwrap();
    drop(herd);
    drop(window);
    Ok(status)
}
