//! The engine against real processes: exact capture, no deadlock, trees killed, results.
#![cfg(unix)]

use herd_engine::{Environment, Event, Herd, Job, Outcome, Stdin, Stream};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use testkit::{assert_gone, data_files, long_sleep, Rng, SPEW};

#[test]
fn byte_exact_capture_of_many_jobs_on_both_streams() {
    byte_exact_capture(Herd::builder().max_running(64));
}

/// With 4 KiB of memory per stream most outputs spill: their first bytes go through herd's
/// memory into the file, the rest from the pipe into the file in the kernel (Linux).
#[test]
fn byte_exact_capture_of_many_jobs_spilling_to_disk() {
    byte_exact_capture(Herd::builder().max_running(64).memory_per_stream(4096));
}

fn byte_exact_capture(builder: herd_engine::Builder) {
    let dir = tempfile::tempdir().unwrap();
    let files = data_files(dir.path(), 64, 7);
    let herd = builder.build().unwrap();
    let mut rng = Rng(42);
    let mut expected = HashMap::new();
    for _ in 0..500 {
        let (out, err) = (rng.below(64) as usize, rng.below(64) as usize);
        let (bs_out, bs_err) = (1 + rng.below(9000), 1 + rng.below(9000));
        let job = Job::new("sh").args([
            "-c".as_ref(),
            SPEW.as_ref(),
            "sh".as_ref(),
            files[out].0.as_os_str(),
            bs_out.to_string().as_ref(),
            files[err].0.as_os_str(),
            bs_err.to_string().as_ref(),
        ]);
        let id = herd.submit(job).unwrap();
        expected.insert(id, (out, err));
    }
    let mut finished = 0;
    for event in herd.events() {
        if let Event::Finished(r) = event {
            let (out, err) = expected[&r.id];
            assert!(r.success(), "{:?}", r.outcome);
            assert!(
                r.stdout.to_vec().unwrap() == files[out].1,
                "job {} stdout differs",
                r.id
            );
            assert!(
                r.stderr.to_vec().unwrap() == files[err].1,
                "job {} stderr differs",
                r.id
            );
            finished += 1;
        }
    }
    assert_eq!(finished, 500);
}

fn large_on_one_stream_first(first: &str, second: &str) {
    let herd = Herd::new().unwrap();
    let script = format!("head -c 50000000 /dev/zero >&{first}; echo done >&{second}");
    let r = herd
        .spawn(Job::new("sh").args(["-c", &script]))
        .unwrap()
        .wait();
    assert!(r.success(), "{:?}", r.outcome);
    let (big, small) = if first == "2" {
        (&r.stderr, &r.stdout)
    } else {
        (&r.stdout, &r.stderr)
    };
    assert_eq!(big.len(), 50_000_000);
    assert!(big.is_spilled(), "50 MB must not stay in memory");
    let mut zeros = [0u8; 65536];
    let mut reader = big.reader().unwrap();
    let mut total = 0;
    loop {
        let n = std::io::Read::read(&mut reader, &mut zeros).unwrap();
        if n == 0 {
            break;
        }
        assert!(zeros[..n].iter().all(|&b| b == 0));
        total += n;
    }
    assert_eq!(total, 50_000_000);
    assert_eq!(small.to_vec().unwrap(), b"done\n");
}

#[test]
fn no_deadlock_with_50_mb_on_stderr_before_stdout() {
    large_on_one_stream_first("2", "1");
}

#[test]
fn no_deadlock_with_50_mb_on_stdout_before_stderr() {
    large_on_one_stream_first("1", "2");
}

#[test]
fn a_grandchild_holding_the_pipe_is_killed_after_the_grace() {
    let sleep = long_sleep(1);
    let herd = Herd::builder()
        .eof_grace(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = herd
        .spawn(Job::new("sh").args(["-c", &format!("sleep {sleep} & echo hi")]))
        .unwrap()
        .wait();
    assert!(r.success());
    assert!(r.leaked, "the result says descendants held the pipe");
    assert_eq!(r.stdout.to_vec().unwrap(), b"hi\n");
    assert!(
        r.duration < Duration::from_secs(60),
        "did not wait for the grandchild"
    );
    assert_gone(&sleep);
}

#[test]
fn a_child_that_closes_its_output_and_keeps_running_is_waited_for() {
    // EOF is not exit: the job is complete only when the process has exited too.
    let herd = Herd::new().unwrap();
    let r = herd
        .spawn(Job::new("sh").args(["-c", "echo before; exec >&- 2>&-; sleep 0.5; exit 7"]))
        .unwrap()
        .wait();
    assert_eq!(r.stdout.to_vec().unwrap(), b"before\n");
    assert_eq!(r.exit_code(), Some(7));
    assert!(!r.leaked);
}

#[test]
fn timeout_kills_the_whole_tree_even_when_sigterm_is_ignored() {
    let sleep = long_sleep(2);
    let herd = Herd::builder()
        .kill_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    // The shell and its background sleep both ignore SIGTERM: only SIGKILL ends them.
    let script = format!("trap '' TERM; sleep {sleep} & echo started; wait");
    let r = herd
        .spawn(
            Job::new("sh")
                .args(["-c", &script])
                .timeout(Duration::from_secs(1)),
        )
        .unwrap()
        .wait();
    assert!(r.timed_out);
    assert!(!r.success());
    assert_eq!(r.signal(), Some(9), "{:?}", r.outcome);
    assert_eq!(r.stdout.to_vec().unwrap(), b"started\n");
    assert_gone(&sleep);
}

#[test]
fn missing_and_unexecutable_programs_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let not_exec = dir.path().join("script.sh");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").unwrap();
    let herd = Herd::new().unwrap();
    let missing = herd.spawn(Job::new("herd-no-such-program")).unwrap();
    let denied = herd.spawn(Job::new(&not_exec)).unwrap();
    let fine = herd.spawn(Job::new("echo").arg("still here")).unwrap();
    let missing = missing.wait();
    match &missing.outcome {
        Outcome::SpawnFailed(e) => {
            assert_eq!(e.to_string(), "program not found: herd-no-such-program")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(missing.exit_code(), Some(127));
    let denied = denied.wait();
    assert!(
        matches!(denied.outcome, Outcome::SpawnFailed(_)),
        "{:?}",
        denied.outcome
    );
    assert_eq!(denied.exit_code(), Some(126));
    assert_eq!(fine.wait().stdout.to_vec().unwrap(), b"still here\n");
}

/// herd looks a program up in PATH once per run and remembers where it was. When that file
/// goes, the job that finds it gone fails naming the program (or, where the spawn waits for the
/// exec, is retried at once), and the jobs after it look again and find the next one in PATH.
#[test]
fn a_program_that_vanishes_mid_run_is_looked_up_again() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (dir, word) in dirs.iter().zip(["first", "second"]) {
        let prog = dir.path().join("herd-test-prog");
        std::fs::write(&prog, format!("#!/bin/sh\necho {word}\n")).unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = std::env::join_paths(dirs.iter().map(|d| d.path())).unwrap();
    let herd = Herd::new().unwrap();
    let run = || {
        let job = Job::new("herd-test-prog").env("PATH", &path);
        herd.spawn(job).unwrap().wait()
    };
    assert_eq!(run().stdout.to_vec().unwrap(), b"first\n");
    std::fs::remove_file(dirs[0].path().join("herd-test-prog")).unwrap();
    let after = run();
    if testkit::expected_spawner_threads() == 0 {
        // clone3: the failed exec is seen only as the child exits.
        match &after.outcome {
            Outcome::SpawnFailed(e) => {
                assert_eq!(e.to_string(), "program not found: herd-test-prog")
            }
            other => panic!("{other:?}"),
        }
    } else {
        assert_eq!(after.stdout.to_vec().unwrap(), b"second\n");
    }
    assert_eq!(run().stdout.to_vec().unwrap(), b"second\n");
}

#[test]
fn a_missing_working_directory_fails_the_job_naming_it() {
    let herd = Herd::new().unwrap();
    let r = herd
        .spawn(Job::new("true").current_dir("/nonexistent/herd-dir"))
        .unwrap()
        .wait();
    match &r.outcome {
        Outcome::SpawnFailed(e) => assert!(
            e.to_string()
                .starts_with("working directory /nonexistent/herd-dir:"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stdin_env_and_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "from a file\n").unwrap();
    let herd = Herd::new().unwrap();
    let big: Vec<u8> = Rng(3).bytes(1 << 20);
    let bytes = herd
        .spawn(Job::new("cat").stdin(Stdin::bytes(big.clone())))
        .unwrap();
    let file = herd
        .spawn(Job::new("cat").stdin(Stdin::file(dir.path().join("input.txt"))))
        .unwrap();
    let null = herd.spawn(Job::new("cat")).unwrap();
    let env = herd
        .spawn(
            Job::new("sh")
                .args(["-c", "echo $HERD_TEST_VAR"])
                .env("HERD_TEST_VAR", "set"),
        )
        .unwrap();
    let cwd = herd.spawn(Job::new("pwd").current_dir(dir.path())).unwrap();
    let cleared = herd
        .spawn(Job::new("/usr/bin/env").env_clear().env("ONLY", "1"))
        .unwrap();
    assert!(
        bytes.wait().stdout.to_vec().unwrap() == big,
        "1 MiB through stdin, exactly"
    );
    assert_eq!(file.wait().stdout.to_vec().unwrap(), b"from a file\n");
    assert_eq!(null.wait().stdout.len(), 0);
    assert_eq!(env.wait().stdout.to_vec().unwrap(), b"set\n");
    let pwd = cwd.wait().stdout.to_vec().unwrap();
    assert_eq!(
        String::from_utf8(pwd).unwrap().trim(),
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(cleared.wait().stdout.to_vec().unwrap(), b"ONLY=1\n");
}

/// Each job gets exactly its byte range of one file, whatever the range: inside, across the
/// end, past the end, empty; jobs that read only part of it or nothing end normally.
#[test]
fn file_ranges_feed_each_job_exactly_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let data = Rng(11).bytes(5 << 20);
    std::fs::write(&path, &data).unwrap();
    let herd = Herd::builder().max_running(16).build().unwrap();
    let mut rng = Rng(12);
    let mut ranges: Vec<(u64, u64)> = (0..60)
        .map(|_| {
            let offset = rng.below(data.len() as u64 + 100);
            (offset, rng.below(3 << 20))
        })
        .collect();
    ranges.extend([
        (0, 0),
        (0, data.len() as u64),
        (data.len() as u64 - 7, 1 << 20),
    ]);
    let handles: Vec<_> = ranges
        .iter()
        .map(|&(offset, len)| {
            herd.spawn(Job::new("cat").stdin(Stdin::file_range(&path, offset, len)))
                .unwrap()
        })
        .collect();
    // Jobs that read a little, or nothing, of a large range.
    let head = herd
        .spawn(
            Job::new("head")
                .args(["-c", "10"])
                .stdin(Stdin::file_range(&path, 3, 4 << 20)),
        )
        .unwrap();
    let deaf = herd
        .spawn(Job::new("true").stdin(Stdin::file_range(&path, 0, 5 << 20)))
        .unwrap();
    for (handle, (offset, len)) in handles.into_iter().zip(ranges) {
        let start = (offset as usize).min(data.len());
        let end = (offset + len).min(data.len() as u64) as usize;
        let result = handle.wait();
        assert!(result.success(), "{offset}+{len}: {:?}", result.outcome);
        let out = result.stdout.to_vec().unwrap();
        assert!(
            out == data[start..end],
            "{offset}+{len}: {} bytes",
            out.len()
        );
    }
    assert_eq!(head.wait().stdout.to_vec().unwrap(), data[3..13]);
    assert!(deaf.wait().success());
    // The kernel will not splice from this file (EINVAL): it is read a piece at a time.
    let cmdline = format!("/proc/{}/cmdline", std::process::id());
    let expected = std::fs::read(&cmdline).unwrap();
    let unspliceable = herd
        .spawn(Job::new("cat").stdin(Stdin::file_range(&cmdline, 2, 1 << 20)))
        .unwrap();
    assert_eq!(unspliceable.wait().stdout.to_vec().unwrap(), expected[2..]);
    let missing = herd
        .spawn(Job::new("cat").stdin(Stdin::file_range(dir.path().join("none"), 0, 1)))
        .unwrap()
        .wait();
    assert!(
        matches!(missing.outcome, Outcome::SpawnFailed(_)),
        "{:?}",
        missing.outcome
    );
}

/// A job's stdin made of parts: bytes, a range of a file, a whole file and nothing, in turn.
#[test]
fn concatenated_stdin_parts_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let data = Rng(21).bytes(3 << 20);
    std::fs::write(&path, &data).unwrap();
    let herd = Herd::new().unwrap();
    let stdin = Stdin::Concat(vec![
        Stdin::bytes("header\n"),
        Stdin::file_range(&path, 5, 2 << 20),
        Stdin::Null,
        Stdin::bytes(""),
        Stdin::file(&path),
        Stdin::Concat(vec![Stdin::bytes("end")]),
    ]);
    let out = herd
        .spawn(Job::new("cat").stdin(stdin))
        .unwrap()
        .wait()
        .stdout
        .to_vec()
        .unwrap();
    let expected = [b"header\n", &data[5..5 + (2 << 20)], &data[..], b"end"].concat();
    assert!(out == expected, "{} bytes of {}", out.len(), expected.len());
}

/// Streamed stdins: one thread deals random blocks to many running jobs, to whichever has
/// room (`try_send`, woken by `on_room`), and each job's output is exactly what it was sent.
#[test]
fn streamed_stdins_feed_running_jobs_exactly() {
    let herd = Herd::builder().max_running(64).build().unwrap();
    let (room_tx, room_rx) = std::sync::mpsc::channel::<()>();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..24 {
        let (stdin, sender) = Stdin::stream(64 * 1024);
        let tx = room_tx.clone();
        sender.on_room(move || {
            let _ = tx.send(());
        });
        handles.push(herd.spawn(Job::new("cat").stdin(stdin)).unwrap());
        senders.push(sender);
    }
    let mut rng = Rng(31);
    let mut sent = vec![Vec::new(); senders.len()];
    let mut next = 0;
    for _ in 0..2000 {
        let len = 1 + rng.below(40_000) as usize;
        let block = rng.bytes(len);
        'deal: loop {
            for i in (0..senders.len()).map(|k| (next + k) % senders.len()) {
                match senders[i].try_send(block.clone()) {
                    Ok(()) => {
                        sent[i].extend_from_slice(&block);
                        next = i + 1;
                        break 'deal;
                    }
                    Err(herd_engine::TrySendError::Full(_)) => {}
                    Err(e) => panic!("cat's stdin closed: {e:?}"),
                }
            }
            room_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a job makes room");
        }
    }
    drop(senders);
    for (handle, sent) in handles.into_iter().zip(sent) {
        let result = handle.wait();
        assert!(result.success(), "{:?}", result.outcome);
        assert!(
            result.stdout.to_vec().unwrap() == sent,
            "a job's output differs"
        );
    }
}

/// A stream holds what the pipe holds plus about its limit: a job that reads nothing fills
/// both, and then `try_send` says Full. When the job ends, its stream says Closed and gives
/// back what was queued and never written.
#[test]
fn a_streams_queue_is_bounded_and_gives_back_what_was_not_written() {
    let herd = Herd::new().unwrap();
    let (stdin, sender) = Stdin::stream(100_000);
    let job = herd
        .spawn(Job::new("sleep").arg(long_sleep(7)).stdin(stdin))
        .unwrap();
    let block = vec![b'x'; 16 * 1024];
    let mut accepted = 0;
    // The event loop moves queued blocks into the pipe as it drains; once the pipe is full
    // the queue fills up to its limit, and stays full.
    testkit::wait_until("the stream to fill", || {
        match sender.try_send(block.clone()) {
            Ok(()) => accepted += block.len(),
            Err(herd_engine::TrySendError::Full(_)) => return sender.queued() >= 100_000,
            Err(e) => panic!("{e:?}"),
        }
        false
    });
    // A pipe holds at most 1 MiB here; the queue its limit and one block more, and the
    // event loop one block it has taken and cannot write yet.
    assert!(
        accepted <= (1 << 20) + 100_000 + 2 * block.len(),
        "{accepted} bytes taken"
    );
    herd.cancel(job.id());
    assert!(!job.wait().success());
    testkit::wait_until("the stream to close", || sender.is_closed());
    match sender.try_send(b"late".to_vec()) {
        Err(herd_engine::TrySendError::Closed(bytes)) => assert_eq!(bytes, b"late"),
        other => panic!("{other:?}"),
    }
    let unsent: usize = sender.take_unsent().iter().map(Vec::len).sum();
    assert!(unsent >= 100_000, "{unsent} bytes given back");
}

/// A job started from a captured environment sees exactly what the same changes over herd's
/// own environment give: the variables in the same order, a removed one gone, the last of two
/// settings kept.
#[test]
fn a_captured_environment_gives_the_same_environment_as_herds_own() {
    let herd = Herd::new().unwrap();
    let captured = Environment::capture();
    let changes = |job: Job| {
        job.env("HERD_A", "1")
            .env_remove("HOME")
            .env("HERD_B", "b")
            .env("HERD_A", "2")
    };
    let own = herd.spawn(changes(Job::new("/usr/bin/env"))).unwrap();
    let shared = herd
        .spawn(changes(Job::new("/usr/bin/env").environment(&captured)))
        .unwrap();
    let untouched = herd
        .spawn(Job::new("/usr/bin/env").environment(&captured))
        .unwrap();
    let own = own.wait().stdout.to_vec().unwrap();
    assert_eq!(shared.wait().stdout.to_vec().unwrap(), own);
    let own = String::from_utf8(own).unwrap();
    assert!(own.ends_with("HERD_B=b\nHERD_A=2\n"), "{own}");
    assert!(!own.lines().any(|l| l.starts_with("HOME=")), "{own}");
    let untouched = String::from_utf8(untouched.wait().stdout.to_vec().unwrap()).unwrap();
    let expected: String = std::env::vars_os()
        .map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    assert_eq!(untouched, expected);
}

#[test]
fn children_start_with_default_signals_and_their_own_process_group() {
    let herd = Herd::new().unwrap();
    // Rust ignores SIGPIPE; a child must not inherit that: `yes | head` must end `yes` by
    // SIGPIPE, not by a "Broken pipe" write error.
    let r = herd
        .spawn(Job::new("sh").args(["-c", "yes | head -n 1"]))
        .unwrap()
        .wait();
    assert_eq!(r.stdout.to_vec().unwrap(), b"y\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr.to_vec().unwrap()), "");
    let r = herd
        .spawn(Job::new("sh").args(["-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status"]))
        .unwrap()
        .wait();
    let status = String::from_utf8(r.stdout.to_vec().unwrap()).unwrap();
    let mask = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{status}");
    // Ignored signals are inherited (as from a shell under `nohup`), except SIGPIPE (bit 13),
    // which only Rust's start-up ignored.
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let our_ignored = ours.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
    let our_ignored = u64::from_str_radix(our_ignored.split('\t').nth(1).unwrap(), 16).unwrap();
    assert_ne!(
        our_ignored & (1 << 12),
        0,
        "the test itself ignores SIGPIPE"
    );
    assert_eq!(mask("SigIgn:"), our_ignored & !(1 << 12), "{status}");
    let r = herd
        .spawn(Job::new("sh").args(["-c", "ps -o pid=,pgid= -p $$"]))
        .unwrap()
        .wait();
    let text = String::from_utf8(r.stdout.to_vec().unwrap()).unwrap();
    let ids: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(ids.len(), 2, "{text}");
    assert_eq!(ids[0], ids[1], "the job leads its own process group");
}

#[test]
fn results_report_status_signal_time_and_usage() {
    let herd = Herd::new().unwrap();
    let r = herd
        .spawn(Job::new("sh").args(["-c", "exit 3"]))
        .unwrap()
        .wait();
    assert_eq!(r.exit_code(), Some(3));
    assert!(!r.success());
    let r = herd
        .spawn(Job::new("sh").args(["-c", "kill -KILL $$"]))
        .unwrap()
        .wait();
    assert_eq!(r.signal(), Some(9));
    assert_eq!(herd_engine::signal_name(9), Some("SIGKILL"));
    assert_eq!(r.exit_code(), None);
    // A busy loop uses CPU time; a large allocation shows in max RSS.
    let r = herd
        .spawn(Job::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]))
        .unwrap()
        .wait();
    assert!(r.usage.user_time + r.usage.system_time > Duration::ZERO);
    assert!(r.usage.max_rss_kb > 0);
    assert!(r.duration >= r.usage.user_time.min(r.duration));
    assert!(r.start_time <= std::time::SystemTime::now());
}

#[test]
fn streamed_output_arrives_in_order_between_started_and_finished() {
    let herd = Herd::new().unwrap();
    let id = herd
        .submit(
            Job::new("sh")
                .args(["-c", "for i in 1 2 3; do echo line $i; done"])
                .stream_output(true),
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut streamed = Vec::new();
    for event in herd.events() {
        match event {
            Event::Started { id: i, pid, .. } => {
                assert_eq!(i, id);
                assert!(pid > 0);
                seen.push("started");
            }
            Event::Output {
                stream: Stream::Stdout,
                data,
                ..
            } => {
                streamed.extend_from_slice(&data);
                seen.push("output");
            }
            Event::Output { .. } => panic!("no stderr expected"),
            Event::Finished(r) => {
                assert_eq!(
                    r.stdout.to_vec().unwrap(),
                    streamed,
                    "collected equals streamed"
                );
                seen.push("finished");
            }
        }
    }
    assert_eq!(seen.first(), Some(&"started"));
    assert_eq!(seen.last(), Some(&"finished"));
    assert_eq!(streamed, b"line 1\nline 2\nline 3\n");
}

#[test]
fn a_slow_consumer_of_streamed_output_loses_nothing() {
    // The event buffer is tiny: herd must stop reading (children block) rather than grow or drop.
    let herd = Herd::builder().event_buffer(4096).build().unwrap();
    for _ in 0..4 {
        herd.submit(
            Job::new("head")
                .args(["-c", "3000000", "/dev/urandom"])
                .stream_output(true)
                .collect_output(false),
        )
        .unwrap();
    }
    let mut per_job: HashMap<herd_engine::JobId, u64> = HashMap::new();
    for event in herd.events() {
        match event {
            Event::Output { id, data, .. } => *per_job.entry(id).or_default() += data.len() as u64,
            Event::Finished(r) => {
                assert!(r.success());
                assert_eq!(r.stdout.len(), 3_000_000, "counted even when not collected");
                assert_eq!(r.stdout.in_memory(), Some(&[][..]), "not collected");
            }
            Event::Started { .. } => {}
        }
    }
    assert_eq!(per_job.len(), 4);
    assert!(per_job.values().all(|&n| n == 3_000_000), "{per_job:?}");
}

#[test]
fn cancel_kills_running_trees_and_drops_queued_jobs() {
    let sleep = long_sleep(3);
    let herd = Herd::builder()
        .max_running(2)
        .kill_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    let script = format!("sleep {sleep} & echo up; wait");
    let ids: Vec<_> = (0..4)
        .map(|_| {
            herd.submit(Job::new("sh").args(["-c", &script]).stream_output(true))
                .unwrap()
        })
        .collect();
    let mut up = 0;
    let mut cancelled = 0;
    for event in herd.events() {
        match event {
            Event::Output { .. } => {
                up += 1;
                if up == 2 {
                    // Both running jobs have started their grandchildren; two jobs still queue.
                    herd.cancel_all();
                }
            }
            Event::Finished(r) => {
                assert!(r.cancelled);
                assert!(!r.success());
                cancelled += 1;
            }
            Event::Started { .. } => {}
        }
    }
    assert_eq!(cancelled, ids.len());
    assert_gone(&sleep);
}

#[test]
fn dropping_the_herd_leaves_no_process_behind() {
    let sleep = long_sleep(4);
    let herd = Herd::builder()
        .kill_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    herd.submit(
        Job::new("sh")
            .args(["-c", &format!("sleep {sleep} & echo up; wait")])
            .stream_output(true),
    )
    .unwrap();
    // Wait for the grandchild to exist.
    loop {
        if let Some(Event::Output { .. }) = herd.next_event() {
            break;
        }
    }
    drop(herd);
    assert_gone(&sleep);
}

#[test]
fn concurrent_spawns_never_inherit_each_others_pipes() {
    // If a pipe end herd creates were inheritable even briefly, a long-lived job spawned at the
    // same moment by the other spawner could inherit a quick job's write end, and the quick
    // job's EOF would wait for the long one's exit. The long jobs here end only when the test
    // cancels them, after every quick job has finished; a quick job whose pipe leaked into a
    // long one reaches the end of its EOF grace instead, and says so.
    let herd = Herd::builder()
        .max_running(64)
        .eof_grace(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut sleepers = Vec::new();
    for round in 0..8 {
        sleepers.push(herd.submit(Job::new("sleep").arg("600")).unwrap());
        for i in 0..50 {
            herd.submit(Job::new("echo").arg(format!("{round}-{i}")))
                .unwrap();
        }
    }
    let mut quick_done = 0;
    for event in herd.events() {
        if let Event::Finished(r) = event {
            assert!(!r.leaked);
            if sleepers.contains(&r.id) {
                assert_eq!(
                    quick_done, 400,
                    "every quick job finished before any sleeper"
                );
            } else {
                quick_done += 1;
                if quick_done == 400 {
                    sleepers.iter().for_each(|&id| herd.cancel(id));
                }
            }
        }
    }
}

#[test]
fn jobs_built_from_std_command() {
    let herd = Herd::new().unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo $X"]).env("X", "from std");
    let r = herd.spawn(&cmd).unwrap().wait();
    assert_eq!(r.stdout.to_vec().unwrap(), b"from std\n");
}

#[test]
fn a_future_per_job_with_a_hand_made_executor() {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let herd = Herd::new().unwrap();
    let futures: Vec<_> = (0..20)
        .map(|i| herd.spawn(Job::new("echo").arg(i.to_string())).unwrap())
        .collect();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    for (i, f) in futures.into_iter().enumerate() {
        let mut f = std::pin::pin!(f);
        let r = loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(r) => break r,
                Poll::Pending => std::thread::park(),
            }
        };
        assert_eq!(r.stdout.to_vec().unwrap(), format!("{i}\n").into_bytes());
    }
}

/// `max_output` keeps exactly the first and last halves, whether the head stays in memory or
/// spills to disk, and whatever the sizes of the child's writes.
#[test]
fn max_output_keeps_head_and_tail_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let data = rng.bytes(3_000_000);
    let path = dir.path().join("data.bin");
    std::fs::write(&path, &data).unwrap();
    // A tiny per-stream memory cap makes the head spill; the default keeps it in memory.
    for per_stream in [16 * 1024, 1 << 20] {
        let herd = Herd::builder()
            .memory_per_stream(per_stream)
            .build()
            .unwrap();
        for (max, block) in [(1000u64, 4096), (100_001, 777), (5_000_000, 65536), (0, 10)] {
            let job = Job::new("dd")
                .arg(format!("if={}", path.display()))
                .arg(format!("bs={block}"))
                .arg("status=none")
                .max_output(max);
            let r = herd.spawn(job).unwrap().wait();
            assert!(r.success(), "{:?}", r.outcome);
            let kept = r.stdout.to_vec().unwrap();
            assert_eq!(r.stdout.len(), data.len() as u64);
            if max as usize >= data.len() {
                assert!(r.stdout.cut().is_none());
                assert!(kept == data, "uncut output differs");
                continue;
            }
            let (head, tail) = ((max - max / 2) as usize, (max / 2) as usize);
            let cut = r.stdout.cut().expect("a cut");
            assert_eq!(cut.offset, head as u64);
            assert_eq!(cut.bytes, (data.len() - head - tail) as u64);
            assert_eq!(r.stdout.kept_len(), max);
            assert_eq!(kept.len(), head + tail, "max {max}");
            assert!(kept[..head] == data[..head], "head differs (max {max})");
            assert!(
                kept[head..] == data[data.len() - tail..],
                "tail differs (max {max})"
            );
        }
    }
}

#[test]
fn started_events_can_be_turned_off() {
    for wanted in [true, false] {
        let herd = Herd::builder().started_events(wanted).build().unwrap();
        for _ in 0..5 {
            herd.submit(Job::new("true")).unwrap();
        }
        let (mut started, mut finished) = (0, 0);
        for event in herd.events() {
            match event {
                Event::Started { .. } => started += 1,
                Event::Finished(r) => {
                    assert!(r.success());
                    finished += 1;
                }
                Event::Output { .. } => {}
            }
        }
        assert_eq!(finished, 5);
        assert_eq!(started, if wanted { 5 } else { 0 });
    }
}

#[test]
fn readers_of_a_spilled_output_do_not_move_each_other() {
    // Two readers read in turns: each must see the stream from its own start (readers of one
    // spill file once shared a file position, and the second found the end early).
    let herd = Herd::new().unwrap();
    let r = herd
        .spawn(Job::new("sh").args(["-c", "seq 1 2000000"]))
        .unwrap()
        .wait();
    assert!(r.stdout.is_spilled());
    let expected = r.stdout.to_vec().unwrap();
    let (mut a, mut b) = (r.stdout.reader().unwrap(), r.stdout.reader().unwrap());
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 4096];
    loop {
        let n = std::io::Read::read(&mut a, &mut buf).unwrap();
        got_a.extend_from_slice(&buf[..n]);
        let m = std::io::Read::read(&mut b, &mut buf[..1000]).unwrap();
        got_b.extend_from_slice(&buf[..m]);
        if n == 0 && m == 0 {
            break;
        }
    }
    assert_eq!(got_a, expected);
    assert_eq!(got_b, expected);
}

/// A herd with 1 MiB of memory for output and a full disk (a 256 KiB one, soon full).
#[cfg(target_os = "linux")]
fn starved(disk: &testkit::SmallDisk) -> herd_engine::Builder {
    Herd::builder()
        .spill_dir(disk.path())
        .memory_budget(1 << 20)
        .memory_per_stream(64 << 10)
}

#[cfg(target_os = "linux")]
#[test]
fn with_neither_memory_nor_disk_to_spare_every_job_still_ends_with_all_its_output() {
    // A 256 KiB disk, 1 MiB of memory for output, 20 jobs of 1 MB at once, and a consumer
    // that keeps every result: streams with no room wait, but the oldest running job is
    // always read, so each one ends in turn and nothing is lost.
    let Some(disk) = testkit::SmallDisk::mount("256k") else {
        return;
    };
    let herd = starved(&disk).max_running(20).build().unwrap();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let script = format!("head -c 1000000 /dev/zero; echo {i}");
            herd.spawn(Job::new("sh").args(["-c", &script])).unwrap()
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.wait()).collect();
    for (i, result) in results.iter().enumerate() {
        assert!(result.success(), "{result:?}");
        let out = result.stdout.to_vec().unwrap();
        let end = format!("{i}\n");
        assert_eq!(out.len(), 1_000_000 + end.len());
        assert!(out.ends_with(end.as_bytes()));
        assert!(out[..1_000_000].iter().all(|&b| b == 0));
    }
    assert!(herd.spill_problem().is_some());
}

#[cfg(target_os = "linux")]
#[test]
fn stream_when_full_delivers_what_cannot_be_kept_as_events_and_loses_nothing() {
    let Some(disk) = testkit::SmallDisk::mount("256k") else {
        return;
    };
    let herd = starved(&disk).stream_when_full(true).build().unwrap();
    for letter in ["a", "b", "c", "d"] {
        let script = format!("head -c 3000000 /dev/zero | tr '\\0' {letter}");
        herd.submit(Job::new("sh").args(["-c", &script])).unwrap();
    }
    let mut streamed: HashMap<herd_engine::JobId, Vec<u8>> = HashMap::new();
    let mut let_through = 0;
    for event in herd.events() {
        match event {
            Event::Output {
                id, stream, data, ..
            } => {
                assert_eq!(stream, Stream::Stdout);
                streamed.entry(id).or_default().extend_from_slice(&data);
            }
            Event::Finished(result) => {
                assert!(result.success(), "{result:?}");
                let mut all = streamed.remove(&result.id).unwrap_or_default();
                assert_eq!(all.len() as u64, result.stdout.delivered_as_events());
                if !all.is_empty() {
                    let_through += 1;
                }
                all.extend_from_slice(&result.stdout.to_vec().unwrap());
                assert_eq!(all.len(), 3_000_000);
                assert_eq!(result.stdout.len(), 3_000_000);
                assert!(all.iter().all(|&b| b == all[0]));
            }
            Event::Started { .. } => {}
        }
    }
    assert!(let_through > 0, "no job was let through");
}

#[cfg(unix)]
#[test]
fn a_held_open_stdin_ends_only_when_the_job_is_told_to_stop() {
    // The job ignores SIGTERM (and so does cat, which inherits that), so what ends it is the
    // end of its input: herd closes the held pipe when it cancels the job or when the job's
    // timeout passes, before the kill grace is over.
    let herd = Herd::builder()
        .kill_grace(Duration::from_secs(30))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    // Says when it ignores SIGTERM, so the test cancels it only then.
    let script = format!(
        "trap '' TERM; touch '{}'; cat; echo end of input",
        ready.display()
    );
    let job = || Job::new("sh").args(["-c", &script]).stdin(Stdin::HeldOpen);
    let timed = herd
        .spawn(job().timeout(Duration::from_secs(2)))
        .unwrap()
        .wait();
    assert!(timed.timed_out);
    assert_eq!(timed.exit_code(), Some(0), "{timed:?}");
    assert_eq!(timed.stdout.to_vec().unwrap(), b"end of input\n");
    assert!(timed.duration >= Duration::from_secs(2), "{timed:?}");

    std::fs::remove_file(&ready).unwrap();
    let handle = herd.spawn(job()).unwrap();
    testkit::wait_until("the job to ignore SIGTERM", || ready.exists());
    herd.cancel(handle.id());
    let cancelled = handle.wait();
    assert!(cancelled.cancelled);
    assert_eq!(cancelled.stdout.to_vec().unwrap(), b"end of input\n");

    // A job that never reads it completes as any other.
    let quick = herd
        .spawn(Job::new("true").stdin(Stdin::HeldOpen))
        .unwrap()
        .wait();
    assert!(quick.success());
}

/// A spawn that fails for a passing reason while long-lived jobs run is tried again on a
/// timer, not only when one of them ends: one such failure used to hold a job back for a
/// whole sibling's lifetime (600 s under Wine, where `CreateProcessW` sometimes fails so).
#[test]
fn a_passing_spawn_failure_is_retried_while_siblings_run() {
    // About 20 s, and this test's own: without the retry, the failed job waits for a
    // sibling's end, and the test fails then.
    let marker = format!("20.{}61", std::process::id());
    let herd = Herd::builder()
        .max_running(20)
        .inject_spawn_failure(5)
        .build()
        .unwrap();
    let n = 10;
    for _ in 0..n {
        herd.submit(
            Job::new("sh")
                .args(["-c", &format!("echo up; exec sleep {marker}")])
                .stream_output(true),
        )
        .unwrap();
    }
    // Every job says "up"; a job that ends first means one waited for a sibling's end.
    let mut up = std::collections::HashSet::new();
    while up.len() < n {
        match herd.next_event() {
            Some(Event::Output { id, .. }) => {
                up.insert(id);
            }
            Some(Event::Started { .. }) => {}
            Some(Event::Finished(r)) => {
                panic!(
                    "job {:?} ended before every job was up: {:?}",
                    r.id, r.outcome
                )
            }
            None => panic!("the events ended with {} of {n} jobs up", up.len()),
        }
    }
    herd.cancel_all();
    for _ in herd.events() {}
    assert_gone(&marker);
}
