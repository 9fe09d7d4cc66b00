//! `--pipe`: standard input cut into blocks of whole records, each the stdin of one job.

mod common;

use common::{herd, text};
use std::io::Write;
use std::process::{Output, Stdio};
use testkit::Rng;

/// Runs herd with `args`, `input` on its stdin.
fn with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = herd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // Written from a thread: herd prints while it reads.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
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
    for (args, says) in [
        (&["--pipe", "--block", "1x", "cat"][..], "--block"),
        (&["--block", "1M", "cat"][..], "goes with --pipe"),
        (&["--pipe", "cat", ":::", "a"][..], "not values"),
        (&["--pipe", "-n", "2", "cat"][..], "with -N"),
        (&["--pipe", "-N", "0", "cat"][..], "at least one record"),
    ] {
        let out = with_input(args, b"a\n");
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
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
}
