//! The library as a newcomer uses it: reading output wherever it lives, handles that are
//! dropped, a herd shared between threads, events awaited, results in completion order.

use herd_engine::{Event, Herd, Job, Outcome, Stdin};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A minimal executor: polls, and parks the thread until the future's waker is called.
/// `pending` counts the polls that returned `Pending`; a future that is never woken fails the
/// test after 30 s instead of hanging it.
fn block_on<F: Future>(future: F, pending: &AtomicUsize) -> F::Output {
    struct Unpark(std::thread::Thread, AtomicBool);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.store(true, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let unpark = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
    let waker = Waker::from(unpark.clone());
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        pending.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !unpark.1.swap(false, Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the future was never woken");
            std::thread::park_timeout(deadline - Instant::now());
        }
    }
}

/// A herd that spills anything past 4 KiB per stream to disk.
fn spilling_herd() -> Herd {
    Herd::builder().memory_per_stream(4096).build().unwrap()
}

/// 1 MiB of numbered lines: every offset's bytes are different.
const MIB_OF_LINES: &str = "seq 200000 | head -c 1048576";

#[test]
fn spilled_output_reads_the_same_from_any_number_of_threads_at_once() {
    let herd = spilling_herd();
    let result = herd.spawn(Job::shell(MIB_OF_LINES)).unwrap().wait();
    assert!(result.success(), "{}", result.outcome);
    assert!(result.stdout.is_spilled());
    let expected = result.stdout.to_vec().unwrap();
    assert_eq!(expected.len(), 1 << 20);
    let output = &result.stdout;
    // Two readers of one spill file used to share its file position, and each got a
    // truncated copy now and then (12 of 200 pairs).
    for _ in 0..100 {
        std::thread::scope(|s| {
            let copies: Vec<_> = (0..3)
                .map(|kind| {
                    s.spawn(move || match kind {
                        0 => output.to_vec().unwrap(),
                        1 => {
                            let mut v = Vec::new();
                            output.write_to(&mut v).unwrap();
                            v
                        }
                        _ => {
                            let mut v = Vec::new();
                            let mut file = tempfile::tempfile().unwrap();
                            output.write_to(&mut file).unwrap();
                            std::io::Seek::rewind(&mut file).unwrap();
                            std::io::Read::read_to_end(&mut file, &mut v).unwrap();
                            v
                        }
                    })
                })
                .collect();
            for copy in copies {
                let copy = copy.join().unwrap();
                assert_eq!(copy.len(), expected.len());
                assert!(copy == expected, "a reader got other bytes");
            }
        });
    }
}

#[test]
fn output_reads_in_one_call_in_memory_or_spilled() {
    let herd = spilling_herd();
    let small = herd.spawn(Job::shell("echo small")).unwrap();
    let large = herd.spawn(Job::shell(MIB_OF_LINES)).unwrap();
    let small = small.wait();
    assert!(!small.stdout.is_spilled());
    assert_eq!(small.stdout.text().unwrap(), "small\n");
    assert_eq!(&*small.stdout.bytes().unwrap(), b"small\n");
    assert_eq!(small.stdout.in_memory(), Some(&b"small\n"[..]));
    assert_eq!(small.stdout.into_vec().unwrap(), b"small\n");
    let large = large.wait();
    assert!(large.stdout.is_spilled());
    assert_eq!(large.stdout.in_memory(), None);
    let bytes = large.stdout.bytes().unwrap().into_owned();
    assert_eq!(bytes.len(), 1 << 20);
    assert!(bytes.starts_with(b"1\n2\n3\n"));
    assert_eq!(large.stdout.text().unwrap().len(), 1 << 20);
    assert_eq!(large.stdout.into_vec().unwrap(), bytes);
}

#[test]
fn keep_in_memory_never_spills() {
    let herd = Herd::builder()
        .memory_budget(1024)
        .keep_in_memory()
        .build()
        .unwrap();
    let result = herd.spawn(Job::shell(MIB_OF_LINES)).unwrap().wait();
    assert!(!result.stdout.is_spilled());
    assert_eq!(result.stdout.in_memory().map(<[u8]>::len), Some(1 << 20));
}

#[test]
fn a_dropped_handle_leaves_its_job_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out");
    let herd = Herd::new().unwrap();
    let (stdin, sender) = Stdin::stream(1 << 16);
    let job = Job::shell(format!(
        "cat > '{}.part' && mv '{0}.part' '{0}'",
        file.display()
    ));
    drop(herd.spawn(job.stdin(stdin)).unwrap());
    // The job is still there to take its input, and finishes its work.
    sender.send(b"still running\n".to_vec()).unwrap();
    drop(sender);
    testkit::wait_until("the job to finish its file", || file.exists());
    assert_eq!(std::fs::read(&file).unwrap(), b"still running\n");
}

#[test]
fn a_handle_with_cancel_on_drop_kills_its_job_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let sleep = testkit::long_sleep(31);
    let herd = Herd::new().unwrap();
    let job = Job::shell(format!("touch '{}'; sleep {sleep}", started.display()));
    let handle = herd.spawn(job.cancel_on_drop(true)).unwrap();
    testkit::wait_until("the job to start", || started.exists());
    assert!(!handle.is_finished());
    assert!(!testkit::processes_with(&sleep).is_empty());
    drop(handle);
    testkit::assert_gone(&sleep);
    // Finished handles cancel nothing: the herd goes on.
    let handle = herd
        .spawn(Job::shell("exit 0").cancel_on_drop(true))
        .unwrap();
    assert!(handle.wait().success());
}

#[test]
fn cancel_through_the_handle() {
    let sleep = testkit::long_sleep(32);
    let herd = Herd::new().unwrap();
    let handle = herd.spawn(Job::new("sleep").arg(&sleep)).unwrap();
    testkit::wait_until("the job to start", || {
        !testkit::processes_with(&sleep).is_empty()
    });
    handle.cancel();
    let result = handle.wait();
    assert!(result.cancelled);
    assert_eq!(result.outcome.to_string(), "killed by SIGTERM");
    testkit::assert_gone(&sleep);
}

#[test]
fn a_herd_is_shared_by_cloning_and_ends_with_its_last_clone() {
    let herd = Herd::new().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let herd = herd.clone();
            std::thread::spawn(move || {
                let handles: Vec<_> = (0..25)
                    .map(|i| herd.spawn(Job::shell(format!("echo {t}-{i}"))).unwrap())
                    .collect();
                let texts: Vec<String> = handles
                    .into_iter()
                    .map(|h| h.wait().stdout.text().unwrap())
                    .collect();
                (texts, herd)
            })
        })
        .collect();
    // The first herd goes first: its clones still run jobs.
    drop(herd);
    let mut clones = Vec::new();
    for (t, worker) in workers.into_iter().enumerate() {
        let (texts, herd) = worker.join().unwrap();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(text, &format!("{t}-{i}\n"));
        }
        clones.push(herd);
    }
    // The last clone's drop kills what still runs.
    let sleep = testkit::long_sleep(33);
    let last = clones.pop().unwrap();
    drop(clones);
    last.submit(Job::new("sleep").arg(&sleep)).unwrap();
    testkit::wait_until("the job to start", || {
        !testkit::processes_with(&sleep).is_empty()
    });
    drop(last);
    assert!(testkit::processes_with(&sleep).is_empty());
}

#[test]
fn events_can_be_awaited() {
    let herd = Herd::new().unwrap();
    let (stdin, sender) = Stdin::stream(1 << 16);
    herd.submit(Job::new("cat").stdin(stdin).stream_output(true))
        .unwrap();
    let pending = AtomicUsize::new(0);
    let events = std::thread::scope(|s| {
        let task = s.spawn(|| {
            block_on(
                async {
                    let mut seen = Vec::new();
                    while let Some(event) = herd.next_event_async().await {
                        seen.push(event);
                    }
                    seen
                },
                &pending,
            )
        });
        // Input only once the task waits: from then on only the waker can get it going.
        testkit::wait_until("the task to wait", || pending.load(Ordering::SeqCst) > 0);
        sender.send(b"awaited\n".to_vec()).unwrap();
        drop(sender);
        task.join().unwrap()
    });
    let output: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Output { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(output, b"awaited\n");
    assert!(matches!(events.last(), Some(Event::Finished(r)) if r.success()));
    // The stream has ended: the future says so at once.
    assert!(block_on(herd.next_event_async(), &pending).is_none());
}

#[test]
fn results_come_in_the_order_jobs_finish() {
    let herd = Herd::new().unwrap();
    let (stdin, sender) = Stdin::stream(1 << 16);
    let waits = herd.submit(Job::new("cat").stdin(stdin)).unwrap();
    let quick = herd.submit(Job::shell("echo quick")).unwrap();
    let mut results = herd.results();
    // The first job cannot end while its input is open: the second finishes first.
    let first = results.next().unwrap();
    assert_eq!(first.id, quick);
    assert_eq!(first.stdout.text().unwrap(), "quick\n");
    drop(sender);
    assert_eq!(results.next().unwrap().id, waits);
    assert!(results.next().is_none());
}

#[test]
fn outcomes_read_as_a_person_would_say_them() {
    let herd = Herd::new().unwrap();
    let said = |job: Job| herd.spawn(job).unwrap().wait().outcome.to_string();
    assert_eq!(said(Job::shell("exit 3")), "exit 3");
    assert_eq!(said(Job::shell("kill -9 $$")), "killed by SIGKILL");
    assert_eq!(
        said(Job::new("no-such-program-herd")),
        "could not start: program not found: no-such-program-herd"
    );
    assert!(matches!(
        herd.spawn(Job::new("no-such-program-herd"))
            .unwrap()
            .wait()
            .outcome,
        Outcome::SpawnFailed(_)
    ));
}

/// A herd with one slot and room for `max_queued` waiting jobs, its slot taken by a job that
/// runs until the returned sender is dropped (the end of its input).
fn one_busy_slot(max_queued: usize) -> (Herd, herd_engine::StdinSender) {
    let herd = Herd::builder()
        .max_running(1)
        .max_queued(max_queued)
        .build()
        .unwrap();
    let (stdin, sender) = Stdin::stream(1 << 16);
    herd.submit(Job::new("cat").stdin(stdin)).unwrap();
    testkit::wait_until("the first job to start", || herd.queued() == 0);
    (herd, sender)
}

#[test]
fn max_queued_holds_submitters_back_until_jobs_start() {
    let (herd, sender) = one_busy_slot(3);
    let submitted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let submitter = s.spawn(|| {
            for i in 0..10 {
                herd.submit(Job::shell(format!("echo {i}"))).unwrap();
                // Never more waiting than the bound, right after a submission returns.
                assert!(herd.queued() <= 3, "{} queued", herd.queued());
                submitted.fetch_add(1, Ordering::SeqCst);
            }
        });
        testkit::wait_until("three jobs to be queued", || {
            submitted.load(Ordering::SeqCst) == 3
        });
        assert_eq!(herd.queued(), 3);
        // The slot frees: the others go through it one by one.
        drop(sender);
        submitter.join().unwrap();
    });
    assert_eq!(submitted.load(Ordering::SeqCst), 10);
    assert_eq!(herd.results().filter(|r| r.success()).count(), 11);
    assert_eq!(herd.queued(), 0);
}

#[test]
fn tags_come_back_in_events_and_results() {
    let herd = Herd::new().unwrap();
    for name in ["alpha", "beta"] {
        herd.submit(
            Job::shell(format!("echo {name}"))
                .stream_output(true)
                .tag(name),
        )
        .unwrap();
    }
    let tagged = herd.spawn(Job::shell("exit 2").tag("handle")).unwrap();
    let failed = herd
        .spawn(Job::new("no-such-program-herd").tag("missing"))
        .unwrap();
    let (mut started, mut output, mut finished) = (0, 0, 0);
    for event in herd.events() {
        match event {
            Event::Started { tag, .. } => {
                assert!(matches!(tag.as_deref(), Some("alpha" | "beta")));
                started += 1;
            }
            Event::Output { tag, data, .. } => {
                assert_eq!(format!("{}\n", tag.unwrap()).as_bytes(), &data[..]);
                output += 1;
            }
            Event::Finished(r) => {
                assert!(matches!(r.tag.as_deref(), Some("alpha" | "beta")));
                finished += 1;
            }
        }
    }
    assert_eq!((started, output, finished), (2, 2, 2));
    assert_eq!(tagged.wait().tag.as_deref(), Some("handle"));
    assert_eq!(failed.wait().tag.as_deref(), Some("missing"));
}

#[test]
fn an_async_submission_waits_for_queue_room_without_a_thread() {
    // The slot is taken until we close the first job's input; one more job fills the queue.
    let (herd, sender) = one_busy_slot(1);
    herd.submit(Job::shell("echo queued")).unwrap();
    assert_eq!(herd.queued(), 1);
    let pending = AtomicUsize::new(0);
    let id = std::thread::scope(|s| {
        let task = s.spawn(|| block_on(herd.submit_async(Job::shell("echo third")), &pending));
        // The task waits: the queue is full. Room comes when the first job ends.
        testkit::wait_until("the submission to wait", || {
            pending.load(Ordering::SeqCst) > 0
        });
        assert_eq!(herd.queued(), 1);
        drop(sender);
        task.join().unwrap()
    });
    let id = id.unwrap();
    let results: Vec<_> = herd.results().collect();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.success()));
    let third = results.iter().find(|r| r.id == id).unwrap();
    assert_eq!(third.stdout.text().unwrap(), "third\n");
}
