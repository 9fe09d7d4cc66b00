//! The `herd` command against real processes.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
mod common;

use common::{herd, run, text, with_input, with_peak_rss};
use testkit::{assert_gone, data_files, have, long_sleep, Rng};

/// 1000 jobs, each a shell command line that writes random binary data to stdout and stderr at
/// once, in writes of random size; returns the input (one command per line) and, per job, the
/// expected stdout and stderr.
/// Per job, the stdout and stderr it must produce.
type Expected = Vec<(Vec<u8>, Vec<u8>)>;

fn spew_jobs(dir: &std::path::Path) -> (Vec<u8>, Expected) {
    let files = data_files(dir, 64, 11);
    let mut rng = Rng(5);
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..1000 {
        let (o, e) = (rng.below(64) as usize, rng.below(64) as usize);
        let line = format!(
            "dd if={} bs={} status=none & dd if={} bs={} status=none >&2; wait\n",
            files[o].0.display(),
            1 + rng.below(9000),
            files[e].0.display(),
            1 + rng.below(9000)
        );
        input.extend_from_slice(line.as_bytes());
        expected.push((files[o].1.clone(), files[e].1.clone()));
    }
    (input, expected)
}

#[test]
fn byte_exact_capture_of_1000_jobs_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let (input, expected) = spew_jobs(dir.path());
    let out = with_input(&["-k", "-j", "32"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout: Vec<u8> = expected.iter().flat_map(|(o, _)| o.clone()).collect();
    let stderr: Vec<u8> = expected.iter().flat_map(|(_, e)| e.clone()).collect();
    assert!(
        out.stdout == stdout,
        "stdout differs ({} vs {} bytes)",
        out.stdout.len(),
        stdout.len()
    );
    assert!(
        out.stderr == stderr,
        "stderr differs ({} vs {} bytes)",
        out.stderr.len(),
        stderr.len()
    );
}

#[test]
fn byte_exact_capture_of_1000_jobs_in_completion_order_with_json() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let (input, expected) = spew_jobs(dir.path());
    let json_path = dir.path().join("results.jsonl");
    let out = with_input(&["-j", "32", "--json", json_path.to_str().unwrap()], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = std::fs::read_to_string(&json_path).unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut seen = vec![false; expected.len()];
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let seq = v["seq"].as_u64().unwrap() as usize;
        assert!(
            !std::mem::replace(&mut seen[seq - 1], true),
            "job {seq} reported twice"
        );
        for (name, want, all) in [
            ("stdout", &expected[seq - 1].0, &mut stdout),
            ("stderr", &expected[seq - 1].1, &mut stderr),
        ] {
            let got = match v[name].as_str() {
                Some(s) => s.as_bytes().to_vec(),
                None => base64::engine::general_purpose::STANDARD
                    .decode(v[format!("{name}_base64")].as_str().unwrap())
                    .unwrap(),
            };
            assert!(&got == want, "job {seq} {name} differs");
            assert_eq!(v[format!("{name}_bytes")].as_u64(), Some(want.len() as u64));
            all.extend_from_slice(want);
        }
    }
    assert!(seen.iter().all(|&s| s), "every job reported");
    // Grouped output is each job's block, in the order the jobs finished (the JSON order).
    assert!(out.stdout == stdout, "grouped stdout differs");
    assert!(out.stderr == stderr, "grouped stderr differs");
}

#[test]
fn no_deadlock_when_a_job_writes_50_mb_to_one_stream_before_the_other() {
    for (first, second) in [("2", "1"), ("1", "2")] {
        let script = format!("head -c 50000000 /dev/zero >&{first}; echo done >&{second}");
        let out = run(&["-q", "sh", "-c", &script, ":::", "1"]);
        assert_eq!(out.status.code(), Some(0));
        let (big, small) = if first == "2" {
            (&out.stderr, &out.stdout)
        } else {
            (&out.stdout, &out.stderr)
        };
        assert_eq!(big.len(), 50_000_000);
        assert!(big.iter().all(|&b| b == 0));
        assert_eq!(small, b"done\n");
    }
}

#[test]
fn a_grandchild_holding_the_pipe_is_killed_and_the_output_kept() {
    let sleep = long_sleep(11);
    let out = run(&[
        "--eof-grace",
        "0.3",
        "-q",
        "sh",
        "-c",
        &format!("sleep {sleep} & echo hi"),
        ":::",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hi\n");
    assert!(
        text(&out.stderr).contains("descendants still held its output"),
        "{}",
        text(&out.stderr)
    );
    assert_gone(&sleep);
}

#[test]
fn a_thousand_jobs_at_j_500_under_ulimit_n_64() {
    let script = format!(
        "ulimit -n 64 && exec {} -j 500 echo ::: $(seq 1000)",
        env!("CARGO_BIN_EXE_herd")
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut lines: Vec<u32> = text(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn a_timeout_kills_the_whole_tree() {
    let sleep = long_sleep(12);
    let script = format!("trap '' TERM; sleep {sleep} & echo started; wait");
    let out = run(&["--timeout", "1", "-q", "sh", "-c", &script, ":::", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"started\n");
    assert!(
        text(&out.stderr).contains("timed out after 1s"),
        "{}",
        text(&out.stderr)
    );
    assert_gone(&sleep);
}

fn interrupt_leaves_no_survivor(signal: &str, code: i32, tag: u32) {
    interrupt_leaves_no_survivor_from(herd(), signal, code, tag);
}

/// `start` runs herd (perhaps through a wrapper that changes what it inherits).
fn interrupt_leaves_no_survivor_from(mut start: Command, signal: &str, code: i32, tag: u32) {
    let sleep = long_sleep(tag);
    let script = format!("sleep {sleep} & echo up; wait");
    let mut child = start
        .args([
            "--line-buffer",
            "-j",
            "3",
            "-q",
            "sh",
            "-c",
            &script,
            ":::",
            "1",
            "2",
            "3",
            "4",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        assert_eq!(lines.next().unwrap().unwrap(), "up");
    }
    // Three jobs run, each with a grandchild; two wait in the queue.
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // herd must end of itself; if it is deaf to the signal, the test fails instead of hanging.
    let mut status = None;
    testkit::wait_until("herd to end after the signal", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(code));
    assert_eq!(lines.count(), 0, "no queued job started after the signal");
    assert_gone(&sleep);
}

#[test]
fn sigint_leaves_no_survivor() {
    interrupt_leaves_no_survivor("-INT", 130, 13);
}

#[test]
fn sigterm_leaves_no_survivor() {
    interrupt_leaves_no_survivor("-TERM", 143, 14);
}

#[test]
fn an_inherited_blocked_signal_mask_does_not_make_herd_deaf() {
    if !have("perl") {
        return;
    }
    // The parent blocks TERM, INT and HUP, then execs herd: the mask is inherited.
    let mut wrapped = Command::new("perl");
    wrapped.args([
        "-MPOSIX",
        "-e",
        "sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGTERM, SIGINT, SIGHUP)); exec @ARGV",
        env!("CARGO_BIN_EXE_herd"),
    ]);
    interrupt_leaves_no_survivor_from(wrapped, "-TERM", 143, 70);
}

#[test]
fn an_inherited_ignored_sigchld_keeps_exit_statuses() {
    if !have("perl") {
        return;
    }
    // SIGCHLD ignored makes the kernel reap children at once, statuses lost.
    let out = Command::new("perl")
        .args([
            "-e",
            "$SIG{CHLD} = 'IGNORE'; exec @ARGV",
            env!("CARGO_BIN_EXE_herd"),
        ])
        .args(["--json", "-", "-q", "sh", "-c", "exit $0", ":::", "0", "3"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut rows = common::json_lines(&out.stdout);
    rows.sort_by_key(|r| r["seq"].as_u64());
    assert_eq!(rows[0]["exit_code"], 0, "{rows:?}");
    assert_eq!(rows[1]["exit_code"], 3, "{rows:?}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn every_signal_that_would_end_herd_ends_the_jobs_too() {
    // Their default action ends a process: without a handler herd would die and leave every
    // job running.
    for (i, (signal, number)) in [
        ("-HUP", 1),
        ("-QUIT", 3),
        ("-USR1", 10),
        ("-USR2", 12),
        ("-ALRM", 14),
        ("-XCPU", 24),
        ("-VTALRM", 26),
        ("-PROF", 27),
    ]
    .into_iter()
    .enumerate()
    {
        interrupt_leaves_no_survivor(signal, 128 + number, 60 + i as u32);
    }
}

#[test]
fn a_run_under_strace_completes_correctly() {
    if !have("strace") {
        return;
    }
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            env!("CARGO_BIN_EXE_herd"),
            "-k",
            "-j",
            "8",
            "-q",
            "sh",
            "-c",
            "echo $0; echo e$0 >&2",
        ])
        .arg(":::")
        .args((1..=200).map(|i| i.to_string()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let want: String = (1..=200).map(|i| format!("{i}\n")).collect();
    assert_eq!(text(&out.stdout), want);
    let want: String = (1..=200).map(|i| format!("e{i}\n")).collect();
    assert_eq!(text(&out.stderr), want);
}

// A spilled stream reaches herd's stdout through the kernel (sendfile or copy_file_range)
// when that is a file or a pipe, past herd's own buffer: what herd buffered before (the jobs
// ahead of it, the start of the file) must land first, and the spill file must be read from
// its start.
#[test]
fn spilled_output_lands_byte_exact_and_in_order_in_a_file_and_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(21);
    let big = rng.bytes(3 << 20); // past the 1 MiB a stream keeps in memory
    let big_file = dir.path().join("big.bin");
    std::fs::write(&big_file, &big).unwrap();
    let big_arg = format!("cat {}", big_file.display());
    let args = [
        "-k",
        "-j",
        "3",
        "-q",
        "sh",
        "-c",
        "{}",
        ":::",
        "echo first",
        &big_arg,
        "echo between",
        &big_arg,
        "echo last",
    ];
    let mut expected = b"first\n".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"between\n");
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"last\n");
    // A file, already holding a line: herd's output goes after it.
    let out_path = dir.path().join("out");
    std::fs::write(&out_path, b"before\n").unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_path)
        .unwrap();
    let status = herd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read(&out_path).unwrap();
    assert!(written.starts_with(b"before\n"));
    assert!(
        written[7..] == expected[..],
        "the file holds the jobs' bytes in order"
    );
    // A pipe.
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout == expected,
        "the pipe carries the jobs' bytes in order"
    );
}

#[test]
fn memory_stays_bounded_while_jobs_print_hundreds_of_mb() {
    if !have("/usr/bin/time") {
        return;
    }
    let (out, peak_kb) = with_peak_rss(&format!(
        "/usr/bin/time -f %M -o {{rss}} {} -j 2 'head -c 300000000 /dev/zero;:' ::: 1 2 | wc -c",
        env!("CARGO_BIN_EXE_herd")
    ));
    assert_eq!(
        text(&out.stdout).trim(),
        "600000000",
        "every byte came through"
    );
    assert!(
        peak_kb < 32 * 1024,
        "peak RSS {peak_kb} KiB for 600 MB of output"
    );
}

#[test]
fn exit_status_counts_failed_jobs_up_to_101() {
    assert_eq!(run(&["true", ":::", "1", "2"]).status.code(), Some(0));
    let out = run(&["-q", "sh", "-c", "exit $0", ":::", "0", "1", "2", "0", "3"]);
    assert_eq!(out.status.code(), Some(3));
    let many: Vec<String> = (0..102).map(|i| i.to_string()).collect();
    let mut args = vec!["false", ":::"];
    args.extend(many.iter().map(String::as_str));
    assert_eq!(run(&args).status.code(), Some(101));
}

#[test]
fn herds_own_errors_exit_255_with_one_line() {
    for (args, expect) in [
        (vec!["--bogus", "echo"], "unknown option '--bogus'"),
        (vec!["--jobs", "x", "echo"], "invalid value 'x' for --jobs"),
        (vec!["--timeout", "-1", "echo"], "--timeout"),
        (
            vec!["echo", "{2}", ":::", "a"],
            "{2} names input source 2, but there is 1 input source",
        ),
        (
            vec!["echo", "::::", "/nonexistent/herd-input"],
            "/nonexistent/herd-input",
        ),
        (vec!["--tag", "-u", "echo"], "--tag"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("herd: ") && err.contains(expect),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn bad_input_stops_herd_before_any_job_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = run(&[
        "touch",
        marker.to_str().unwrap(),
        "{3}",
        ":::",
        "a",
        ":::",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(255));
    assert!(!marker.exists(), "no job ran");
}

#[test]
fn a_missing_program_fails_alone() {
    let out = run(&[
        "-k",
        "{}",
        "ok",
        ":::",
        "echo",
        "herd-no-such-program",
        "echo",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"ok\nok\n");
    // A program that is not on PATH is left to the shell, which says so as it would under
    // GNU parallel (and exits 127).
    let err = text(&out.stderr);
    assert!(
        err.ends_with(": herd-no-such-program: command not found\n") && err.lines().count() == 1,
        "{err}"
    );
    let out = run(&["--json", "-", "herd-no-such-program", ":::", "x"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 127);
    assert!(v["stderr"]
        .as_str()
        .unwrap()
        .contains("herd-no-such-program: command not found"));
}

#[test]
fn json_records_carry_status_times_and_output() {
    let out = run(&[
        "--json",
        "-",
        "-k",
        "--timeout",
        "2",
        "-q",
        "sh",
        "-c",
        "{}",
        ":::",
        "echo out; echo err >&2; exit 3",
        "kill -KILL $$",
        "printf '\\377\\376'",
        "exec sleep 30",
    ]);
    assert_eq!(out.status.code(), Some(3), "three of the four jobs fail");
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "stdout carries only JSON");
    let by_seq = |n: u64| records.iter().find(|r| r["seq"] == n).unwrap();
    let r = by_seq(1);
    assert_eq!(
        r["command"],
        serde_json::json!(["sh", "-c", "echo out; echo err >&2; exit 3"])
    );
    assert_eq!(
        (
            r["exit_code"].as_i64(),
            r["signal"].is_null(),
            r["timed_out"].as_bool()
        ),
        (Some(3), true, Some(false))
    );
    assert_eq!(
        (r["stdout"].as_str(), r["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );
    assert_eq!(
        (r["stdout_bytes"].as_u64(), r["stderr_bytes"].as_u64()),
        (Some(4), Some(4))
    );
    let start = r["start_time"].as_str().unwrap();
    assert!(
        start.len() > 20 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );
    for key in ["duration_s", "user_time_s", "system_time_s"] {
        assert!(r[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    assert!(r["max_rss_kb"].as_u64().unwrap() > 0);
    let r = by_seq(2);
    assert_eq!(
        (r["exit_code"].is_null(), r["signal"].as_str()),
        (true, Some("SIGKILL"))
    );
    let r = by_seq(3);
    assert_eq!(
        (r["stdout"].is_null(), r["stdout_base64"].as_str()),
        (true, Some("//4="))
    );
    let r = by_seq(4);
    assert_eq!(
        (r["timed_out"].as_bool(), r["signal"].as_str()),
        (Some(true), Some("SIGTERM"))
    );
}

#[test]
fn placeholders_and_sources() {
    let out = run(&[
        "-k", "echo", "{1/}", "{1//}", "{1.}", "{1/.}", "{2}", "{#}", ":::", "a/b.txt", "c", ":::",
        "x", "y",
    ]);
    assert_eq!(
        text(&out.stdout),
        "b.txt a a/b b x 1\nb.txt a a/b b y 2\nc . c c x 3\nc . c c y 4\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list");
    std::fs::write(&list, "one\ntwo\n").unwrap();
    let out = run(&["-k", "echo", "::::", list.to_str().unwrap()]);
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    // (Brackets would be a glob in the shell line, as under GNU parallel: use plain text.)
    let out = with_input(&["-k", "-0", "echo", "-{}-"], b"with space\0new\nline\0");
    assert_eq!(text(&out.stdout), "-with space-\n-new\nline-\n");
    let out = run(&["-k", "-j", "2", "echo", "{%}", "{}", ":::", "a"]);
    assert_eq!(text(&out.stdout), "1 a\n");
    // {#} and {%} are replacement strings: with one, the values are not appended (GNU's rule).
    let out = run(&["-k", "echo", "{#}", ":::", "a", "b"]);
    assert_eq!(text(&out.stdout), "1\n2\n");
}

/// A line that needs no shell runs directly: with exactly the arguments the shell would have
/// given the program, so forcing the shell (`HERD_ALWAYS_SHELL`) prints the same.
#[test]
fn running_a_plain_line_directly_means_what_the_shell_would() {
    let values = ["a b", "", "it's", "*", "$HOME", "x\"y", "é", "-n", "a\\nb"];
    let mut args = vec!["-k", "--json", "-", "echo", "{}", "x{}y", ":::"];
    args.extend(values);
    let with = |always: bool| {
        let mut cmd = herd();
        cmd.args(&args)
            .env("PARALLEL_SHELL", "/bin/bash")
            .stdin(std::process::Stdio::null());
        if always {
            cmd.env("HERD_ALWAYS_SHELL", "1");
        }
        // --json writes records as jobs finish: put them in job order.
        let mut records = common::json_lines(&cmd.output().unwrap().stdout);
        records.sort_by_key(|r| r["seq"].as_u64());
        records
    };
    let (direct, shell) = (with(false), with(true));
    assert_eq!(direct.len(), values.len());
    for (d, s) in direct.iter().zip(&shell) {
        assert_eq!(d["command"][0], "echo", "run directly: {d}");
        assert_eq!(s["command"][0], "/bin/bash", "run by the shell: {s}");
        assert_eq!(d["stdout"], s["stdout"], "{d} / {s}");
    }
}

#[test]
fn values_are_never_interpreted_by_a_shell_unless_asked() {
    let out = run(&["-k", "echo", ":::", "$(echo pwned)", "*", "a;b"]);
    assert_eq!(text(&out.stdout), "$(echo pwned)\n*\na;b\n");
    let out = run(&[
        "-k",
        "--shell",
        "echo {} | tr a-z A-Z",
        ":::",
        "it's",
        "$HOME",
        "x`id`",
    ]);
    assert_eq!(text(&out.stdout), "IT'S\n$HOME\nX`ID`\n");
    // Without a COMMAND each input line is itself a shell command.
    let out = with_input(&["-k"], b"echo one | tr o 0\necho two\n");
    assert_eq!(text(&out.stdout), "0ne\ntwo\n");
}

#[test]
fn line_buffer_never_cuts_a_line_and_tags_each_one() {
    // Each job writes every line in three pieces, with other jobs writing in between.
    let script = "i=0; while [ $i -lt 200 ]; do printf \"$0\"; printf -- \"-$i\"; printf '\\n'; i=$((i+1)); done";
    let out = run(&[
        "--line-buffer",
        "--tag",
        "-j",
        "4",
        "-q",
        "sh",
        "-c",
        script,
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let mut per_job: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for line in text(&out.stdout).lines() {
        let (tag, rest) = line.split_once('\t').unwrap();
        let (name, n) = rest.split_once('-').unwrap();
        assert_eq!(tag, name, "line {line:?} carries its job's tag");
        per_job
            .entry(name.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    for name in ["a", "b", "c", "d"] {
        assert_eq!(
            per_job[name],
            (0..200).collect::<Vec<_>>(),
            "job {name}: all lines, whole, in order"
        );
    }
}

#[test]
fn ungroup_passes_every_byte_through() {
    let out = run(&[
        "-u",
        "-j",
        "4",
        "head",
        "-c",
        "{}",
        "/dev/zero",
        ":::",
        "100000",
        "200000",
        "300000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout.len(), 600_000);
}

#[test]
fn grouped_output_of_each_job_is_contiguous() {
    let script = "i=0; while [ $i -lt 500 ]; do echo \"$0 $i\"; i=$((i+1)); done";
    let out = run(&[
        "-j", "4", "-q", "sh", "-c", script, ":::", "a", "b", "c", "d",
    ]);
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2000);
    for block in lines.chunks(500) {
        let name = block[0].split(' ').next().unwrap();
        for (i, line) in block.iter().enumerate() {
            assert_eq!(line, &format!("{name} {i}"));
        }
    }
}

#[test]
fn inputs_are_streamed_not_read_whole_first() {
    let mut child = herd()
        .args(["--line-buffer", "echo", "got"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin.write_all(b"1\n").unwrap();
    stdin.flush().unwrap();
    // The first job runs and prints while herd's input is still open.
    assert_eq!(lines.next().unwrap().unwrap(), "got 1");
    stdin.write_all(b"2\n").unwrap();
    drop(stdin);
    assert_eq!(lines.next().unwrap().unwrap(), "got 2");
    assert!(child.wait().unwrap().success());
}

#[test]
fn help_teaches_with_examples() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "{/.}",
        "{#}",
        "--keep-order",
        "--line-buffer",
        "--json",
        "--timeout",
        "Examples:",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}");
    }
}

#[test]
fn dry_run_prints_commands_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = run(&[
        "--dry-run",
        "-j",
        "2",
        "touch",
        marker.to_str().unwrap(),
        "{#}-{%}",
        "{}",
        ":::",
        "a b",
        "c",
        "d",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let m = marker.to_str().unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("touch {m} 1-1 'a b'\ntouch {m} 2-2 c\ntouch {m} 3-1 d\n")
    );
    assert!(!marker.exists(), "nothing ran");
}

#[test]
fn arg_files_are_input_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "x\ny\n").unwrap();
    std::fs::write(&b, "1\n2\n").unwrap();
    let out = run(&[
        "-k",
        "-a",
        a.to_str().unwrap(),
        "--arg-file",
        b.to_str().unwrap(),
        "echo",
        "{1}{2}",
    ]);
    assert_eq!(text(&out.stdout), "x1\nx2\ny1\ny2\n");
    let out = run(&["-a", "/nonexistent/herd-args", "echo"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("/nonexistent/herd-args"));
}

#[test]
fn joblog_in_gnu_parallel_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("joblog");
    let out = run(&[
        "-k",
        "--joblog",
        log.to_str().unwrap(),
        "-q",
        "sh",
        "-c",
        "printf $0; exit $0",
        ":::",
        "0",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    rows.sort_by_key(|r| r[0].clone());
    assert_eq!(rows.len(), 2);
    for (row, (seq, exit)) in rows.iter().zip([("1", "0"), ("2", "3")]) {
        assert_eq!(row.len(), 9, "{row:?}");
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), row[4].as_str()),
            (seq, ":", "0")
        );
        assert!(
            row[2].parse::<f64>().unwrap() > 1.6e9,
            "start time in epoch seconds"
        );
        assert!(row[3].trim().parse::<f64>().unwrap() >= 0.0);
        assert_eq!(
            (row[5].as_str(), row[6].as_str(), row[7].as_str()),
            ("1", exit, "0")
        );
        assert_eq!(row[8], format!("sh -c 'printf $0; exit $0' {exit}"));
    }
}

#[test]
fn retries_run_a_failing_job_again_and_report_its_last_run() {
    let dir = tempfile::tempdir().unwrap();
    // Each run counts itself in a file; the third run succeeds.
    let script = "n=$(cat \"$0\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$0\"; echo run $n; [ $n -ge 3 ]";
    for (retries, code, last_run) in [("3", 0, "3"), ("2", 1, "2")] {
        let counter = dir.path().join(format!("count-{retries}"));
        let log = dir.path().join(format!("log-{retries}"));
        let out = run(&[
            "--retries",
            retries,
            "--joblog",
            log.to_str().unwrap(),
            "-q",
            "sh",
            "-c",
            script,
            ":::",
            counter.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(code), "--retries {retries}");
        assert_eq!(
            text(&out.stdout),
            format!("run {last_run}\n"),
            "only the last run is printed"
        );
        assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), last_run);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().lines().count(),
            2,
            "one joblog row"
        );
    }
    let out = run(&["--retries", "0", "true"]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn the_help_names_the_keys_events_really_have() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bin");
    std::fs::write(&file, b"a\xff\n").unwrap();
    let out = run(&[
        "--events",
        "-",
        "--events-output",
        "cat",
        ":::",
        file.to_str().unwrap(),
    ]);
    let output = common::json_lines(&out.stdout)
        .into_iter()
        .find(|e| e["event"] == "output")
        .expect("an output event");
    assert_eq!(output["base64"], "Yf8K", "{output}");
    let help = text(&run(&["--help"]).stdout);
    assert!(help.contains("\"base64\""), "--help names the base64 key");
    assert!(
        !help.contains("data_base64"),
        "--help names a key events do not have"
    );
}

#[test]
fn a_huge_job_count_means_no_limit_instead_of_overflowing() {
    let out = run(&["-j", "+18446744073709551615", "echo", ":::", "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\n");
}

#[test]
fn a_message_about_a_job_with_a_huge_command_stays_short() {
    // A 100 KB value in a job that times out: the message names the job, not the value.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big");
    std::fs::write(&input, "x".repeat(100_000)).unwrap();
    let out = run(&[
        "--timeout",
        "0.1",
        "-q",
        "sh",
        "-c",
        "sleep 5",
        "sh",
        "::::",
        input.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert!(err.contains("timed out"), "{}", &err[..err.len().min(300)]);
    assert!(err.len() < 2000, "{} bytes of message", err.len());
    assert!(
        err.contains("bytes in all)"),
        "{}",
        &err[..err.len().min(300)]
    );
}

#[test]
fn a_reader_that_goes_away_stops_the_run_at_once() {
    // `herd -k … | head -1`: the first job's output is read, then the reader closes the pipe
    // while the second job still runs. herd must notice now, not at that job's end.
    for mode in ["-k", "--group"] {
        let sleep = long_sleep(16);
        let script = format!("if [ {{}} = 1 ]; then echo one; else sleep {sleep}; fi");
        let mut child = herd()
            .args([mode, "-j", "2", "--shell", &script, ":::", "1", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "one\n");
        testkit::wait_until("the sleeper to start", || {
            !testkit::processes_with(&sleep).is_empty()
        });
        drop(stdout);
        let mut status = None;
        testkit::wait_until("herd to end after its reader left", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert_eq!(status.unwrap().code(), Some(141), "{mode}");
        assert_gone(&sleep);
    }
}

/// One job printing a 300 MB line (and a byte on stderr), in every output mode: herd's peak
/// RSS stays under 64 MiB and every byte comes through.
#[test]
fn memory_stays_bounded_in_every_output_mode_for_a_300_mb_line() {
    if !have("/usr/bin/time") {
        return;
    }
    let modes: &[&[&str]] = &[
        &[],
        &["-k"],
        &["-u"],
        &["--lb"],
        &["--tag"],
        &["--lb", "--tag"],
        &["-k", "--lb"],
        &["--json", "-"],
        &["--json-timeline", "--json", "-"],
    ];
    for mode in modes {
        let (out, peak_kb) = with_peak_rss(&format!(
            "/usr/bin/time -f %M -o {{rss}} {} {} --shell \
             'head -c 300000000 /dev/zero | tr \"\\0\" a; echo; printf x >&2' ::: 1 | wc -c",
            env!("CARGO_BIN_EXE_herd"),
            mode.join(" ")
        ));
        let bytes: u64 = text(&out.stdout).trim().parse().unwrap();
        let least = if mode.contains(&"--tag") {
            300_000_003
        } else {
            300_000_001
        };
        assert!(bytes >= least, "{mode:?}: {bytes} bytes came through");
        assert!(
            peak_kb < 64 * 1024,
            "{mode:?}: peak RSS {peak_kb} KiB for a 300 MB line"
        );
    }
}

/// `-k` behind a slow first job: `n` jobs of `bytes` output each finish and wait for their
/// turn. Returns herd's peak RSS (KiB) and the most descriptors it held while they waited.
fn parked_run(n: u32, bytes: u32) -> (u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    std::fs::create_dir(&done).unwrap();
    let rss = dir.path().join("rss");
    // Job 1 waits until every other job has finished (each leaves a file behind).
    let script = format!(
        "if [ {{}} = 1 ]; then until [ $(ls {d} | wc -l) -ge {others} ]; do sleep 0.05; done; \
         else head -c {bytes} /dev/zero; touch {d}/{{}}; fi; echo {{}}",
        d = done.display(),
        others = n - 1,
    );
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_herd"))
        .args(["-k", "-j", "8", "--shell", &script, "::::", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = (1..=n).map(|i| format!("{i}\n")).collect();
    std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    // herd is time's child; count its descriptors while job 1 waits.
    let mut most_fds = 0;
    while child.try_wait().unwrap().is_none() {
        let herd_pid =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
                .unwrap_or_default();
        if let Some(pid) = herd_pid.split_whitespace().next() {
            if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                most_fds = most_fds.max(fds.count());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = reader.join().unwrap();
    // In order, every job's bytes then its number.
    let mut expected = Vec::new();
    for i in 1..=n {
        if i > 1 {
            expected.resize(expected.len() + bytes as usize, 0u8);
        }
        expected.extend_from_slice(format!("{i}\n").as_bytes());
    }
    assert!(out == expected, "-k output differs");
    let peak: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (peak, most_fds)
}

#[test]
fn jobs_waiting_for_their_turn_under_k_are_kept_compactly() {
    if !have("/usr/bin/time") {
        return;
    }
    // 10,000 small jobs waiting cost about their bytes (they used to cost 1.4 KB each).
    let (few, _) = parked_run(1000, 8);
    let (many, _) = parked_run(10_000, 8);
    let per_job = (many.saturating_sub(few) * 1024) / 9_000;
    eprintln!("{per_job} bytes per waiting job ({few} KiB, {many} KiB)");
    assert!(
        per_job < 400,
        "{per_job} bytes per waiting job ({few} KiB, {many} KiB)"
    );
    // 150 jobs whose output spilled wait without a descriptor each.
    let (_, fds) = parked_run(150, 1_500_000);
    eprintln!("{fds} descriptors at most while 149 spilled jobs waited");
    assert!(fds < 100, "{fds} descriptors while 149 spilled jobs waited");
}
