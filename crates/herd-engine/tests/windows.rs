//! The engine on Windows, run under Wine in CI (`.ci/windows-wine`).
//!
//! There is no `sh` or `dd` there, so this test binary is also the child program the tests
//! start: called with `--child MODE ...` it writes, sleeps, exits or spawns as told. It has no
//! libtest harness (a harness would print before the child could act); it runs every test in
//! both completion modes and ends with the line `N passed, M failed`.

#[cfg(not(windows))]
fn main() {}

#[cfg(windows)]
fn main() {
    suite::main()
}

#[cfg(windows)]
mod suite {
    use herd_engine::{Event, Herd, Job, JobResult, Outcome, Stdin};
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    use testkit::Rng;
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION,
        PROCESS_SYNCHRONIZE,
    };

    fn me() -> std::path::PathBuf {
        std::env::current_exe().unwrap()
    }

    fn child(args: &[&str]) -> Job {
        Job::new(me()).arg("--child").args(args)
    }

    /// The bytes `--child spew SEED LEN` writes.
    fn spew_bytes(seed: u64, len: usize) -> Vec<u8> {
        Rng(seed).bytes(len)
    }

    // ---------------------------------------------------------------- the child program

    fn run_child(args: &[String]) -> i32 {
        let arg = |i: usize| args[i].as_str();
        let num = |i: usize| args[i].parse::<u64>().unwrap();
        match arg(0) {
            // spew SEED_OUT LEN_OUT SEED_ERR LEN_ERR CHUNK: both streams, interleaved chunks.
            "spew" => {
                let out = spew_bytes(num(1), num(2) as usize);
                let err = spew_bytes(num(3), num(4) as usize);
                let chunk = num(5) as usize;
                let (mut o, mut e) = (std::io::stdout().lock(), std::io::stderr().lock());
                let (mut i, mut j) = (0, 0);
                while i < out.len() || j < err.len() {
                    let n = chunk.min(out.len() - i);
                    o.write_all(&out[i..i + n]).unwrap();
                    o.flush().unwrap();
                    i += n;
                    let n = chunk.min(err.len() - j);
                    e.write_all(&err[j..j + n]).unwrap();
                    j += n;
                }
                0
            }
            // big STREAM LEN: LEN zero bytes on stream 1 or 2, then "done" on the other.
            "big" => {
                let zeros = vec![0u8; num(2) as usize];
                if arg(1) == "2" {
                    std::io::stderr().write_all(&zeros).unwrap();
                    print!("done");
                } else {
                    std::io::stdout().write_all(&zeros).unwrap();
                    eprint!("done");
                }
                0
            }
            // console: the ids of the processes attached to this one's console, or "none".
            "console" => {
                use windows_sys::Win32::System::Console::GetConsoleProcessList;
                let mut ids = [0u32; 64];
                // SAFETY: the buffer holds 64 ids, the length passed.
                let n = unsafe { GetConsoleProcessList(ids.as_mut_ptr(), 64) } as usize;
                let listed: Vec<String> = ids[..n.min(64)].iter().map(u32::to_string).collect();
                print!(
                    "{}",
                    if n == 0 {
                        "none".into()
                    } else {
                        listed.join(" ")
                    }
                );
                0
            }
            "console-of-a-job" => {
                print!("{}", console_of_a_job(arg(1) == "tp"));
                0
            }
            "exit" => num(1) as i32,
            "sleep" => {
                std::thread::sleep(Duration::from_millis(num(1)));
                0
            }
            "say" => {
                println!("{}", arg(1));
                std::io::stdout().flush().unwrap();
                std::thread::sleep(Duration::from_millis(num(2)));
                0
            }
            "cat" => {
                let mut data = Vec::new();
                std::io::stdin().read_to_end(&mut data).unwrap();
                std::io::stdout().write_all(&data).unwrap();
                0
            }
            "env" => {
                print!("{}", std::env::var(arg(1)).unwrap_or_default());
                0
            }
            "cwd" => {
                print!("{}", std::env::current_dir().unwrap().display());
                0
            }
            // hold: a grandchild inherits our stdout and outlives us; its pid goes to stderr.
            "hold" => {
                let g = std::process::Command::new(me())
                    .args(["--child", "sleep", "600000"])
                    .stdin(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                eprint!("{}", g.id());
                print!("hi");
                0
            }
            // tree: a grandchild (holding nothing) and a long sleep; the grandchild's pid on stdout.
            "tree" => {
                let g = std::process::Command::new(me())
                    .args(["--child", "sleep", "600000"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                print!("{}", g.id());
                std::io::stdout().flush().unwrap();
                std::thread::sleep(Duration::from_secs(600));
                0
            }
            other => panic!("unknown child mode {other}"),
        }
    }

    // ---------------------------------------------------------------- helpers

    fn text(r: &JobResult) -> String {
        String::from_utf8_lossy(&r.stdout.to_vec().unwrap()).into_owned()
    }

    /// Whether the process with this id is gone (waiting, on its handle, up to 10 s for the
    /// kill to take effect).
    fn gone(pid: u32) -> bool {
        // SAFETY: plain Win32 calls on a handle we open and close here.
        unsafe {
            let h = OpenProcess(
                PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
                0,
                pid,
            );
            if h.is_null() {
                return true;
            }
            let exited = WaitForSingleObject(h, 10_000) == WAIT_OBJECT_0;
            let mut code = 0;
            GetExitCodeProcess(h, &mut code);
            CloseHandle(h);
            exited || code != STILL_ACTIVE as u32
        }
    }

    fn threads() -> usize {
        use windows_sys::Win32::System::Diagnostics::ToolHelp::{
            CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
        };
        let pid = std::process::id();
        let mut n = 0;
        // SAFETY: a snapshot handle walked with a correctly sized entry, then closed.
        unsafe {
            let snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
            let mut e: THREADENTRY32 = std::mem::zeroed();
            e.dwSize = size_of::<THREADENTRY32>() as u32;
            let mut ok = Thread32First(snap, &mut e);
            while ok != 0 {
                if e.th32OwnerProcessID == pid {
                    n += 1;
                }
                ok = Thread32Next(snap, &mut e);
            }
            CloseHandle(snap);
        }
        n
    }

    // ---------------------------------------------------------------- tests

    type Test = fn(bool);

    fn builder(thread_pool: bool) -> herd_engine::Builder {
        Herd::builder().windows_thread_pool(thread_pool)
    }

    fn byte_exact_capture(tp: bool) {
        let herd = builder(tp).max_running(32).build().unwrap();
        let mut rng = Rng(9);
        let mut expected = std::collections::HashMap::new();
        for i in 0..300u64 {
            let (lo, le) = (
                testkit::output_size(&mut rng),
                testkit::output_size(&mut rng),
            );
            let chunk = 1 + rng.below(9000);
            let job = child(&[
                "spew",
                &i.to_string(),
                &lo.to_string(),
                &(i + 1000).to_string(),
                &le.to_string(),
                &chunk.to_string(),
            ]);
            let id = herd.submit(job).unwrap();
            expected.insert(id, (spew_bytes(i, lo), spew_bytes(i + 1000, le)));
        }
        let mut done = 0;
        for event in herd.events() {
            if let Event::Finished(r) = event {
                assert!(r.success(), "{:?}", r.outcome);
                let (o, e) = &expected[&r.id];
                assert!(&r.stdout.to_vec().unwrap() == o, "job {} stdout", r.id);
                assert!(&r.stderr.to_vec().unwrap() == e, "job {} stderr", r.id);
                done += 1;
            }
        }
        assert_eq!(done, 300);
    }

    fn no_deadlock_either_way(tp: bool) {
        let herd = builder(tp).build().unwrap();
        for (stream, big_is_err) in [("2", true), ("1", false)] {
            let r = herd
                .spawn(child(&["big", stream, "20000000"]))
                .unwrap()
                .wait();
            assert!(r.success(), "{:?}", r.outcome);
            let (big, small) = if big_is_err {
                (&r.stderr, &r.stdout)
            } else {
                (&r.stdout, &r.stderr)
            };
            assert_eq!(big.len(), 20_000_000);
            assert!(big.to_vec().unwrap().iter().all(|&b| b == 0));
            assert_eq!(small.to_vec().unwrap(), b"done");
        }
    }

    fn exit_codes_and_missing_programs(tp: bool) {
        let herd = builder(tp).build().unwrap();
        let three = herd.spawn(child(&["exit", "3"])).unwrap();
        let missing = herd.spawn(Job::new("herd-no-such-program")).unwrap();
        let fine = herd.spawn(child(&["say", "still here", "0"])).unwrap();
        assert_eq!(three.wait().exit_code(), Some(3));
        let missing = missing.wait();
        assert!(
            matches!(
                missing.outcome,
                Outcome::SpawnFailed(herd_engine::SpawnError::NotFound { .. })
            ),
            "{:?}",
            missing.outcome
        );
        assert_eq!(missing.exit_code(), Some(127));
        assert_eq!(text(&fine.wait()).trim(), "still here");
    }

    fn timeout_kills_the_tree(tp: bool) {
        let herd = builder(tp).build().unwrap();
        let r = herd
            .spawn(child(&["tree"]).timeout(Duration::from_secs(2)))
            .unwrap()
            .wait();
        assert!(r.timed_out);
        assert!(!r.success());
        let grandchild: u32 = text(&r).parse().unwrap();
        assert!(
            gone(grandchild),
            "grandchild {grandchild} survived the timeout"
        );
    }

    fn grandchild_holding_the_pipe(tp: bool) {
        let herd = builder(tp)
            .eof_grace(Duration::from_millis(500))
            .build()
            .unwrap();
        let r = herd.spawn(child(&["hold"])).unwrap().wait();
        assert!(r.success(), "{:?}", r.outcome);
        assert!(r.leaked);
        assert_eq!(text(&r), "hi");
        let grandchild: u32 = String::from_utf8(r.stderr.to_vec().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(gone(grandchild), "grandchild {grandchild} survived");
    }

    fn cancel_kills_running_trees(tp: bool) {
        let herd = builder(tp).max_running(2).build().unwrap();
        for _ in 0..4 {
            herd.submit(child(&["tree"]).stream_output(true)).unwrap();
        }
        let (mut pids, mut finished) = (Vec::new(), 0);
        for event in herd.events() {
            match event {
                Event::Output { data, .. } => {
                    pids.push(
                        String::from_utf8(data.into_vec())
                            .unwrap()
                            .parse::<u32>()
                            .unwrap(),
                    );
                    if pids.len() == 2 {
                        herd.cancel_all();
                    }
                }
                Event::Finished(r) => {
                    assert!(r.cancelled);
                    finished += 1;
                }
                Event::Started { .. } => {}
            }
        }
        assert_eq!(finished, 4);
        assert!(pids.iter().all(|&p| gone(p)));
    }

    fn stdin_env_and_cwd(tp: bool) {
        let herd = builder(tp).build().unwrap();
        let data = Rng(1).bytes(1 << 20);
        let cat = herd
            .spawn(child(&["cat"]).stdin(Stdin::bytes(data.clone())))
            .unwrap();
        let empty = herd.spawn(child(&["cat"])).unwrap();
        let env = herd
            .spawn(child(&["env", "HERD_TEST"]).env("HERD_TEST", "set"))
            .unwrap();
        let dir = std::env::temp_dir();
        let cwd = herd.spawn(child(&["cwd"]).current_dir(&dir)).unwrap();
        assert!(
            cat.wait().stdout.to_vec().unwrap() == data,
            "1 MiB through stdin"
        );
        assert_eq!(empty.wait().stdout.len(), 0);
        assert_eq!(text(&env.wait()), "set");
        let got = std::path::PathBuf::from(text(&cwd.wait()));
        assert_eq!(got.canonicalize().unwrap(), dir.canonicalize().unwrap());
    }

    /// Each job gets exactly its byte range of one file (read a piece at a time and written
    /// with overlapped writes), across the end and past it too.
    fn file_ranges(tp: bool) {
        let herd = builder(tp).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data = Rng(5).bytes(3 << 20);
        std::fs::write(&path, &data).unwrap();
        let ranges = [
            (0, 0),
            (1, 700_000),
            (5, 3 << 20),
            (3 << 20, 9),
            (2_000_001, 1 << 20),
        ];
        let jobs: Vec<_> = ranges
            .iter()
            .map(|&(offset, len)| {
                herd.spawn(child(&["cat"]).stdin(Stdin::file_range(&path, offset, len)))
                    .unwrap()
            })
            .collect();
        for (job, (offset, len)) in jobs.into_iter().zip(ranges) {
            let start = (offset as usize).min(data.len());
            let end = (offset + len).min(data.len() as u64) as usize;
            let out = job.wait().stdout.to_vec().unwrap();
            assert!(
                out == data[start..end],
                "{offset}+{len}: {} bytes",
                out.len()
            );
        }
        let parts = Stdin::Concat(vec![
            Stdin::bytes("header\n"),
            Stdin::file_range(&path, 7, 1 << 20),
            Stdin::Null,
            Stdin::file(&path),
        ]);
        let out = herd.spawn(child(&["cat"]).stdin(parts)).unwrap().wait();
        let expected = [b"header\n", &data[7..7 + (1 << 20)], &data[..]].concat();
        assert!(
            out.stdout.to_vec().unwrap() == expected,
            "concatenated parts"
        );
    }

    /// Streamed stdins: blocks sent while the jobs run reach each job exactly, through
    /// overlapped writes that wait, idle, for the sender's next block.
    fn streamed_stdin(tp: bool) {
        // All eight run at once: a job waiting for a slot reads nothing.
        let herd = builder(tp).max_running(8).build().unwrap();
        let mut senders = Vec::new();
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (stdin, sender) = Stdin::stream(64 * 1024);
            jobs.push(herd.spawn(child(&["cat"]).stdin(stdin)).unwrap());
            senders.push(sender);
        }
        let mut rng = Rng(9);
        let mut sent = vec![Vec::new(); senders.len()];
        for round in 0..200 {
            let i = round % senders.len();
            let len = 1 + rng.below(30_000) as usize;
            let block = rng.bytes(len);
            sent[i].extend_from_slice(&block);
            senders[i].send(block).expect("cat reads its stdin");
        }
        drop(senders);
        for (job, sent) in jobs.into_iter().zip(sent) {
            let out = job.wait().stdout.to_vec().unwrap();
            assert!(out == sent, "{} bytes of {}", out.len(), sent.len());
        }
    }

    fn concurrent_spawns_never_inherit_each_others_pipes(tp: bool) {
        let herd = builder(tp)
            .max_running(32)
            .eof_grace(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut sleepers = Vec::new();
        for round in 0..4 {
            sleepers.push(herd.submit(child(&["sleep", "600000"])).unwrap());
            for _ in 0..40 {
                herd.submit(child(&["exit", &(round % 2).to_string()]))
                    .unwrap();
            }
        }
        let mut quick = 0;
        for event in herd.events() {
            if let Event::Finished(r) = event {
                assert!(!r.leaked, "a quick job's pipe leaked into a sibling");
                if sleepers.contains(&r.id) {
                    assert_eq!(quick, 160);
                } else {
                    quick += 1;
                    if quick == 160 {
                        sleepers.iter().for_each(|&id| herd.cancel(id));
                    }
                }
            }
        }
    }

    fn back_off_when_too_many_reads_are_outstanding(tp: bool) {
        let herd = builder(tp)
            .inject_read_failures(40)
            .max_running(8)
            .build()
            .unwrap();
        let handles: Vec<_> = (0..10u64)
            .map(|i| {
                herd.spawn(child(&[
                    "spew",
                    &i.to_string(),
                    "70000",
                    &(i + 50).to_string(),
                    "3000",
                    "777",
                ]))
                .unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let r = h.wait();
            assert!(r.success());
            assert!(r.stdout.to_vec().unwrap() == spew_bytes(i as u64, 70000));
            assert!(r.stderr.to_vec().unwrap() == spew_bytes(i as u64 + 50, 3000));
        }
    }

    /// A spawn that fails for a passing reason (Wine's `ERROR_INTERNAL_ERROR` under load) while
    /// long-lived jobs run is tried again on a timer: it used to wait for a sibling's end.
    fn a_passing_spawn_failure_is_retried_while_siblings_run(tp: bool) {
        let herd = builder(tp)
            .max_running(20)
            .inject_spawn_failure(5)
            .build()
            .unwrap();
        let n = 10;
        for _ in 0..n {
            herd.submit(child(&["say", "up", "20000"]).stream_output(true))
                .unwrap();
        }
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
    }

    /// Runs this test program with `args` in a console of its own (hidden), as from a
    /// terminal: the Wine harness gives the test process none, and Wine refuses it
    /// `AllocConsole` and `AttachConsole`. Its stdout.
    fn in_a_console<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
        use std::os::windows::process::CommandExt;
        use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;
        let out = std::process::Command::new(me())
            .args(args)
            .creation_flags(CREATE_NO_WINDOW)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a job of a herd in this process shares this process's console: "shared", or
    /// the ids of the processes attached to the job's.
    fn console_of_a_job(tp: bool) -> String {
        let herd = builder(tp).build().unwrap();
        let listed = text(&herd.spawn(child(&["console"])).unwrap().wait());
        let me = std::process::id().to_string();
        match listed.split(' ').any(|id| id == me) {
            true => "shared".into(),
            false => listed,
        }
    }

    /// A job shares herd's console when herd has one: a console of its own is a second process
    /// (conhost.exe) started beside every job, which halved the spawn rate under Wine. Without
    /// a console to share, a job still gets one (hidden), never none.
    fn jobs_share_herds_console(tp: bool) {
        use windows_sys::Win32::System::Console::GetConsoleCP;
        let mode = if tp { "tp" } else { "port" };
        let job = in_a_console(&["--child", "console-of-a-job", mode]);
        assert_eq!(job, "shared", "herd has a console; its job's is another");
        // SAFETY: no arguments.
        if unsafe { GetConsoleCP() } == 0 {
            let listed = console_of_a_job(tp);
            assert!(
                listed != "shared" && listed != "none",
                "herd has no console; its job's: {listed}"
            );
        }
    }

    fn thread_count_does_not_grow_with_jobs(tp: bool) {
        let herd = builder(tp)
            .max_running(1000)
            .started_events(true)
            .build()
            .unwrap();
        let with = |n: usize| {
            for _ in 0..n {
                herd.submit(child(&["say", "up", "600000"]).stream_output(true))
                    .unwrap();
            }
            // Each child says "up" once it runs; a job that ends first fails the test (it
            // must not leave the loop waiting for an output that will never come). Counted per
            // job: a failure names the jobs that never started and those that started but
            // stayed silent.
            let mut started = std::collections::HashSet::new();
            let mut up = std::collections::HashSet::new();
            while up.len() < n {
                match herd.next_event() {
                    Some(Event::Output { id, .. }) => {
                        up.insert(id);
                    }
                    Some(Event::Started { id, .. }) => {
                        started.insert(id);
                    }
                    Some(Event::Finished(r)) => panic!(
                        "job {:?} ended ({:?}) while {} of {n} were up; started but silent: \
                         {:?}; {} never started",
                        r.id,
                        r.outcome,
                        up.len(),
                        started.difference(&up).collect::<Vec<_>>(),
                        n - started.len().max(up.len()),
                    ),
                    None => panic!(
                        "the event stream ended with {} of {n} children up",
                        up.len()
                    ),
                }
            }
            let count = threads();
            herd.cancel_all();
            for _ in herd.events() {}
            count
        };
        let two = with(2);
        let many = with(200);
        // With herd's own port the count is fixed. The system pool sizes itself (it may add a
        // worker or two under load), but never a thread per child: 200 children, not 200 threads.
        let slack = if tp { 4 } else { 0 };
        assert!(
            many <= two + slack,
            "{two} threads with 2 jobs, {many} with 200"
        );
    }

    fn output_in_transit_outlives_the_eof_grace(tp: bool) {
        // Every completion spends 1.5 s in the thread pool (port mode has no such hop): the
        // job's output and its EOF arrive after the 1 s grace that follows its exit. The
        // grace is for descendants holding a pipe; bytes on their way are no such thing.
        let herd = builder(tp)
            .inject_completion_delay(Duration::from_millis(1500))
            .build()
            .unwrap();
        let r = herd
            .spawn(child(&["say", "written before the exit", "0"]))
            .unwrap()
            .wait();
        assert!(r.success(), "{:?}", r.outcome);
        assert!(!r.leaked, "taken for a descendant holding the pipe");
        assert_eq!(text(&r).trim(), "written before the exit");
    }

    const TESTS: &[(&str, Test)] = &[
        (
            "output_in_transit_outlives_the_eof_grace",
            output_in_transit_outlives_the_eof_grace,
        ),
        ("byte_exact_capture", byte_exact_capture),
        ("no_deadlock_either_way", no_deadlock_either_way),
        (
            "exit_codes_and_missing_programs",
            exit_codes_and_missing_programs,
        ),
        ("timeout_kills_the_tree", timeout_kills_the_tree),
        ("grandchild_holding_the_pipe", grandchild_holding_the_pipe),
        ("cancel_kills_running_trees", cancel_kills_running_trees),
        ("stdin_env_and_cwd", stdin_env_and_cwd),
        ("file_ranges", file_ranges),
        ("streamed_stdin", streamed_stdin),
        (
            "concurrent_spawns_never_inherit_each_others_pipes",
            concurrent_spawns_never_inherit_each_others_pipes,
        ),
        (
            "back_off_when_too_many_reads_are_outstanding",
            back_off_when_too_many_reads_are_outstanding,
        ),
        (
            "thread_count_does_not_grow_with_jobs",
            thread_count_does_not_grow_with_jobs,
        ),
        (
            "a_passing_spawn_failure_is_retried_while_siblings_run",
            a_passing_spawn_failure_is_retried_while_siblings_run,
        ),
        ("jobs_share_herds_console", jobs_share_herds_console),
    ];

    /// `--measure N [MS]`: N children that each live MS milliseconds (3000), in a console (as
    /// from a terminal), through herd (both modes) and through a plain loop of `CreateProcessW`
    /// (std's `Command`) with one reader thread per pipe: spawns per second and peak threads.
    /// For closing notes and benchmarks, not a test.
    fn measure(n: usize, life_ms: &str, only_baseline: bool) {
        use windows_sys::Win32::System::Console::GetConsoleCP;
        // SAFETY: no arguments.
        if unsafe { GetConsoleCP() } == 0 {
            // As from a terminal: herd's and the loop's children share a console.
            let mut args = vec!["--measure".to_string(), n.to_string(), life_ms.into()];
            args.extend(only_baseline.then(|| "baseline".to_string()));
            print!("{}", in_a_console(&args));
            return;
        }
        for tp in [false, true] {
            if only_baseline {
                break;
            }
            let herd = builder(tp).max_running(n).build().unwrap();
            let start = Instant::now();
            for _ in 0..n {
                herd.submit(child(&["say", "up", life_ms])).unwrap();
            }
            let (mut started, mut finished, mut peak) = (0, 0, threads());
            let mut spawn_time = Duration::ZERO;
            for event in herd.events() {
                match event {
                    Event::Started { .. } => {
                        started += 1;
                        if started == n {
                            spawn_time = start.elapsed();
                        }
                    }
                    Event::Finished(r) => {
                        assert_eq!(text(&r).trim(), "up");
                        finished += 1;
                    }
                    Event::Output { .. } => {}
                }
                peak = peak.max(threads());
            }
            assert_eq!(finished, n);
            let mode = if tp { "thread-pool" } else { "port" };
            println!(
                "herd [{mode}]: {n} children, {:.1} spawns/s, peak {peak} threads, all done in {:.1} s",
                n as f64 / spawn_time.as_secs_f64(),
                start.elapsed().as_secs_f64()
            );
        }
        let start = Instant::now();
        let mut readers = Vec::new();
        let mut children = Vec::new();
        let mut retried = 0;
        for _ in 0..n {
            // Wine sometimes fails a spawn under load with ERROR_INTERNAL_ERROR: retry it.
            let mut c = loop {
                let spawned = std::process::Command::new(me())
                    .args(["--child", "say", "up", life_ms])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn();
                match spawned {
                    Ok(c) => break c,
                    Err(e) if e.raw_os_error() == Some(1359) => retried += 1,
                    Err(e) => panic!("{e}"),
                }
            };
            let (mut out, mut err) = (c.stdout.take().unwrap(), c.stderr.take().unwrap());
            readers.push(std::thread::spawn(move || {
                let mut v = Vec::new();
                out.read_to_end(&mut v).unwrap();
                v
            }));
            readers.push(std::thread::spawn(move || {
                let mut v = Vec::new();
                err.read_to_end(&mut v).unwrap();
                v
            }));
            children.push(c);
        }
        let spawn_time = start.elapsed();
        let peak = threads();
        for r in readers {
            r.join().unwrap();
        }
        for mut c in children {
            c.wait().unwrap();
        }
        println!(
            "thread per pipe: {n} children, {:.1} spawns/s, peak {peak} threads, all done in {:.1} s ({retried} spawns retried)",
            n as f64 / spawn_time.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("--child") {
            std::process::exit(run_child(&args[1..]));
        }
        if args.first().map(String::as_str) == Some("--measure") {
            measure(
                args.get(1).map_or(500, |n| n.parse().unwrap()),
                args.get(2).map_or("3000", String::as_str),
                args.get(3).is_some_and(|a| a == "baseline"),
            );
            return;
        }
        let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
        let (mut passed, mut failed) = (0, 0);
        for (name, test) in TESTS {
            for (mode, tp) in [("port", false), ("thread-pool", true)] {
                let full = format!("{name} [{mode}]");
                if filter.as_ref().is_some_and(|f| !full.contains(f.as_str())) {
                    continue;
                }
                let start = Instant::now();
                let result = std::panic::catch_unwind(|| test(tp));
                let secs = start.elapsed().as_secs_f64();
                if result.is_ok() {
                    println!("test {full} ... ok ({secs:.1}s)");
                    passed += 1;
                } else {
                    println!("test {full} ... FAILED ({secs:.1}s)");
                    failed += 1;
                }
            }
        }
        println!("\n{passed} passed, {failed} failed");
        std::process::exit(if failed == 0 { 0 } else { 1 });
    }
}
