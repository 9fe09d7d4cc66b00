//! `--pipe`: standard input cut into blocks of whole records, each the stdin of one job.

mod common;

use common::{herd, text, with_input};
use std::io::Write;
use std::process::Stdio;
use testkit::Rng;

/// Each command line stops herd before any job (exit 255) with a message saying `says`.
fn assert_refused(cases: &[(&[&str], &str)]) {
    for (args, says) in cases {
        let out = with_input(args, b"a\n");
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Random records of random lengths (some longer than a block), ending with `end`, and
/// sometimes no final terminator.
fn records(rng: &mut Rng, count: usize, end: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    for _ in 0..count {
        let len = match rng.below(10) {
            0 => rng.below(20_000),
            _ => rng.below(80),
        };
        for _ in 0..len {
            // Printable bytes and a carriage return now and then; never the terminator's
            // first byte.
            let b = match rng.below(40) {
                0 => b'\r',
                _ => b'a' + rng.below(26) as u8,
            };
            data.push(b);
        }
        data.extend_from_slice(end);
    }
    if rng.below(3) == 0 {
        data.extend_from_slice(b"no terminator at the end");
    }
    data
}

/// `-k --pipe cat` gives back the input byte for byte, and every job's block is whole
/// records: newline records (CRLF inside), NUL records with -0, any block size.
#[test]
fn blocks_give_back_the_input_exactly_in_whole_records() {
    let mut rng = Rng(0x91be);
    for round in 0..6 {
        let (end, extra): (&[u8], &[&str]) = if round % 2 == 0 {
            (b"\n", &[])
        } else {
            (b"\0", &["-0"])
        };
        let count = 300 + rng.below(500) as usize;
        let data = records(&mut rng, count, end);
        let block = format!("{}", 1 + rng.below(30_000));
        let mut args = vec!["--pipe", "--block", block.as_str(), "-k"];
        args.extend_from_slice(extra);
        args.push("cat");
        let out = with_input(&args, &data);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout == data, "round {round}: output differs");
        // Each job marks its block's end: every block but the last ends a record.
        let mut args = vec!["--pipe", "--block", block.as_str(), "-k"];
        args.extend_from_slice(extra);
        args.push("cat; printf '|'");
        let out = with_input(&args, &data);
        let blocks: Vec<&[u8]> = out.stdout.split(|&b| b == b'|').collect();
        assert_eq!(blocks.concat(), data, "round {round}");
        let whole = &blocks[..blocks.len().saturating_sub(2)];
        assert!(whole.iter().all(|b| b.ends_with(end)), "round {round}");
    }
}

/// --recstart: a block starts only where a record starts (FASTA's '>'), and each job knows
/// its number.
#[test]
fn recstart_cuts_before_a_record_start() {
    let input = b">a\nAC\nGT\n>b\nTT\n>c\nGG\nCC\n";
    let out = with_input(
        &[
            "--pipe",
            "--block",
            "4",
            "--recstart",
            ">",
            "-k",
            "printf '%s:' $PARALLEL_SEQ; cat",
        ],
        input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1:>a\nAC\nGT\n2:>b\nTT\n3:>c\nGG\nCC\n");
}

/// A job that reads nothing of its block is no failure; empty input runs no job.
#[test]
fn jobs_that_read_nothing_and_empty_input() {
    let data = "x\n".repeat(10_000);
    let out = with_input(&["--pipe", "--block", "1k", "true"], data.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = with_input(&["--pipe", "echo ran"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

/// Mistakes are named: a bad size, --pipe's options without it, values instead of input.
#[test]
fn pipe_mistakes_are_named() {
    assert_refused(&[
        (&["--pipe", "--block", "1x", "cat"][..], "--block"),
        (&["--block", "1M", "cat"][..], "goes with --pipe"),
        (&["--pipe", "cat", ":::", "a"][..], "not values"),
        (&["--pipe", "-n", "2", "cat"][..], "with -N"),
        (&["--pipe", "-N", "0", "cat"][..], "at least one record"),
    ]);
}

/// -N: exactly so many records a job (the last may have fewer), as GNU parallel's
/// `seq 10 | parallel --pipe -N3 wc -l` gives 3 3 3 1; a small --block only reads less at a time.
#[test]
fn n_records_per_job() {
    let input: String = (1..=10).map(|i| format!("{i}\n")).collect();
    for block in ["1", "1M"] {
        let out = with_input(
            &["--pipe", "-N", "3", "--block", block, "-k", "wc -l"],
            input.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "3\n3\n3\n1\n", "--block {block}");
    }
    // --dry-run shows each block's job, as GNU parallel does.
    let out = with_input(
        &["--pipe", "-N", "3", "--dry-run", "wc -l"],
        input.as_bytes(),
    );
    assert_eq!(text(&out.stdout), "wc -l\n".repeat(4));
}

/// `-k --pipepart -a FILE cat` gives back the file byte for byte, each job's part whole
/// records: newline records (CRLF inside), NUL records with -0, records starting with
/// --recstart, several files one after another, any block size.
#[test]
fn pipepart_gives_back_the_files_exactly_in_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed);
    for round in 0..6 {
        let (end, extra): (&[u8], &[&str]) = match round % 3 {
            0 => (b"\n", &[]),
            1 => (b"\0", &["-0"]),
            _ => (b"\n", &["--recstart", "<", "--recend", "\\n"]),
        };
        let count = 300 + rng.below(500) as usize;
        let mut data = records(&mut rng, count, end);
        if round % 3 == 2 {
            // Every record starts with '<'.
            data = data
                .split_inclusive(|&b| b == b'\n')
                .flat_map(|r| [&b"<"[..], r].concat())
                .collect();
        }
        let files: Vec<String> = (0..1 + round % 2)
            .map(|i| {
                let path = dir.path().join(format!("data{round}-{i}"));
                std::fs::write(&path, &data).unwrap();
                path.to_str().unwrap().to_string()
            })
            .collect();
        let block = format!("{}", 1 + rng.below(30_000));
        let mut args = vec!["--pipepart", "--block", block.as_str(), "-k"];
        args.extend_from_slice(extra);
        for file in &files {
            args.extend(["-a", file.as_str()]);
        }
        args.push("cat; printf '|'");
        let out = herd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let parts: Vec<&[u8]> = out.stdout.split(|&b| b == b'|').collect();
        assert!(parts.concat() == data.repeat(files.len()), "round {round}");
        for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
            assert!(!part.is_empty(), "round {round}: part {i} is empty");
            let last_of_a_file = data.ends_with(part);
            assert!(part.ends_with(end) || last_of_a_file, "round {round}");
            if round % 3 == 2 {
                assert!(part.starts_with(b"<"), "round {round}");
            }
        }
    }
}

/// --block -N with --pipepart: N parts for each job slot, as GNU parallel's --block -3 -j4
/// gives 12 jobs; a job that reads nothing of its part is no failure; an empty file runs no
/// job.
#[test]
fn pipepart_negative_blocks_deaf_jobs_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nums");
    let nums: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(&path, &nums).unwrap();
    let file = path.to_str().unwrap();
    let out = herd()
        .args([
            "--pipepart",
            "--block",
            "-3",
            "-j4",
            "-a",
            file,
            "-k",
            "wc -l",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let counts: Vec<usize> = text(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 12, "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 100_000);
    let out = herd()
        .args(["--pipepart", "--block", "1k", "-a", file, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let out = herd()
        .args(["--pipepart", "-a", empty.to_str().unwrap(), "echo ran"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

/// --pipepart's mistakes are named: standard input, a FIFO, a missing file, -N.
#[test]
fn pipepart_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    assert_refused(&[
        (&["--pipepart", "cat"][..], "not standard input"),
        (&["--pipepart", "-a", fifo, "cat"][..], "is not one"),
        (&["--pipepart", "-a", missing, "cat"][..], missing),
        (
            &["--pipepart", "-N", "3", "-a", fifo, "cat"][..],
            "-N with --pipepart",
        ),
        (&["--pipepart", "--pipe", "cat"][..], "cannot be used with"),
    ]);
}

/// --retries: a job that fails after reading part of its block runs again with the whole
/// block (--pipe keeps the block while its job runs; --pipepart reads the range again).
#[test]
fn a_retried_job_gets_its_whole_block_again() {
    let dir = tempfile::tempdir().unwrap();
    let data: String = (0..20_000).map(|i| format!("record {i}\n")).collect();
    let path = dir.path().join("data");
    std::fs::write(&path, &data).unwrap();
    let file = path.to_str().unwrap();
    for (mode, source) in [("pipe", &[][..]), ("pipepart", &["-a", file][..])] {
        let marks = dir.path().join(mode);
        std::fs::create_dir(&marks).unwrap();
        // The first run of each block reads a little of it and fails; the second copies it.
        let command = format!(
            "if [ -e {m}/$PARALLEL_SEQ ]; then cat; else touch {m}/$PARALLEL_SEQ; \
             head -c 100 >/dev/null; exit 3; fi",
            m = marks.display()
        );
        let mut args = vec![
            "-k",
            "--retries",
            "2",
            "--block",
            "10k",
            if mode == "pipe" {
                "--pipe"
            } else {
                "--pipepart"
            },
        ];
        args.extend_from_slice(source);
        args.push(&command);
        let out = with_input(&args, data.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", text(&out.stderr));
        assert!(out.stdout == data.as_bytes(), "{mode}: output differs");
        let runs = std::fs::read_dir(&marks).unwrap().count();
        assert!(runs > 20, "{mode}: {runs} blocks");
    }
}

/// --header with --pipe: the header (a number of lines, `:` for one, or a regular expression
/// matched at the start) comes before every block, as GNU parallel gives it
/// (`seq 10 | parallel --pipe --header 2 -N3 -k cat`).
#[test]
fn pipe_header_starts_every_block() {
    let input: String = (1..=10).map(|i| format!("{i}\n")).collect();
    let expected = "1\n2\n3\n4\n5\n1\n2\n6\n7\n8\n1\n2\n9\n10\n";
    for header in ["2", "(.*\\n){2}"] {
        let out = with_input(
            &["--pipe", "--header", header, "-N3", "-k", "cat"],
            input.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected, "--header {header}");
    }
    let out = with_input(
        &["--pipe", "--header", ":", "-N2", "-k", "cat; echo ="],
        b"1\n2\n3\n4\n5\n",
    );
    assert_eq!(text(&out.stdout), "1\n2\n3\n=\n1\n4\n5\n=\n");
    let out = with_input(&["--pipe", "--header", "(", "cat"], b"1\n");
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(
        err.contains("--header") && err.lines().count() == 1,
        "{err}"
    );
}

/// --header with --pipepart: each file's header comes before each of its parts, and the
/// parts without it give back the rest of the file exactly.
#[test]
fn pipepart_header_starts_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x4eade2);
    let header = "name,size,colour\n";
    let mut data = header.to_string();
    for i in 0..5000 {
        data.push_str(&format!(
            "item{i},{},{}\n",
            rng.below(1000),
            "x".repeat(rng.below(90) as usize)
        ));
    }
    let path = dir.path().join("table.csv");
    std::fs::write(&path, &data).unwrap();
    let out = herd()
        .args(["--pipepart", "--header", ":", "--block", "10k", "-k", "-a"])
        .arg(&path)
        .arg("cat; printf '|'")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let parts: Vec<&str> = stdout.split('|').filter(|p| !p.is_empty()).collect();
    assert!(parts.len() > 10, "{} parts", parts.len());
    let mut rest = String::new();
    for part in &parts {
        rest.push_str(
            part.strip_prefix(header)
                .expect("every part starts with the header"),
        );
    }
    assert_eq!(rest, data[header.len()..]);
}

/// --round-robin: one job per slot, each getting whole records, the records all there (in
/// some order); a short input starts only as many jobs as it has blocks; empty input none.
#[test]
fn round_robin_deals_whole_records_to_one_job_per_slot() {
    let mut rng = Rng(0xdea1);
    let data = records(&mut rng, 3000, b"\n");
    let mut data = data;
    if !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    let out = with_input(
        &[
            "--pipe",
            "--round-robin",
            "-j3",
            "--block",
            "2k",
            "--tag",
            "--tagstring",
            "{#}",
            "cat",
        ],
        &data,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut jobs = std::collections::BTreeSet::new();
    let mut got: Vec<&[u8]> = Vec::new();
    for line in out.stdout.split_inclusive(|&b| b == b'\n') {
        let (job, record) = line.split_at(line.iter().position(|&b| b == b'\t').unwrap());
        jobs.insert(job.to_vec());
        got.push(&record[1..]);
    }
    assert_eq!(jobs.len(), 3, "one job per slot");
    let mut want: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    got.sort();
    want.sort();
    assert!(got == want, "the records, whole, each once");
    // Two blocks, four slots: two jobs.
    let out = with_input(
        &["--pipe", "--round-robin", "-j4", "--block", "4", "echo job"],
        b"aaa\nbbb\n",
    );
    assert_eq!(text(&out.stdout), "job\njob\n", "{}", text(&out.stderr));
    let out = with_input(&["--pipe", "--round-robin", "-j2", "echo ran"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    // --header: each job gets it once, first, as GNU parallel gives it.
    let input: String = std::iter::once("head\n".to_string())
        .chain((1..=300).map(|i| format!("{i}\n")))
        .collect();
    let out = with_input(
        &[
            "--pipe",
            "--round-robin",
            "--header",
            "1",
            "-j2",
            "--block",
            "40",
            "-k",
            "tr '\\n' ' '; echo",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let jobs = text(&out.stdout);
    let mut numbers: Vec<u32> = Vec::new();
    for job in jobs.lines() {
        let mut words = job.split_whitespace();
        assert_eq!(words.next(), Some("head"), "{job}");
        numbers.extend(words.map(|w| w.parse::<u32>().expect("the header only once")));
    }
    numbers.sort();
    assert_eq!(numbers, (1..=300).collect::<Vec<_>>());
}

/// --round-robin: when every job has ended and input is left, herd says so and fails; a job
/// that ends early leaves its blocks to the others.
#[test]
fn round_robin_jobs_that_end_early() {
    // 16 MB of 8-byte lines: far more than the two jobs' pipes (1 MiB each) and queues hold.
    let input: String = (1..=2_000_000).map(|i| format!("{i:07}\n")).collect();
    let out = with_input(
        &[
            "--pipe",
            "--round-robin",
            "-j2",
            "--block",
            "10k",
            "head -1",
        ],
        input.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(255),
        "{} / {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("ended before the input did"),
        "{}",
        text(&out.stderr)
    );
    // Job 1 reads one line and ends; job 2 reads everything that was not in job 1's pipe.
    let out = with_input(
        &[
            "--pipe",
            "--round-robin",
            "-j2",
            "--block",
            "10k",
            "if [ $PARALLEL_SEQ = 1 ]; then head -1 >/dev/null; else wc -l; fi",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let counted: usize = text(&out.stdout).trim().parse().unwrap();
    // Lost: what was in job 1's pipe (1 MiB) and read by `head` when it ended, and the
    // block the event loop was writing; no more.
    let lost = (2_000_000 - counted) * 8;
    assert!(lost <= (1 << 20) + 64 * 1024, "{lost} bytes lost");
}

/// A slow consumer slows herd's reading, not its memory: 64 MiB through jobs that read
/// slowly, and herd's peak RSS stays far below it, with one job per block and with
/// --round-robin.
#[cfg(target_os = "linux")]
#[test]
fn a_slow_consumer_keeps_herds_memory_bounded() {
    let line = format!("{}\n", "x".repeat(1023));
    let input = line.repeat(64 * 1024);
    let slow = "perl -e 'while (sysread(STDIN, $b, 65536)) { select(undef, undef, undef, 0.002) }'";
    for extra in [&[][..], &["--round-robin"][..]] {
        let mut child = herd()
            .args(["--pipe", "-j2", "--block", "1M"])
            .args(extra)
            .arg(slow)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        // Everything is written: herd holds whatever it holds now. Its peak so far, before
        // the input ends:
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let peak_kb: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        eprintln!("{extra:?}: peak RSS {peak_kb} kB");
        assert!(
            peak_kb < 24 * 1024,
            "{extra:?}: peak RSS {peak_kb} kB for 64 MiB"
        );
    }
}

/// 2 GiB through `--pipepart` and through `--pipe`, each job a `cat`, in order with -k: the
/// output equals the file byte for byte (compared as it streams out, never held whole). The
/// lines have random lengths and every MiB of the file is different.
#[cfg(target_os = "linux")]
#[test]
fn two_gigabytes_round_trip_exactly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let mut rng = Rng(0x2);
    let mut chunk = Vec::new();
    while chunk.len() < 1 << 20 {
        let len = rng.below(200) as usize;
        chunk.extend(std::iter::repeat_n(b'a' + rng.below(26) as u8, len));
        chunk.push(b'\n');
    }
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..2048 {
            writeln!(file, "chunk {i}").unwrap();
            file.write_all(&chunk).unwrap();
        }
    }
    let size = std::fs::metadata(&path).unwrap().len();
    for mode in ["--pipepart", "--pipe"] {
        let mut command = herd();
        command.args([mode, "-k", "--block", "16M"]);
        if mode == "--pipepart" {
            command.arg("-a").arg(&path);
            command.stdin(Stdio::null());
        } else {
            command.stdin(std::fs::File::open(&path).unwrap());
        }
        let mut child = command
            .arg("cat")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut expected = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let (mut got, mut want) = (vec![0; 1 << 20], vec![0; 1 << 20]);
        let mut compared = 0u64;
        loop {
            let n = out.read(&mut got).unwrap();
            if n == 0 {
                break;
            }
            expected.read_exact(&mut want[..n]).unwrap_or_else(|_| {
                panic!("{mode}: more output than input after {compared} bytes")
            });
            assert!(
                got[..n] == want[..n],
                "{mode}: differs after {compared} bytes"
            );
            compared += n as u64;
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "{mode}: {status:?}");
        assert_eq!(compared, size, "{mode}: output shorter than the input");
    }
}

/// --regexp: --recend and --recstart are regular expressions, and the blocks agree with GNU
/// parallel's (`--recend '\++\n' --recstart '>'`, with --block and with -N); a pattern that
/// does not compile is named.
#[test]
fn regexp_records() {
    let input = b">a\nx\n+\n>b\ny\n++\n>c\nz\n+\n";
    let re = [
        "--pipe",
        "--regexp",
        "--recend",
        "\\++\\n",
        "--recstart",
        ">",
    ];
    let out = with_input(
        &[&re[..], &["--block", "1", "-k", "cat; echo ="]].concat(),
        input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        ">a\nx\n+\n=\n>b\ny\n++\n=\n>c\nz\n+\n=\n"
    );
    let out = with_input(&[&re[..], &["-N2", "-k", "cat; echo ="]].concat(), input);
    assert_eq!(text(&out.stdout), ">a\nx\n+\n>b\ny\n++\n=\n>c\nz\n+\n=\n");
    let out = with_input(&["--pipe", "--regexp", "--recend", "(", "cat"], input);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("--regexp"),
        "{}",
        text(&out.stderr)
    );
}

/// The files a run left in `dir` (its --tmpdir).
fn left_in(dir: &std::path::Path) -> Vec<String> {
    let mut left = Vec::new();
    for entry in walk(dir) {
        left.push(entry.display().to_string());
    }
    left
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// --cat and --fifo: each job reads its block from the file {} names (and $PARALLEL_TMP
/// too), its stdin empty; the blocks put together are the input byte for byte, from --pipe
/// and --pipepart alike, and nothing is left in --tmpdir.
#[cfg(unix)]
#[test]
fn cat_and_fifo_give_each_job_its_block_as_a_file() {
    let mut rng = Rng(0xca7);
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_arg = tmp.to_str().unwrap();
    for round in 0..4 {
        let count = 400 + rng.below(400) as usize;
        let data = records(&mut rng, count, b"\n");
        let path = dir.path().join(format!("data{round}"));
        std::fs::write(&path, &data).unwrap();
        let block = (1 + rng.below(20_000)).to_string();
        for how in ["--cat", "--fifo"] {
            for part in [false, true] {
                let mut args = vec!["-k", "--tmpdir", tmp_arg, "--block", &block, how];
                if part {
                    args.extend(["--pipepart", "-a", path.to_str().unwrap()]);
                }
                args.push(
                    "[ \"$PARALLEL_TMP\" = {} ] || echo '$PARALLEL_TMP is not {}'; cat {}; cat",
                );
                let out = with_input(&args, if part { b"" } else { &data });
                let case = format!("round {round}, {how}, pipepart {part}");
                assert_eq!(out.status.code(), Some(0), "{case}: {}", text(&out.stderr));
                assert!(out.stdout == data, "{case}: output differs");
                assert_eq!(left_in(&tmp), Vec::<String>::new(), "{case}");
            }
        }
    }
}

/// --cat: a block's file is removed when its job is done, not at the end of the run: one job
/// at a time sees at most its own file and the next one's.
#[cfg(unix)]
#[test]
fn block_files_go_as_their_jobs_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = "line\n".repeat(10_000);
    let out = with_input(
        &[
            "-j1",
            "--tmpdir",
            dir.path().to_str().unwrap(),
            "--block",
            "1k",
            "--cat",
            "ls \"$(dirname {})\" | wc -l",
        ],
        data.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let counts: Vec<usize> = text(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(counts.len() > 40, "{counts:?}");
    assert!(counts.iter().all(|&n| n <= 2), "{counts:?}");
}

/// --fifo: a command that never opens its named pipe ends all the same (GNU parallel's manual
/// warns that its jobs then hang), and the `cat` that would feed the pipe ends with it, not
/// left for herd to find holding the job's output open (`leaked` in --json).
#[cfg(unix)]
#[test]
fn a_fifo_nobody_opens_does_not_hang_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let json = dir.path().join("json");
    let data = "x".repeat(99) + "\n";
    let data = data.repeat(30_000);
    let mut child = common::herd()
        .args([
            "--tmpdir",
            tmp.to_str().unwrap(),
            "--block",
            "300k",
            "--json",
        ])
        .arg(&json)
        .args(["--fifo", "true {}; echo not read"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(data.as_bytes());
    });
    testkit::wait_until("herd to end", || child.try_wait().unwrap().is_some());
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "not read\n".repeat(10));
    let records = common::json_lines(&std::fs::read(&json).unwrap());
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r["leaked"] == false), "{records:?}");
    testkit::assert_gone(tmp.to_str().unwrap());
    assert_eq!(left_in(&tmp), Vec::<String>::new());
}

/// --cat with --retries: a job that fails runs again on the same file, whole.
#[cfg(unix)]
#[test]
fn a_retried_job_finds_its_block_file_again() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let data: String = (0..5_000).map(|i| format!("record {i}\n")).collect();
    let command = format!(
        "if [ -e {m}/$PARALLEL_SEQ ]; then cat {{}}; else touch {m}/$PARALLEL_SEQ; \
         head -c 10 {{}}; exit 3; fi",
        m = marks.display()
    );
    let out = with_input(
        &["-k", "--retries", "2", "--block", "5k", "--cat", &command],
        data.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout == data.as_bytes(), "output differs");
    assert!(std::fs::read_dir(&marks).unwrap().count() > 5);
}

/// --rrs takes the separators out of each block, and -L makes a record of so many lines,
/// with --pipe and --pipepart, as GNU parallel 20221122 does (its outputs, here verbatim).
#[test]
fn removed_separators_and_records_of_lines() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["-k", "--pipe", "--rrs", "-N2", "cat; echo"],
            "a\nb\nc\n",
            "ab\nc\n",
        ),
        (
            &[
                "-k",
                "--pipe",
                "--rrs",
                "--recstart",
                "X",
                "--recend",
                ";",
                "-N2",
                "cat; echo",
            ],
            "Xa;Xb;Xc;",
            "ab\nc\n",
        ),
        // A separator at the very start ends no record of its own.
        (
            &["-k", "--pipe", "-N1", "echo J; cat"],
            "\na\nb\n",
            "J\n\na\nJ\nb\n",
        ),
        (
            &["-k", "--pipe", "-L3", "echo J; cat"],
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
            "J\n1\n2\n3\n4\n5\n6\n7\n8\n9\nJ\n10\n",
        ),
        (
            &["-k", "--pipe", "-L3", "--block", "5", "echo J; cat"],
            "1\n2\n3\n4\n5\n6\n7\n",
            "J\n1\n2\n3\nJ\n4\n5\n6\nJ\n7\n",
        ),
        (
            &["-k", "--pipe", "-L2", "-N2", "echo J; cat"],
            "1\n2\n3\n4\n5\n",
            "J\n1\n2\n3\n4\nJ\n5\n",
        ),
    ];
    for (args, input, want) in cases {
        let out = with_input(args, input.as_bytes());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), *want, "{args:?}");
    }
    // --pipepart: the parts are cut where GNU parallel cuts them (the first boundary past
    // each 4 bytes), and --rrs applies as its manual says (GNU parallel 20221122 leaves the
    // separators in with --pipepart).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "a\nb\nc\nd\n").unwrap();
    let out = with_input(
        &[
            "-k",
            "--pipepart",
            "-a",
            file.to_str().unwrap(),
            "--block",
            "4",
            "--rrs",
            "cat; echo",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "abc\nd\n");
}

/// --cat, --fifo, --rrs and -L: their mistakes are named.
#[test]
fn block_file_mistakes_are_named() {
    assert_refused(&[
        (&["--cat", "--fifo", "cat"][..], "cannot be used with"),
        (&["--cat", "--round-robin", "cat"][..], "with --round-robin"),
        (&["--rrs", "cat"][..], "--rrs goes with --pipe"),
        (&["--pipe", "-L", "x", "cat"][..], "-L with --pipe"),
        (
            &["--cat", "--tmpdir", "/nonexistent/dir", "cat"][..],
            "/nonexistent/dir",
        ),
    ]);
}

/// --tee: every job gets the whole input, byte for byte, from --pipe and --pipepart alike,
/// made from the values of :::; a job that stops reading early does not stop the others.
#[cfg(unix)]
#[test]
fn tee_gives_every_job_the_whole_input() {
    let mut rng = Rng(0x7ee);
    let dir = tempfile::tempdir().unwrap();
    let data = rng.bytes(3_000_000);
    let file = dir.path().join("data");
    std::fs::write(&file, &data).unwrap();
    for part in [false, true] {
        let out_dir = dir.path().join(format!("out-{part}"));
        std::fs::create_dir(&out_dir).unwrap();
        let command = format!(
            "if [ {{}} = quit ]; then head -c 10 >/dev/null; else cat > {}/{{}}; fi",
            out_dir.display()
        );
        let mut args = vec!["--tee"];
        if part {
            args.extend(["--pipepart", "-a", file.to_str().unwrap()]);
        } else {
            args.push("--pipe");
        }
        args.extend([command.as_str(), ":::", "a", "quit", "b", "c"]);
        let out = with_input(&args, if part { b"" } else { &data });
        assert_eq!(
            out.status.code(),
            Some(0),
            "pipepart {part}: {}",
            text(&out.stderr)
        );
        for job in ["a", "b", "c"] {
            let got = std::fs::read(out_dir.join(job)).unwrap();
            assert!(
                got == data,
                "pipepart {part}: job {job} got {} bytes",
                got.len()
            );
        }
    }
}

/// --pipe --tee needs every job running at once: with fewer job slots than jobs, herd says so
/// and exits 255, and the jobs it had started report nothing (they never had the input).
#[test]
fn tee_with_too_few_job_slots_is_named() {
    let out = with_input(
        &["-j2", "--pipe", "--tee", "wc -l", ":::", "a", "b", "c"],
        "x\n".repeat(1000).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("give -j 0"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
}

/// --tee's mistakes are named.
#[test]
fn tee_mistakes_are_named() {
    assert_refused(&[
        (&["--tee", "cat", ":::", "a"][..], "--tee goes with --pipe"),
        (&["--pipe", "--tee", "cat"][..], "give the jobs' values"),
        (
            &["--pipe", "--tee", "--retries", "2", "cat", ":::", "a"][..],
            "--retries with --pipe --tee",
        ),
        (
            &["--pipe", "--tee", "--round-robin", "cat", ":::", "a"][..],
            "--round-robin with --tee",
        ),
        (
            &["--pipepart", "--tee", "cat", ":::", "a"][..],
            "none was given",
        ),
    ]);
}

/// --group-by: the lines that share a column's value stay together, in order: with -N1 each
/// job gets exactly one run of them, with --block whole runs; a column may be named by the
/// header, which every job gets.
#[test]
fn group_by_keeps_each_run_of_a_value_together() {
    let mut rng = Rng(0x6b);
    let mut data = String::new();
    let mut runs = Vec::new();
    for run in 0..300 {
        let key = format!("k{}", rng.below(5));
        // Runs of one key never touch (a value differing from the run before).
        let key = if runs.last() == Some(&key) {
            format!("{key}-{run}")
        } else {
            key
        };
        let mut text = String::new();
        for line in 0..1 + rng.below(8) {
            text += &format!(
                "{line}\t{key}\tpayload {}\n",
                "x".repeat(rng.below(50) as usize)
            );
        }
        data += &text;
        runs.push(key);
    }
    let jobs = |args: &[&str], input: &str| -> Vec<String> {
        let mut all = vec!["-k", "--pipe"];
        all.extend_from_slice(args);
        all.push("cat; printf '|'");
        let out = with_input(&all, input.as_bytes());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let out = text(&out.stdout);
        let mut blocks: Vec<String> = out.split('|').map(str::to_string).collect();
        assert_eq!(blocks.pop().as_deref(), Some(""));
        blocks
    };
    let key_of = |line: &str| line.split('\t').nth(1).unwrap().to_string();
    let keys = |block: &str| -> Vec<String> {
        let mut k: Vec<String> = block.lines().map(key_of).collect();
        k.dedup();
        k
    };
    // -N1: one run per job, all of it.
    let blocks = jobs(&["--group-by", "2", "-N1"], &data);
    assert_eq!(blocks.concat(), data);
    assert_eq!(blocks.len(), runs.len());
    assert!(blocks.iter().all(|b| keys(b).len() == 1));
    // --block: whole runs, never one cut in two.
    let blocks = jobs(&["--group-by", "2", "--block", "300"], &data);
    assert_eq!(blocks.concat(), data);
    let all: Vec<String> = blocks.iter().flat_map(|b| keys(b)).collect();
    assert_eq!(all, runs, "a run was cut between two blocks");
    // By name, with --colsep: every job gets the header first.
    let csv = "id,name\n1,a\n2,a\n3,b\n4,c\n5,c\n";
    let blocks = jobs(&["--colsep", ",", "--group-by", "name", "-N1"], csv);
    assert_eq!(
        blocks,
        [
            "id,name\n1,a\n2,a\n",
            "id,name\n3,b\n",
            "id,name\n4,c\n5,c\n"
        ]
    );
}

/// --group-by's mistakes are named.
#[test]
fn group_by_mistakes_are_named() {
    assert_refused(&[
        (
            &["--group-by", "1", "cat"][..],
            "--group-by goes with --pipe",
        ),
        (&["--pipe", "--group-by", "0", "cat"][..], "count from 1"),
        (
            &["--pipe", "--group-by", "1 $_%=10", "cat"][..],
            "not available yet",
        ),
        (
            &["--pipe", "--group-by", "nosuch", "cat"][..],
            "no such column",
        ),
    ]);
}

/// --shard and --bin: one job per slot, and every line goes to the job its column's value
/// picks, so each value's lines all meet in one job, in the input's order; --bin picks the
/// slot by the value itself, modulo -j (0 being the last slot), as GNU parallel does.
#[cfg(unix)]
#[test]
fn shard_and_bin_route_every_line_to_one_job() {
    let mut rng = Rng(0x5a4d);
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                "{i},{},{}\n",
                rng.below(50),
                "y".repeat(rng.below(40) as usize)
            )
        })
        .collect();
    let data = lines.concat();
    let dir = tempfile::tempdir().unwrap();
    for how in ["--shard", "--bin"] {
        let out_dir = dir.path().join(how.trim_start_matches('-'));
        std::fs::create_dir(&out_dir).unwrap();
        let command = format!("cat > {}/{{%}}", out_dir.display());
        let out = with_input(&["--pipe", how, "2", "-j4", &command], data.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{how}: {}", text(&out.stderr));
        let mut owner = std::collections::HashMap::new();
        let mut all = Vec::new();
        for slot in 1..=4 {
            let got = std::fs::read_to_string(out_dir.join(slot.to_string())).unwrap();
            let got: Vec<&str> = got.split_inclusive('\n').collect();
            // In the input's order: the line numbers grow.
            let numbers: Vec<u32> = got
                .iter()
                .map(|l| l.split(',').next().unwrap().parse().unwrap())
                .collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{how}: slot {slot}"
            );
            for line in got {
                let key: u32 = line.split(',').nth(1).unwrap().parse().unwrap();
                let first = *owner.entry(key).or_insert(slot);
                assert_eq!(first, slot, "{how}: value {key} in two jobs");
                if how == "--bin" {
                    let want = match key % 4 {
                        0 => 4,
                        r => r,
                    };
                    assert_eq!(slot, want, "{how}: value {key}");
                }
                all.push(line.to_string());
            }
        }
        all.sort();
        let mut want = lines.clone();
        want.sort();
        assert!(all == want, "{how}: the lines differ");
    }
    // A named column: the header is every job's first line.
    let csv = "id,n\n1,3\n2,7\n3,4\n";
    let out = with_input(
        &["--pipe", "--bin", "n", "-j3", "-k", "echo {%}; cat"],
        csv.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "1\nid,n\n2,7\n3,4\n2\nid,n\n3\nid,n\n1,3\n"
    );
}

/// --shard: a job that ends before its input does costs its lines, and the run says so.
#[cfg(unix)]
#[test]
fn a_shard_job_that_ends_early_is_named() {
    let data: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    let out = with_input(
        &["--pipe", "--shard", "1", "-j2", "head -1"],
        data.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("went to no job"),
        "{}",
        text(&out.stderr)
    );
}

/// --shard's and --bin's mistakes are named, before any job starts.
#[test]
fn shard_mistakes_are_named() {
    assert_refused(&[
        (&["--shard", "1", "cat"][..], "--shard goes with --pipe"),
        (&["--pipe", "--bin", "1", "-j0", "cat"][..], "not -j 0"),
        (
            &["--pipe", "--shard", "1 $_%=10", "cat"][..],
            "not available yet",
        ),
        (
            &["--pipe", "--shard", "1", "--round-robin", "cat"][..],
            "with --round-robin",
        ),
        (
            &["--pipe", "--bin", "nosuch", "echo ran"][..],
            "no such column",
        ),
    ]);
    let out = with_input(&["--pipe", "--bin", "nosuch", "echo ran"], b"a,b\n1,2\n");
    assert_eq!(text(&out.stdout), "");
}

/// --block-timeout: when a block is slow to fill, its job gets the whole records read so far
/// (never a part of one), and the rest goes on to later blocks. The test writes more only
/// once the first job has its block: without the timeout, herd would wait for a full block.
#[cfg(unix)]
#[test]
fn block_timeout_gives_out_what_came_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::herd()
        .args(["--pipe", "--block-timeout", "0.2", "-j1"])
        .arg(format!("cat > {}/$PARALLEL_SEQ", dir.path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a\nb").unwrap();
    stdin.flush().unwrap();
    let first = dir.path().join("1");
    testkit::wait_until("the first block's job", || {
        std::fs::read(&first).is_ok_and(|b| b == b"a\n")
    });
    stdin.write_all(b"\nc\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("2")).unwrap(), b"b\nc\n");
    assert!(!dir.path().join("3").exists());
}
