//! The `herd` command's options beyond the core (issue 4), against real processes.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
mod common;

use common::{herd, json_lines, run, text};
use testkit::{assert_gone, data_files, have, long_sleep, wait_for_file, wait_until};

fn run_in(dir: &Path, args: &[&str]) -> Output {
    herd()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read(path).unwrap_or_default())
}

#[test]
fn colsep_splits_values_into_numbered_columns() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "a,b,c\nd,,f\ng\n").unwrap();
    let out = run(&[
        "-k",
        "--colsep",
        ",",
        "echo",
        "{3}-{1}-{2}",
        "::::",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "c-a-b\nf-d-\n-g-\n");
    // A regex, and columns from two sources in a row.
    let out = run(&[
        "-k",
        "--colsep",
        " +",
        "echo",
        "{4}{3}{2}{1}",
        ":::",
        "a  b",
        ":::",
        "c d",
    ]);
    assert_eq!(text(&out.stdout), "dcba\n");
}

#[test]
fn linked_sources_pair_values_instead_of_a_product() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nums");
    std::fs::write(&file, "1\n2\n3\n").unwrap();
    let out = run(&[
        "-k",
        "echo",
        "{1}{2}{3}",
        ":::",
        "a",
        "b",
        "c",
        "::::+",
        file.to_str().unwrap(),
        ":::",
        "x",
        "y",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a1x\na1y\nb2x\nb2y\nc3x\nc3y\n");
    // :::+ stops with the shorter source; --link wraps the shorter around (GNU's rules).
    let out = run(&["-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"]);
    assert_eq!(text(&out.stdout), "a 1\nb 2\n");
    let out = run(&[
        "-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2",
    ]);
    assert_eq!(text(&out.stdout), "a 1\nb 2\nc 1\n");
    // As the first source, :::+ has nothing to link to and is a source of its own.
    let out = run(&["-k", "echo", ":::+", "a", "b"]);
    assert_eq!(text(&out.stdout), "a\nb\n");
}

/// `--resume` skips what the joblog lists; `--resume-failed` reruns only the failures; both
/// append to the log, and `-k` output does not wait for skipped jobs.
#[test]
fn resume_and_resume_failed_follow_the_joblog() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let log = log.to_str().unwrap();
    // Job n writes file ran-n; jobs 2 and 4 fail.
    let script = "touch ran-$0-$1; echo out $0; [ $(($0 % 2)) = 1 ]";
    let first = run_in(
        dir.path(),
        &[
            "-k", "--joblog", log, "-q", "sh", "-c", script, "{}", "first", ":::", "1", "2", "3",
            "4",
        ],
    );
    assert_eq!(first.status.code(), Some(2));
    let ran = |tag: &str| -> Vec<u32> {
        (1..=6)
            .filter(|n| dir.path().join(format!("ran-{n}-{tag}")).exists())
            .collect()
    };
    assert_eq!(ran("first"), [1, 2, 3, 4]);

    let again = run_in(
        dir.path(),
        &[
            "-k",
            "--resume-failed",
            "--joblog",
            log,
            "-q",
            "sh",
            "-c",
            script,
            "{}",
            "failed",
            ":::",
            "1",
            "2",
            "3",
            "4",
            "5",
        ],
    );
    assert_eq!(ran("failed"), [2, 4, 5], "only failures and new jobs run");
    assert_eq!(text(&again.stdout), "out 2\nout 4\nout 5\n");
    assert_eq!(again.status.code(), Some(2), "2 and 4 still fail");

    let resumed = run_in(
        dir.path(),
        &[
            "-k", "--resume", "--joblog", log, "-q", "sh", "-c", script, "{}", "resume", ":::",
            "1", "2", "3", "4", "5", "6",
        ],
    );
    assert_eq!(ran("resume"), [6], "every logged job is skipped");
    assert_eq!(resumed.status.code(), Some(1), "job 6 fails");
    let log_text = std::fs::read_to_string(log).unwrap();
    assert_eq!(log_text.matches("Seq\tHost").count(), 1, "one header");
    assert_eq!(log_text.lines().count(), 1 + 4 + 3 + 1, "{log_text}");

    // A file that is not a joblog stops herd before any job.
    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, "Seq Host\n1 2 3\n").unwrap();
    let out = run_in(
        dir.path(),
        &[
            "--resume",
            "--joblog",
            bad.to_str().unwrap(),
            "touch",
            "ran-bad",
            ":::",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("not a joblog header"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("ran-bad").exists());
}

#[test]
fn results_hold_each_jobs_streams_byte_exact_written_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let files = data_files(dir.path(), 20, 3);
    let results = dir.path().join("res");
    let mut args = vec![
        "--results".to_string(),
        // A name with a replacement string ending in /: the job's directory.
        format!("{}/{{#}}/", results.display()),
        "-q".into(),
        "sh".into(),
        "-c".into(),
        "cat \"$0\"; cat \"$1\" >&2".into(),
        "{1}".into(),
        "{2}".into(),
        ":::".into(),
    ];
    args.extend(files[..10].iter().map(|f| f.0.display().to_string()));
    args.push(":::+".into());
    args.extend(files[10..].iter().map(|f| f.0.display().to_string()));
    let out = herd().args(&args).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // As in GNU parallel, output kept in --results is not printed.
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    for seq in 1..=10usize {
        let job = results.join(seq.to_string());
        assert_eq!(
            std::fs::read_to_string(job.join("seq")).unwrap(),
            seq.to_string()
        );
        assert!(
            std::fs::read(job.join("stdout")).unwrap() == files[seq - 1].1,
            "job {seq} stdout"
        );
        assert!(
            std::fs::read(job.join("stderr")).unwrap() == files[seq + 9].1,
            "job {seq} stderr"
        );
    }

    // The file fills while the job runs.
    let go = dir.path().join("go");
    let live = dir.path().join("live");
    let script = format!("echo first; {}; echo second", wait_for_file(&go));
    let child = herd()
        .args([
            "--results",
            live.to_str().unwrap(),
            "-q",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = live.join("1/x/stdout");
    wait_until("the first line in the results file", || {
        std::fs::read(&stdout).is_ok_and(|b| b == b"first\n")
    });
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "");
    assert_eq!(std::fs::read(&stdout).unwrap(), b"first\nsecond\n");
    assert_eq!(std::fs::read(live.join("1/x/stderr")).unwrap(), b"");
}

#[test]
fn results_without_replacement_strings_are_gnu_parallels_tree_of_columns_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = herd()
        .current_dir(dir.path())
        .args([
            "--results",
            "out",
            "-q",
            "sh",
            "-c",
            "echo \"$1\"; echo e >&2",
            "sh",
        ])
        .args([":::", "a/b", "c\\d", ":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    // / and \ are escaped so that each value stays one directory.
    assert_eq!(read("out/1/a\\_b/2/1/stdout"), "a/b 1\n");
    assert_eq!(read("out/1/a\\_b/2/1/stderr"), "e\n");
    assert_eq!(read("out/1/c\\\\d/2/1/seq"), "2");
    // With --header, the columns' names.
    let out = herd()
        .current_dir(dir.path())
        .args([
            "--header",
            ":",
            "--results",
            "named",
            "echo",
            "{size}-{colour}",
        ])
        .args([":::", "size", "S", ":::", "colour", "red"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(read("named/colour/red/size/S/stdout"), "S-red\n");
    // A name with a replacement string and no trailing / is the stdout file itself.
    let out = herd()
        .current_dir(dir.path())
        .args(["--results", "file_{}", "echo", ":::", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(read("file_x"), "x\n");
    assert_eq!(read("file_x.err"), "");
    assert_eq!(read("file_x.seq"), "1");
}

#[test]
fn header_names_columns_from_each_sources_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("t.tsv");
    std::fs::write(&tsv, "name\tsize\r\nfoo\t1\nbar\t2\n").unwrap();
    let out = run(&[
        "-k",
        "--header",
        ":",
        "--colsep",
        "\t",
        "echo",
        "{size}:{name}:{name.}",
        "::::",
        tsv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1:foo:foo\n2:bar:bar\n");
    // Without --colsep each source's first value names it.
    let out = run(&[
        "-k", "--header", ":", "echo", "{b}{a}", ":::", "a", "1", "2", ":::", "b", "x",
    ]);
    assert_eq!(text(&out.stdout), "x1\nx2\n");
}

#[test]
fn halt_now_kills_running_trees_and_exits_with_the_failing_status() {
    let dir = tempfile::tempdir().unwrap();
    let sleep = long_sleep(41);
    let input = format!(
        "sleep {sleep}\nsh -c 'exit 7'\ntouch {}\ntouch {}\n",
        dir.path().join("after-1").display(),
        dir.path().join("after-2").display()
    );
    let input_file = dir.path().join("commands");
    std::fs::write(&input_file, input).unwrap();
    let started = std::time::Instant::now();
    let out = run(&[
        "-j",
        "2",
        "--halt",
        "now,fail=1",
        "-a",
        input_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        started.elapsed().as_secs() < 60,
        "the sleeping job was killed"
    );
    // GNU parallel's note, and nothing about the job the halt killed.
    assert_eq!(
        text(&out.stderr),
        "herd: This job failed:\nsh -c 'exit 7'\n"
    );
    assert!(
        !dir.path().join("after-1").exists(),
        "no job starts after the halt"
    );
    assert!(!dir.path().join("after-2").exists());
    assert_gone(&sleep);
}

#[test]
fn halt_soon_lets_running_jobs_finish_and_starts_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Job 1 runs until job 2 has failed and herd has said it halts; job 3 must never start.
    let input = format!(
        "{}; echo one done\nexit 3\ntouch {}\n",
        wait_for_file(&go),
        dir.path().join("three").display()
    );
    let input_file = dir.path().join("commands");
    std::fs::write(&input_file, input).unwrap();
    let mut child = herd()
        .args([
            "-j",
            "2",
            "--halt",
            "soon,fail=1",
            "-a",
            input_file.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let said: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    assert_eq!(
        said,
        [
            "herd: This job failed:",
            "exit 3",
            "herd: Starting no more jobs. Waiting for 1 jobs to finish."
        ]
    );
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "one done\n");
    assert!(!dir.path().join("three").exists());

    // done=50% of 4 jobs: two run, one at a time.
    let out = run(&[
        "-j",
        "1",
        "--halt",
        "soon,done=50%",
        "echo",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "a\nb\n");
    // success=1 halts on the first success, with status 0.
    let out = run(&[
        "-j",
        "1",
        "--halt",
        "now,success=1",
        "-q",
        "sh",
        "-c",
        "exit $0",
        ":::",
        "1",
        "0",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0));
    // GNU's exit status with a percentage: the share of all jobs that failed, rounded up
    // (2 of 7 failed: 29); with a count above one, the number that failed.
    let jobs = ["0", "5", "0", "6", "0", "0", "0"];
    for (halt, status) in [("soon,fail=25%", 29), ("soon,fail=2", 2)] {
        let mut args = vec!["-j", "1", "--halt", halt, "exit", ":::"];
        args.extend(jobs);
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{halt}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bar_and_eta_draw_only_on_a_terminal_and_summary_always() {
    let out = run(&[
        "--bar",
        "--eta",
        "--summary",
        "-q",
        "sh",
        "-c",
        "exit $0",
        ":::",
        "0",
        "1",
        "0",
    ]);
    let err = text(&out.stderr);
    assert!(!err.contains("/3 jobs"), "no bar without a terminal: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("herd: 3 jobs, 1 failed, "), "{err}");
    if !have("script") {
        return;
    }
    // script(1) gives herd a terminal.
    let command = format!(
        "{} --bar -j 2 'echo out {{}}' ::: 1 2 3 4",
        env!("CARGO_BIN_EXE_herd")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = text(&out.stdout);
    assert!(screen.contains("/4 jobs"), "a bar is drawn: {screen:?}");
    for n in 1..=4 {
        assert!(
            screen.contains(&format!("out {n}")),
            "output kept: {screen:?}"
        );
    }
}

#[test]
fn events_stream_the_run_live_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let json = dir.path().join("results.jsonl");
    let go = dir.path().join("go");
    let script = format!(
        "echo first; {}; echo second >&2; exit 3",
        wait_for_file(&go)
    );
    let child = herd()
        .args([
            "--events",
            events.to_str().unwrap(),
            "--events-output",
            "--json",
            json.to_str().unwrap(),
            "-q",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The start and the first output are in the file while the job still runs.
    wait_until("start and output events", || {
        read_json_lines(&events).len() >= 2
    });
    let early = read_json_lines(&events);
    assert_eq!(early[0]["event"], "start");
    assert_eq!(early[0]["seq"], 1);
    let pid = early[0]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the job runs");
    assert_eq!(early[1]["event"], "output");
    assert_eq!(early[1]["stream"], "stdout");
    assert_eq!(early[1]["text"], "first\n");
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = read_json_lines(&events);
    let kinds: Vec<&str> = all.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "output", "output", "finish", "end"]);
    assert_eq!(all[2]["stream"], "stderr");
    assert_eq!(all[2]["text"], "second\n");
    // The finish event has the --json record's fields, without the output.
    let record = &read_json_lines(&json)[0];
    let finish = all[3].as_object().unwrap();
    for (key, value) in record.as_object().unwrap() {
        if key == "stdout" || key == "stderr" {
            assert!(!finish.contains_key(key));
        } else {
            assert_eq!(&finish[key], value, "{key}");
        }
    }
    assert_eq!(all[4]["jobs"], 1);
    assert_eq!(all[4]["failed"], 1);
    assert_eq!(all[4]["exit_status"], 1);

    // To stdout, events are all there is on it.
    let out = run(&["--events", "-", "echo", ":::", "a", "b"]);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2 + 2 + 1);
    let out = run(&["--events", "-", "--json", "-", "echo", ":::", "a"]);
    assert_eq!(out.status.code(), Some(255));
}

/// With `--json-timeline` the record keeps both streams apart and in the order herd read
/// them. The child writes each piece only after herd has reported reading the one before.
#[test]
fn json_timeline_orders_both_streams_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let json = dir.path().join("out.jsonl");
    let (go1, go2) = (dir.path().join("go1"), dir.path().join("go2"));
    let script = format!(
        "printf one; {}; printf two >&2; {}; printf three",
        wait_for_file(&go1),
        wait_for_file(&go2)
    );
    let child = herd()
        .args([
            "--events",
            events.to_str().unwrap(),
            "--events-output",
            "--json",
            json.to_str().unwrap(),
            "--json-timeline",
            "-q",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outputs = || {
        read_json_lines(&events)
            .into_iter()
            .filter(|e| e["event"] == "output")
            .count()
    };
    wait_until("herd to read 'one'", || outputs() >= 1);
    std::fs::write(&go1, "").unwrap();
    wait_until("herd to read 'two'", || outputs() >= 2);
    std::fs::write(&go2, "").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let record = &read_json_lines(&json)[0];
    assert_eq!(
        record["timeline"],
        serde_json::json!([
            {"stream": "stdout", "text": "one"},
            {"stream": "stderr", "text": "two"},
            {"stream": "stdout", "text": "three"},
        ])
    );
    assert_eq!(record["stdout_bytes"], 8);
    assert!(record.get("stdout").is_none());
}

#[test]
fn max_output_keeps_head_and_tail_with_a_mark_in_every_mode() {
    let full: String = (1..=20000).map(|n| format!("{n}\n")).collect();
    let (head, tail) = (&full[..512], &full[full.len() - 512..]);
    let cut = full.len() - 1024;
    let mark = format!("[herd: {cut} bytes of stdout cut]\n");
    let newline = if head.ends_with('\n') { "" } else { "\n" };
    let expected = format!("{head}{newline}{mark}{tail}");
    for mode in ["--group", "-k", "-u", "--line-buffer"] {
        let out = run(&[
            mode,
            "--max-output",
            "1K",
            "-q",
            "sh",
            "-c",
            "seq 20000",
            ":::",
            "x",
        ]);
        assert_eq!(out.status.code(), Some(0), "{mode}");
        assert!(
            text(&out.stdout) == expected,
            "{mode}: {}",
            text(&out.stdout)
        );
    }
    // Under the cap nothing changes.
    let out = run(&[
        "-u",
        "--max-output",
        "1M",
        "-q",
        "sh",
        "-c",
        "seq 20000",
        ":::",
        "x",
    ]);
    assert!(text(&out.stdout) == full);
    // JSON says where the cut is.
    let out = run(&[
        "--json",
        "-",
        "--max-output",
        "1K",
        "-q",
        "sh",
        "-c",
        "seq 20000",
        ":::",
        "x",
    ]);
    let record = &json_lines(&out.stdout)[0];
    assert_eq!(record["stdout_bytes"], full.len());
    assert_eq!(record["stdout_cut"]["offset"], 512);
    assert_eq!(record["stdout_cut"]["bytes"], cut);
    assert_eq!(record["stdout"].as_str().unwrap(), format!("{head}{tail}"));
    let out = run(&["--max-output", "lots", "true"]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn tmpdir_holds_spilled_output_and_is_left_clean() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("spill");
    std::fs::create_dir(&tmp).unwrap();
    let go = dir.path().join("go");
    // 4 MB on stdout is past the 1 MiB kept in memory per stream.
    let script = format!("head -c 4000000 /dev/zero; {}", wait_for_file(&go));
    let child = herd()
        .args([
            "--tmpdir",
            tmp.to_str().unwrap(),
            "-q",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a spill directory in --tmpdir", || {
        std::fs::read_dir(&tmp).unwrap().next().is_some()
    });
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout.len(), 4_000_000);
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "cleaned up"
    );
    let out = run(&["--tmpdir", "/nonexistent/herd-tmp", "true", ":::", "x"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("/nonexistent/herd-tmp"));
}

#[test]
fn man_page_and_completions_come_from_the_same_definitions() {
    let man = run(&["--generate", "man"]);
    assert_eq!(man.status.code(), Some(0));
    let man = text(&man.stdout);
    assert!(man.contains(".TH herd 1"), "{man}");
    for option in ["halt", "results", "max\\-output", "colsep"] {
        assert!(
            man.contains(&format!("\\-\\-{option}")),
            "man page lists --{option}"
        );
    }
    for (shell, needle) in [
        ("bash", "--resume-failed"),
        ("zsh", "--events-output"),
        ("fish", "json-timeline"),
    ] {
        let out = run(&["--generate", &format!("complete-{shell}")]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            text(&out.stdout).contains(needle),
            "{shell} completion lists {needle}"
        );
    }
}

#[test]
fn every_option_in_help_has_an_example() {
    let help = text(&run(&["--help"]).stdout);
    let options = help
        .split("Options:")
        .nth(1)
        .unwrap()
        .split("Examples:")
        .next()
        .unwrap();
    let mut blocks: Vec<String> = Vec::new();
    for line in options.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(trimmed);
            b.push(' ');
        }
    }
    assert!(blocks.len() > 30, "{blocks:?}");
    for block in blocks {
        if block.starts_with("-h,") || block.starts_with("-V,") {
            continue;
        }
        assert!(block.contains("Example"), "no example: {block}");
    }
}

#[test]
fn bad_input_stops_herd_before_any_job_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = marker.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["--halt", "sometimes", "touch", touch, ":::", "a"],
            "invalid value 'sometimes' for --halt",
        ),
        (
            vec!["--colsep", "(", "touch", touch, ":::", "a"],
            "invalid regex '(' for --colsep",
        ),
        (
            vec!["-a", "/nonexistent/herd-args", "touch", touch],
            "/nonexistent/herd-args",
        ),
        (vec!["touch", touch, "::::", "/"], "it is a directory"),
        (
            vec!["--max-output", "1X", "touch", touch, ":::", "a"],
            "--max-output",
        ),
        (vec!["--resume", "touch", touch, ":::", "a"], "--joblog"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("herd: ") && err.contains(expect),
            "{args:?}: {err}"
        );
        assert!(!marker.exists(), "{args:?}: a job ran");
    }
}

/// 100,000 input lines run in the memory of 1000: the input is streamed, never held.
#[test]
fn a_hundred_thousand_inputs_run_in_flat_memory() {
    if !have("/usr/bin/time") {
        return;
    }
    let peak = |lines: u32| -> u64 {
        let command = format!(
            "seq {lines} | /usr/bin/time -f %M {} -j 8 true",
            env!("CARGO_BIN_EXE_herd")
        );
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    let small = peak(1000);
    let large = peak(100_000);
    assert!(
        large <= small + 2048,
        "peak RSS grew from {small} KiB (1000 jobs) to {large} KiB (100,000 jobs)"
    );
}

/// With inputs that never block (values, regular files) the command needs two threads however
/// many jobs run: main (which also feeds jobs and notices signals) and the event loop, which
/// also starts the processes. Where the kernel refuses `clone3`, two spawner threads join; a
/// pipe on stdin adds one thread to read it.
#[test]
fn the_command_runs_on_two_threads() {
    let sleep = long_sleep(44);
    let values: Vec<String> = (0..200).map(|_| sleep.clone()).collect();
    let mut args = vec!["-j", "0", "sleep", ":::"];
    args.extend(values.iter().map(String::as_str));
    let mut child = herd().args(&args).stdin(Stdio::null()).spawn().unwrap();
    // (herd's own command line holds the marker too.)
    wait_until("200 sleeping jobs", || {
        testkit::processes_with(&sleep)
            .iter()
            .filter(|p| p.contains(": sleep "))
            .count()
            == 200
    });
    let threads = testkit::thread_names(child.id());
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_gone(&sleep);
    let mut expected = vec!["herd".to_string(), "herd-loop".to_string()];
    for i in 0..testkit::expected_spawner_threads() {
        expected.push(format!("herd-spawner-{i}"));
    }
    assert_eq!(threads, expected, "threads with 200 running jobs");
}

fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn files_prints_the_name_of_each_jobs_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "-k",
        "--tag",
        "--files",
        "--tmpdir",
        dir.path().to_str().unwrap(),
        "-q",
        "sh",
        "-c",
        "echo out $0; echo err >&2",
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // stderr is not kept, as under GNU parallel.
    assert_eq!(text(&out.stderr), "");
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, value) in lines.iter().zip(["a", "b"]) {
        let (tag, name) = line.split_once('\t').unwrap();
        assert_eq!(tag, value);
        assert!(Path::new(name).starts_with(dir.path()), "{name}");
        assert_eq!(
            std::fs::read_to_string(name).unwrap(),
            format!("out {value}\n")
        );
    }
}

#[test]
fn retry_failed_reruns_the_logged_failures_and_plus_appends_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let runs = dir.path().join("runs");
    let script = format!("echo {{}} >> {}; exit {{}}", runs.display());
    let out = run(&[
        "--joblog",
        log.to_str().unwrap(),
        &script,
        ":::",
        "0",
        "3",
        "0",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // The command and inputs are taken from the log; only jobs 2 and 4 run again.
    let out = run(&["--retry-failed", "--joblog", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let mut ran: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(ran, ["0", "0", "3", "3", "4", "4"]);
    let rows = std::fs::read_to_string(&log).unwrap();
    let mut seqs: Vec<&str> = rows
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(seqs.len(), 6, "{rows}");
    // The two new rows keep the jobs' numbers.
    seqs[4..].sort();
    assert_eq!(seqs[4..], ["2", "4"]);
    // --joblog +FILE appends instead of starting the log afresh.
    let plus = format!("+{}", log.display());
    run(&["--joblog", &plus, "true", ":::", "x"]);
    let rows = std::fs::read_to_string(&log).unwrap();
    assert_eq!(rows.lines().count(), 8, "{rows}");
    assert_eq!(rows.lines().filter(|l| l.starts_with("Seq\t")).count(), 1);
}

#[test]
fn shell_quote_prints_each_line_as_one_shell_word() {
    let out = run(&["--shell-quote", "echo", ":::", "a b", "it's"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "'echo '\"'\"'a b'\"'\"",
            "'echo '\"'\"'it'\"'\"'\"'\"'\"'\"'\"'\"'s'\"'\""
        ]
    );
    // Each printed word, given to sh, is the command line itself.
    let back = std::process::Command::new("sh")
        .args(["-c", &format!("printf '%s\\n' {}", lines[1])])
        .output()
        .unwrap();
    assert_eq!(text(&back.stdout), "echo 'it'\"'\"'s'\n");
}

#[test]
fn a_relative_timeout_kills_a_job_far_slower_than_the_median() {
    let sleep = long_sleep(43);
    let started = std::time::Instant::now();
    // Three quick jobs succeed first (-j1), then the slow one passes 300% of their median.
    let out = run(&[
        "-j1",
        "--timeout",
        "300%",
        "sleep",
        ":::",
        "0.05",
        "0.05",
        "0.05",
        &sleep,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("job 4 timed out after"), "{err}");
    assert!(err.contains("300% of the median runtime"), "{err}");
    assert!(started.elapsed().as_secs() < 60, "the slow job was killed");
    assert_gone(&sleep);
    // A bad percentage is refused before anything runs.
    let out = run(&["--timeout", "x%", "true", ":::", "1"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("--timeout"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs herd with `args`, waits until it says why it waits, checks that the job has not
/// started, then runs `release` and checks that the job starts and herd ends.
fn held_back_until(args: &[&str], release: impl FnOnce()) {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let mut child = herd()
        .args(args)
        .args(["touch", ":::", ran.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let said = lines.next().unwrap().unwrap();
    assert!(
        said.starts_with("herd: waiting to start more jobs: "),
        "{said}"
    );
    assert!(!ran.exists(), "the job started anyway");
    release();
    assert!(child.wait().unwrap().success());
    assert!(ran.exists());
}

#[test]
fn memfree_and_load_hold_jobs_back_until_the_machine_has_room() {
    if std::fs::metadata("/proc/meminfo").is_err() {
        return;
    }
    // More memory than the machine has: nothing starts, and herd says why.
    let mut child = herd()
        .args(["--memfree", "1P", "true", ":::", "1"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let said = lines.next().unwrap().unwrap();
    assert!(said.contains("--memfree asks for"), "{said}");
    child.kill().unwrap();
    child.wait().unwrap();

    // --load: busy processes keep the next job back until they end (well above what the
    // other tests running beside this one make).
    let busy: Vec<std::process::Child> = (0..10)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        })
        .collect();
    held_back_until(&["--load", "6"], move || {
        for mut b in busy {
            b.kill().unwrap();
            b.wait().unwrap();
        }
    });
}

#[test]
fn herd_runs_scripts_as_their_shebang_interpreter() {
    if !have("perl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let herd_path = env!("CARGO_BIN_EXE_herd");
    let write = |name: &str, text: String| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    // --shebang: the script's other lines are the input.
    let lines = write(
        "lines",
        format!("#!{herd_path} --shebang -k -r echo got\nA\nB c\n\nD\n"),
    );
    let out = Command::new(&lines).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got A\ngot B c\ngot D\n");
    // --shebang-wrap: the script runs once per argument, under its own interpreter.
    let wrapped = write(
        "wrapped",
        format!(
            "#!{herd_path} --shebang-wrap -k /usr/bin/env perl\nprint \"perl got @ARGV\\n\";\n"
        ),
    );
    let out = Command::new(&wrapped).args(["a", "b c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "perl got a\nperl got b c\n");
    // Anywhere else, --shebang is explained.
    let out = run(&["-k", "--shebang", "echo"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("first argument"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn csv_reads_quoted_fields_whole_even_across_lines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "name,size\n\"a, \"\"b\"\"\",1\n\"two\nlines\", 2 \n").unwrap();
    let out = run(&[
        "-k",
        "--csv",
        "--header",
        ":",
        "printf",
        "'[%s|%s]\\n'",
        "{name}",
        "{size}",
        "::::",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Quotes keep separators, doubled quotes and line breaks in the field; no trimming.
    assert_eq!(text(&out.stdout), "[a, \"b\"|1]\n[two\nlines| 2 ]\n");
    // Another separator, with --colsep; a regex is not one.
    let out = run(&["--csv", "--colsep", ";", "echo", "{2}", ":::", "x;\"y;z\""]);
    assert_eq!(text(&out.stdout), "y;z\n");
    let out = run(&["--csv", "--colsep", ";;", "echo", ":::", "x"]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn results_tables_hold_every_job_in_one_csv_tsv_or_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("r.csv");
    let out = run(&[
        "-k",
        "--results",
        table.to_str().unwrap(),
        "printf",
        "'%s\\n'",
        ":::",
        "plain",
        "with, \"quotes\"",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "a table is not printed");
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    let csv = text_of(&table);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("Seq,Host,Starttime,JobRuntime,Send,Receive,Exitval,Signal,Command,V1,Stdout,Stderr")
    );
    let row1: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row1[0], "1");
    assert_eq!(row1[6], "0");
    assert_eq!(row1[9], "plain");
    // A field with quotes, commas or line breaks is quoted, its quotes doubled.
    assert!(
        csv.contains(",\"with, \"\"quotes\"\"\",\"with, \"\"quotes\"\"\n\","),
        "{csv}"
    );
    // JSON: one object per job, on stdout with -.json.
    let out = run(&[
        "-k",
        "--results",
        "-.json",
        "sh",
        "-c",
        "'exit {}'",
        ":::",
        "0",
        "3",
    ]);
    let rows = json_lines(&out.stdout);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["Seq"], 2);
    assert_eq!(rows[1]["Exitval"], 3);
    assert_eq!(rows[1]["V"][0], "3");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn keep_order_with_line_buffer_streams_the_oldest_job_and_holds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Job 1 prints a line, then waits for the test; job 2 finishes at once.
    let first = format!("echo a1; {}; echo a2", wait_for_file(&go));
    let mut child = herd()
        .args([
            "-j2",
            "-k",
            "--line-buffer",
            ":::",
            &first,
            "echo b1; echo b2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    // Job 1's first line arrives while it runs; job 2's output waits for job 1's end.
    assert_eq!(next(), "a1");
    std::fs::write(&go, "").unwrap();
    let rest: Vec<String> = (0..3).map(|_| next()).collect();
    assert_eq!(rest, ["a2", "b1", "b2"]);
    assert!(child.wait().unwrap().success());
}

#[test]
fn termseq_sets_how_long_sigterm_has_before_sigkill() {
    // The job ignores SIGTERM: only SIGKILL ends it, after the sequence's wait (3 s here,
    // where herd's default is 1 s).
    let started = std::time::Instant::now();
    let out = run(&[
        "--timeout",
        "0.1",
        "--termseq",
        "TERM,2000,TERM,1000,KILL,25",
        "--json",
        "-",
        "-q",
        "sh",
        "-c",
        "trap 'echo got TERM' TERM; while :; do sleep 0.05; done",
        ":::",
        "x",
    ]);
    let elapsed = started.elapsed();
    let rows = json_lines(&out.stdout);
    assert_eq!(rows[0]["signal"], "SIGKILL", "{:?}", rows[0]);
    assert!(
        elapsed.as_millis() >= 3000,
        "SIGKILL came after {elapsed:?}"
    );
    let out = run(&["--termseq", "INT,100,KILL", "true", ":::", "x"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("--termseq"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_input_too_long_for_max_chars_fails_only_its_job() {
    // GNU parallel stops the whole run here; herd fails that job, says why, and goes on.
    let long = "b".repeat(40);
    let out = run(&["-k", "-s", "12", "-m", "echo", ":::", "a", "b", &long, "c"]);
    assert_eq!(text(&out.stdout), "a b\nc\n");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("job 2: the command line for"), "{err}");
    assert!(err.contains("is too long (46 > 12"), "{err}");
}

#[test]
fn without_memfree_or_load_no_start_reads_the_kernels_counters() {
    // The start gate reads /proc only for a limit that was asked for: every start of every
    // run would pay for it otherwise (it cost W1 a sixth of its speed once).
    if !have("strace") {
        return;
    }
    let opened = |extra: &[&str]| -> String {
        let out = Command::new("strace")
            .args(["-f", "-e", "trace=open,openat", env!("CARGO_BIN_EXE_herd")])
            .args(extra)
            .args(["true", ":::", "a", "b", "c"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let plain = opened(&[]);
    assert!(!plain.contains("/proc/meminfo"), "read /proc/meminfo");
    assert!(!plain.contains("/proc/stat\""), "read /proc/stat");
    // With the limits, the counters are read (so the check above can fail).
    let limited = opened(&["--memfree", "1M", "--load", "1000"]);
    assert!(limited.contains("/proc/meminfo"), "{limited}");
    assert!(limited.contains("/proc/stat\""), "{limited}");
}

#[test]
fn a_temporary_directory_that_cannot_hold_files_is_refused_before_any_job() {
    // Output beyond memory's share spills there: without it, herd would hold it all in RAM.
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let missing = dir.path().join("missing");
    let out = herd()
        .env("TMPDIR", &missing)
        .args(["touch", ":::", ran.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(err.contains("$TMPDIR") && err.contains("missing"), "{err}");
    // /proc takes no files, even from root.
    let out = run(&["--tmpdir", "/proc", "touch", ":::", ran.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("--tmpdir /proc"),
        "{}",
        text(&out.stderr)
    );
    assert!(!ran.exists());
}

#[test]
fn an_input_with_no_delimiter_ends_with_an_error_not_unbounded_memory() {
    // /dev/zero has no newline: one endless record. herd stops reading at 16 MiB and says so.
    let out = if have("/usr/bin/time") {
        Command::new("/usr/bin/time")
            .args([
                "-f",
                "peak %M KB",
                env!("CARGO_BIN_EXE_herd"),
                "echo",
                "::::",
                "/dev/zero",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    } else {
        run(&["echo", "::::", "/dev/zero"])
    };
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("cannot read /dev/zero"), "{err}");
    assert!(err.contains("longer than 16 MiB"), "{err}");
    if let Some(kb) = err
        .lines()
        .find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KB"))
    {
        let kb: u64 = kb.parse().unwrap();
        assert!(kb < 64 * 1024, "peak RSS {kb} KB");
    }
}
