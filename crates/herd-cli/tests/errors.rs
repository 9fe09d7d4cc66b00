//! herd's own errors say what they are, name what failed, and exit 255; none of them costs
//! the other jobs their output or corrupts what herd writes.
#![cfg(target_os = "linux")]

use std::process::Stdio;
mod common;

use common::{herd, text};

/// Runs herd with `args`, its stdout and stderr sent to the files named (`/dev/full` for a
/// full disk); returns the exit code and what it said on stderr (when stderr is not full).
fn run_into(args: &[&str], stdout: &str, stderr: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let said = dir.path().join("stderr");
    let stderr_path = if stderr == "capture" {
        said.to_str().unwrap().to_string()
    } else {
        stderr.to_string()
    };
    let status = herd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(stderr != "/dev/full")
                .open(&stderr_path)
                .unwrap(),
        )
        .status()
        .unwrap();
    (
        status.code(),
        std::fs::read_to_string(&said).unwrap_or_default(),
    )
}

#[test]
fn a_full_disk_is_an_error_that_names_where_not_a_broken_pipe() {
    // A full disk used to end herd with 141 (the closed-pipe status) and, for stderr, silently.
    for mode in [&["--group"][..], &["-k"], &["--lb"], &["-u"]] {
        let mut args = mode.to_vec();
        args.extend(["echo", ":::", "1", "2"]);
        let (code, said) = run_into(&args, "/dev/full", "capture");
        assert_eq!(code, Some(255), "{mode:?}: {said}");
        assert!(
            said.contains("cannot write to stdout: No space left on device"),
            "{mode:?}: {said}"
        );
    }
    let (code, _) = run_into(
        &["sh -c 'echo x >&2'", ":::", "1"],
        "/dev/null",
        "/dev/full",
    );
    assert_eq!(code, Some(255), "a full stderr");
    let (code, said) = run_into(
        &["--json", "/dev/full", "echo", ":::", "1"],
        "/dev/null",
        "capture",
    );
    assert_eq!(code, Some(255));
    assert!(said.contains("cannot write to --json /dev/full"), "{said}");
    let (code, said) = run_into(
        &["--joblog", "/dev/full", "echo", ":::", "1"],
        "/dev/null",
        "capture",
    );
    assert_eq!(code, Some(255));
    assert!(said.contains("cannot write joblog /dev/full"), "{said}");
}

#[test]
fn resume_onto_a_joblog_cut_mid_row_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let run = |values: &[&str]| {
        let out = herd()
            .args(["--resume", "--joblog", log, "echo"])
            .arg(":::")
            .args(values)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(run(&["1", "2", "3"]).lines().count(), 3);
    // The log's last newline is lost (herd killed as it wrote the row).
    let mut bytes = std::fs::read(log).unwrap();
    bytes.pop();
    std::fs::write(log, &bytes).unwrap();
    assert_eq!(run(&["1", "2", "3", "4"]), "4\n");
    // Row 4 stands on a line of its own, so a later resume runs only what is new.
    assert_eq!(run(&["1", "2", "3", "4", "5"]), "5\n");
    let logged = std::fs::read_to_string(log).unwrap();
    assert_eq!(logged.lines().count(), 6, "{logged}");
    // A row cut inside its columns: that job runs again, the others do not.
    let cut = logged.lines().take(5).collect::<Vec<_>>().join("\n") + "\n5\t:\t17";
    std::fs::write(log, cut).unwrap();
    assert_eq!(run(&["1", "2", "3", "4", "5"]), "5\n");
}

#[test]
fn an_output_file_that_is_also_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, "1\n2\n").unwrap();
    let link = dir.path().join("link");
    std::fs::hard_link(&input, &link).unwrap();
    let input_s = input.to_str().unwrap();
    for (option, output) in [
        ("--joblog", input_s),
        ("--json", link.to_str().unwrap()),
        ("--events", input_s),
    ] {
        let out = herd()
            .args([option, output, "echo", "::::", input_s])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(255), "{option}");
        assert!(
            text(&out.stderr).contains("is also an input file"),
            "{option}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read(&input).unwrap(), b"1\n2\n", "{option}");
    }
}

#[cfg(unix)]
#[test]
fn an_input_file_whose_name_is_not_utf8_is_read() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::write(&name, "1\n2\n").unwrap();
    for how in [&["echo", "::::"][..], &["-k", "echo", "::::"]] {
        let out = herd()
            .args(how)
            .arg(&name)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
        lines.sort();
        assert_eq!(lines, ["1", "2"]);
    }
}

#[test]
fn quoting_a_replacement_string_yourself_is_warned_about() {
    let out = herd()
        .args(["--shell", "echo '{}'", ":::", "a b"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("quotes a replacement string itself ('{}')"),
        "{}",
        text(&out.stderr)
    );
    // Not about {} unquoted, nor with -q (no shell: quotes are plain characters there).
    for args in [
        &["echo", "{}", ":::", "a"][..],
        &["-q", "echo", "'{}'", ":::", "a"],
    ] {
        let out = herd().args(args).stdin(Stdio::null()).output().unwrap();
        assert!(!text(&out.stderr).contains("warning"), "{args:?}");
    }
}

#[test]
fn a_script_whose_interpreter_is_missing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/no/such/interpreter -x\necho hi\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let out = herd()
        .arg("-q")
        .arg(&script)
        .args([":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("its interpreter /no/such/interpreter was not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_job_that_reads_the_terminal_is_killed_and_named_instead_of_hanging() {
    if !testkit::have("script") {
        return;
    }
    // script(1) gives herd a terminal; the job, in its own process group, is stopped by
    // SIGTTIN as it reads it (ssh, sudo and git prompts do this). herd used to wait for ever.
    let command = format!(
        "{} --json - --shell 'read x < /dev/tty; echo got $x' ::: 1 2; echo status=$?",
        env!("CARGO_BIN_EXE_herd")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    testkit::wait_until("herd to end", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let mut screen = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut screen).unwrap();
    assert!(screen.contains("status=2"), "{screen:?}");
    assert_eq!(
        screen
            .matches("was stopped for reading the terminal, and killed")
            .count(),
        2,
        "{screen:?}"
    );
    assert_eq!(
        screen.matches("\"stopped_for_terminal\":true").count(),
        2,
        "{screen:?}"
    );
}

/// Runs `herd ARGS` on a terminal (script(1)) and returns what the terminal showed.
fn on_a_terminal(args: &str) -> String {
    typed_on_a_terminal(args, "", &[])
}

/// Runs `herd ARGS` on a terminal with `typed` typed at it, `env` set; returns the screen.
fn typed_on_a_terminal(args: &str, typed: &str, env: &[(&str, &str)]) -> String {
    let command = format!("{} {args}; echo status=$?", env!("CARGO_BIN_EXE_herd"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, typed.as_bytes()).unwrap();
    // Kept open while herd runs: script(1) would end the session at its stdin's EOF.
    let mut screen = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut screen).unwrap();
    drop(stdin);
    child.wait().unwrap();
    screen
}

#[test]
fn inputs_typed_at_the_terminal_are_announced_then_run() {
    if !testkit::have("script") {
        return;
    }
    // No ::: and no pipe: herd reads the terminal, and says so rather than seem to hang.
    let screen = typed_on_a_terminal("-k echo got", "a\nb\n\x04", &[]);
    assert!(
        screen.contains("herd: reading inputs from the terminal"),
        "{screen:?}"
    );
    assert!(screen.contains("got a\r\ngot b\r\n"), "{screen:?}");
    assert!(screen.contains("status=0"), "{screen:?}");
    // With values given, nothing is said.
    let screen = typed_on_a_terminal("echo got ::: c", "", &[]);
    assert!(!screen.contains("reading"), "{screen:?}");
    assert!(screen.contains("got c"), "{screen:?}");
}

#[test]
fn with_tty_a_job_reads_and_writes_the_terminal() {
    if !testkit::have("script") {
        return;
    }
    // The job is in the terminal's foreground: its read is not stopped, and it writes to the
    // terminal itself. Without --tty the same job is stopped and killed.
    let job =
        "--shell 'read x < /dev/tty; echo got $x; test -t 1 && echo on-the-terminal {}' ::: 1";
    let screen = typed_on_a_terminal(&format!("--tty --timeout 20 {job}"), "alice\n", &[]);
    assert!(screen.contains("got alice"), "{screen:?}");
    assert!(screen.contains("on-the-terminal 1"), "{screen:?}");
    assert!(screen.contains("status=0"), "{screen:?}");
    let screen = typed_on_a_terminal(&format!("--timeout 20 {job}"), "alice\n", &[]);
    assert!(screen.contains("Run it with --tty"), "{screen:?}");
}

#[test]
fn with_tty_a_timeout_kills_the_jobs_descendants_at_both_levels() {
    if !testkit::have("script") {
        return;
    }
    for (level, tag) in [("", 88), ("HERD_NO_CGROUP", 89)] {
        let sleep = testkit::long_sleep(tag);
        let env: &[(&str, &str)] = if level.is_empty() {
            &[]
        } else {
            &[(level, "1")]
        };
        // The job's shell waits for its sleep: both in herd's own process group.
        let screen = typed_on_a_terminal(
            &format!("--tty --timeout 1 --shell 'sleep {sleep}; echo no {{}}' ::: 1"),
            "",
            env,
        );
        assert!(screen.contains("timed out after 1s"), "{screen:?}");
        testkit::assert_gone(&sleep);
    }
}

#[test]
fn tty_without_a_terminal_is_refused_before_any_job() {
    let out = herd()
        .args(["--tty", "echo", ":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // This test may itself run on a terminal; then there is one to give.
    if std::fs::File::open("/dev/tty").is_ok() {
        return;
    }
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("--tty: herd has no terminal to give its jobs"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_job_whose_descendant_reads_the_terminal_is_killed_too() {
    if !testkit::have("script") {
        return;
    }
    // The shell waits for `cat`, which is stopped: only the descendant shows the stop.
    // (--timeout: without the fix herd waited for ever.)
    let screen = on_a_terminal("--timeout 20 --shell 'cat /dev/tty; echo after {}' ::: 1");
    assert!(screen.contains("status=1"), "{screen:?}");
    assert!(
        screen.contains("was stopped for reading the terminal, and killed"),
        "{screen:?}"
    );
    assert!(!screen.contains("\nafter 1"), "{screen:?}");
}

#[test]
fn a_descendant_stopped_on_purpose_is_left_alone() {
    if !testkit::have("script") {
        return;
    }
    // SIGSTOP for two and a half seconds: two looks for terminal stops pass meanwhile.
    let screen = on_a_terminal(
        "--shell 'sleep 4 & p=$!; kill -STOP $p; sleep 2.5; kill -CONT $p; kill $p; echo resumed {}' ::: 1",
    );
    assert!(screen.contains("resumed 1"), "{screen:?}");
    assert!(screen.contains("status=0"), "{screen:?}");
}

#[test]
fn results_files_take_part_in_the_descriptor_budget() {
    // 400 jobs at once, each with its pipes and its two result files, under 1024
    // descriptors: the run used to stop with "Too many open files" after a few hundred.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("res");
    let script = format!(
        "ulimit -n 1024 && exec {} -j 400 --results {} --shell 'sleep 0.2; echo {{}}' ::: $(seq 1000)",
        env!("CARGO_BIN_EXE_herd"),
        results.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only enough file descriptors (ulimit -n 1024)"),
        "{}",
        text(&out.stderr)
    );
    for n in [1, 500, 1000] {
        let stdout = results.join(format!("1/{n}/stdout"));
        assert_eq!(std::fs::read_to_string(stdout).unwrap(), format!("{n}\n"));
    }
    assert_eq!(std::fs::read_dir(results.join("1")).unwrap().count(), 1000);
}

#[test]
fn a_full_tmpdir_is_said_once_and_loses_nothing() {
    // 4 jobs of 20 MB each into a 1 MB --tmpdir: each chunk of each stream used to make a new
    // spill file and rewrite all it held (10 s here, 276 s for 50 MB jobs), without a word.
    let Some(disk) = testkit::SmallDisk::mount("1m") else {
        return;
    };
    let out = herd()
        .arg("--tmpdir")
        .arg(disk.path())
        .args(["-j", "4", "--shell", "head -c 20000000 /dev/zero # {}"])
        .args([":::", "1", "2", "3", "4"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 80_000_000);
    assert!(out.stdout.iter().all(|&b| b == 0));
    let said = text(&out.stderr);
    assert_eq!(said.matches("cannot spill output to").count(), 1, "{said}");
    assert!(said.contains("No space left on device"), "{said}");
}

#[test]
fn with_neither_memory_nor_disk_to_spare_jobs_wait_instead_of_growing_memory() {
    // 60 jobs of 3 MB at once into a 1 MB --tmpdir: 180 MB with nowhere to go but memory,
    // whose share is 64 MiB. herd kept it all (over 200 MB RSS); now a job whose output does
    // not fit waits on its full pipe, but for the oldest, which always goes on.
    if !testkit::have("/usr/bin/time") {
        return;
    }
    let Some(disk) = testkit::SmallDisk::mount("1m") else {
        return;
    };
    let (out, peak_kb) = common::with_peak_rss(&format!(
        "/usr/bin/time -f %M -o {{rss}} {} --tmpdir {} -j 60 --shell 'head -c 3000000 /dev/zero; echo {{}}' ::: $(seq 60) > {{rss}}.out; wc -c < {{rss}}.out; tr -d '\\0' < {{rss}}.out | sort -n | tr '\\n' ' '",
        env!("CARGO_BIN_EXE_herd"),
        disk.path().display()
    ));
    // Each job's 3 MB of zeros, then its number; nothing lost.
    let numbers: String = (1..=60).map(|i| format!("{i} ")).collect();
    assert_eq!(
        text(&out.stdout),
        format!("{}\n{numbers}", 60 * 3_000_000 + numbers.len())
    );
    assert!(
        text(&out.stderr).contains("jobs wait while it is full"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        peak_kb < 128 * 1024,
        "peak RSS {peak_kb} KiB for 180 MB of output with a full disk"
    );
}

/// The runs of equal bytes in `data`: (byte, length).
fn runs(data: &[u8]) -> Vec<(u8, usize)> {
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for &b in data {
        match runs.last_mut() {
            Some((last, n)) if *last == b => *n += 1,
            _ => runs.push((b, 1)),
        }
    }
    runs
}

#[test]
fn with_neither_memory_nor_disk_to_spare_the_job_still_read_prints_as_it_goes() {
    // 4 jobs of 100 MB into a full 1 MB --tmpdir: the oldest job's output, which nothing can
    // hold, goes out as it comes (its memory counted until printed), instead of 100 MB more
    // in memory; grouped output stays whole per job, and -k keeps its order.
    let Some(disk) = testkit::SmallDisk::mount("1m") else {
        return;
    };
    for keep in [false, true] {
        let mut cmd = herd();
        cmd.arg("--tmpdir").arg(disk.path());
        if keep {
            cmd.arg("-k");
        }
        let out = cmd
            .args([
                "-j",
                "4",
                "--shell",
                "head -c 30000000 /dev/zero | tr '\\0' {}",
            ])
            .args([":::", "A", "B", "C", "D"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let runs = runs(&out.stdout);
        assert_eq!(
            runs.len(),
            4,
            "outputs mixed (-k: {keep}): {:?}",
            &runs[..runs.len().min(10)]
        );
        assert!(runs.iter().all(|&(_, n)| n == 30_000_000), "{runs:?}");
        if keep {
            assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), b"ABCD");
        }
    }
    // With --tag and -v, the output let through is rendered as a roomy run renders it.
    let run = |tmpdir: &std::path::Path| {
        herd()
            .arg("--tmpdir")
            .arg(tmpdir)
            .args(["-k", "--tag", "-v", "-j", "4", "--shell"])
            .arg("head -c 20000000 /dev/zero | tr '\\0' {} | fold -w 999999; echo end {}")
            .args([":::", "A", "B", "C", "D"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let roomy = tempfile::tempdir().unwrap();
    let (full, expected) = (run(disk.path()), run(roomy.path()));
    assert_eq!(full.status.code(), Some(0), "{}", text(&full.stderr));
    assert!(full.stdout == expected.stdout, "--tag -v output differs");
    if !testkit::have("/usr/bin/time") {
        return;
    }
    let (out, peak_kb) = common::with_peak_rss(&format!(
        "/usr/bin/time -f %M -o {{rss}} {} --tag --tmpdir {} -j 4 --shell 'head -c 100000000 /dev/zero; echo {{}}' ::: 1 2 3 4 | wc -c",
        env!("CARGO_BIN_EXE_herd"),
        disk.path().display()
    ));
    assert_eq!(text(&out.stdout).trim(), "400000016");
    assert!(
        peak_kb < 128 * 1024,
        "peak RSS {peak_kb} KiB for 4 jobs of 100 MB with a full disk"
    );
}

#[test]
fn keep_order_behind_a_slow_job_with_a_full_disk_loses_nothing() {
    // -k parks jobs 2..4 (15 MB each) behind job 1, which waits for them: past 16 MiB the
    // parked bytes go to a backlog file in --tmpdir, which is full. herd used to stop with
    // "cannot write to the -k backlog file" and lose them; now it keeps them as they came.
    let Some(disk) = testkit::SmallDisk::mount("1m") else {
        return;
    };
    let flags = tempfile::tempdir().unwrap();
    let dir = flags.path().display();
    let wait = ["2", "3", "4"]
        .map(|n| testkit::wait_for_file(&flags.path().join(n)))
        .join("; ");
    let script = format!(
        "if [ {{}} = 1 ]; then {wait}; else head -c 15000000 /dev/zero; touch {dir}/{{}}; fi; echo {{}}"
    );
    let out = herd()
        .arg("--tmpdir")
        .arg(disk.path())
        .args([
            "-k", "-j", "4", "--shell", &script, ":::", "1", "2", "3", "4",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let numbers: Vec<u8> = out.stdout.iter().copied().filter(|&b| b != 0).collect();
    assert_eq!(numbers, b"1\n2\n3\n4\n");
    assert_eq!(out.stdout.len(), 3 * 15_000_000 + 8);
}
