//! GNU parallel's options, one case each, against real processes: what GNU parallel 20221122
//! printed for the same command line (checked with it when the case was written; the
//! comparison suite, `gnu_compat.rs`, runs GNU parallel itself on its documented examples).
#![cfg(unix)]

use std::path::Path;
use std::process::Stdio;
mod common;

use common::{herd, text};

/// The files some cases read.
fn fixture(dir: &Path) {
    std::fs::write(dir.join("lines4"), "l1\nl2\nl3\nl4\n").unwrap();
    std::fs::write(dir.join("withblank"), "a\n\nb\n").unwrap();
    std::fs::write(dir.join("commas"), "a,b,c").unwrap();
}

fn herd_in(dir: &Path, args: &[&str]) -> std::process::Output {
    herd()
        .current_dir(dir)
        .env("PARALLEL_HOME", dir.join("home"))
        .env_remove("PARALLEL")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Each case: herd's arguments, GNU parallel's stdout, its exit status.
const CASES: &[(&[&str], &str, i32)] = &[
    (
        &["-k", "-n", "2", "echo", ":::", "a", "b", "c", "d", "e"],
        "a b\nc d\ne\n",
        0,
    ),
    (
        &[
            "-k", "-N", "2", "echo", "{2}-{1}", ":::", "a", "b", "c", "d",
        ],
        "b-a\nd-c\n",
        0,
    ),
    (
        &["-k", "-N0", "echo", "x", ":::", "a", "b", "c"],
        "x\nx\nx\n",
        0,
    ),
    (&["-j1", "-m", "echo", ":::", "a", "b", "c"], "a b c\n", 0),
    (
        &["-j1", "-X", "echo", "pre{}post", ":::", "a", "b"],
        "preapost prebpost\n",
        0,
    ),
    (
        &[
            "--xargs", "-s", "20", "-k", "echo", ":::", "aaaa", "bbbb", "cccc", "dddd", "eeee",
        ],
        "aaaa bbbb cccc\ndddd eeee\n",
        0,
    ),
    (
        &["-k", "-L", "2", "echo", "::::", "lines4"],
        "l1 l2\nl3 l4\n",
        0,
    ),
    (
        &[
            "-k", "-s", "12", "-m", "echo", ":::", "a", "b", "c", "d", "e", "f", "g",
        ],
        "a b c\nd e f\ng\n",
        0,
    ),
    (
        &["-k", "-E", "stop", "echo", ":::", "a", "stop", "b"],
        "a\n",
        0,
    ),
    (&["-k", "-r", "echo", "::::", "withblank"], "a\nb\n", 0),
    (&["-k", "-d", ",", "echo", "::::", "commas"], "a\nb\nc\n", 0),
    (
        &["-k", "--arg-sep", ",,", "echo", ",,", "a", "b"],
        "a\nb\n",
        0,
    ),
    (
        &["-k", "--arg-file-sep", "//", "echo", "//", "lines4"],
        "l1\nl2\nl3\nl4\n",
        0,
    ),
    (
        &["-k", "-I", "XX", "echo", "XX-XX", ":::", "a", "b"],
        "a-a\nb-b\n",
        0,
    ),
    (&["-k", "-i", "echo", "{}", ":::", "a"], "", 1),
    (&["-k", "--replace=YY", "echo", "YY", ":::", "a"], "a\n", 0),
    (
        &["-k", "--er", "EXT", "echo", "EXT", ":::", "a.b"],
        "a\n",
        0,
    ),
    (
        &[
            "-k",
            "--extensionreplace",
            "EXT",
            "echo",
            "EXT",
            ":::",
            "a.b",
        ],
        "a\n",
        0,
    ),
    (
        &["-k", "--bnr", "BN", "echo", "BN", ":::", "d/a.b"],
        "a.b\n",
        0,
    ),
    (
        &[
            "-k",
            "--basenamereplace",
            "BN",
            "echo",
            "BN",
            ":::",
            "d/a.b",
        ],
        "a.b\n",
        0,
    ),
    (
        &["-k", "--dnr", "DN", "echo", "DN", ":::", "d/a.b"],
        "d\n",
        0,
    ),
    (
        &["-k", "--dirnamereplace", "DN", "echo", "DN", ":::", "d/a.b"],
        "d\n",
        0,
    ),
    (
        &["-k", "--bner", "BNE", "echo", "BNE", ":::", "d/a.b"],
        "a\n",
        0,
    ),
    (
        &[
            "-k",
            "--basenameextensionreplace",
            "BNE",
            "echo",
            "BNE",
            ":::",
            "d/a.b",
        ],
        "a\n",
        0,
    ),
    (
        &["-k", "--seqreplace", "SEQ", "echo", "SEQ", ":::", "a", "b"],
        "1\n2\n",
        0,
    ),
    (
        &[
            "-j1",
            "--slotreplace",
            "SLOT",
            "echo",
            "SLOT",
            ":::",
            "a",
            "b",
        ],
        "1\n1\n",
        0,
    ),
    (
        &["-k", "echo", "{-1}", "{-2}", ":::", "a", "b", ":::", "c"],
        "c a\nc b\n",
        0,
    ),
    (
        &[
            "-k", "--xapply", "echo", ":::", "a", "b", "c", ":::", "1", "2",
        ],
        "a 1\nb 2\nc 1\n",
        0,
    ),
    (
        &["-k", "--trim", "lr", "echo", "[{}]", ":::", " a "],
        "[a]\n",
        0,
    ),
    (
        &["-k", "--trim", "l", "echo", "[{}]", ":::", " a "],
        "[a ]\n",
        0,
    ),
    (
        &[
            "-k",
            "--tagstring",
            "<{}>",
            "--tag",
            "echo",
            "x",
            ":::",
            "a",
        ],
        "<a>\tx a\n",
        0,
    ),
    (
        &["-k", "--tag", "echo", "x", ":::", "a", ":::", "b"],
        "a b\tx a b\n",
        0,
    ),
    (&["-k", "-v", "echo", ":::", "a"], "echo a\na\n", 0),
    (
        &["-j1", "--delay", "0.1", "echo", ":::", "a", "b"],
        "a\nb\n",
        0,
    ),
    (&["-k", "--nice", "5", "echo", ":::", "a"], "a\n", 0),
    (&["--minversion", "20200101"], "20221122\n", 0),
    (
        &[
            "-k",
            "--process-slot-var",
            "SLOTV",
            "-j1",
            "echo",
            "$SLOTV",
            ":::",
            "a",
            "b",
        ],
        "0 a\n0 b\n",
        0,
    ),
    (&["-k", "--env", "HOME", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--will-cite", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--progress", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--noswap", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--memfree", "1M", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--load", "100", "echo", ":::", "a"], "a\n", 0),
    (&["-k", "--timeout", "300%", "echo", ":::", "a"], "a\n", 0),
    (
        &["-k", "--termseq", "TERM,200,KILL,25", "echo", ":::", "a"],
        "a\n",
        0,
    ),
    (&["-k", "--dryrun", "echo", ":::", "a"], "echo a\n", 0),
    (&["-k", "--linebuffer", "echo", ":::", "a"], "a\n", 0),
    (
        &["-k", "--colsep", ",", "echo", "{2}", ":::", "a,b"],
        "b\n",
        0,
    ),
    (
        &[
            "-k",
            "--max-chars",
            "10",
            "-m",
            "echo",
            ":::",
            "aa",
            "bb",
            "cc",
            "dd",
        ],
        "aa\nbb\ncc\ndd\n",
        0,
    ),
    (
        &["-k", "--use-cpus-instead-of-cores", "echo", ":::", "a"],
        "a\n",
        0,
    ),
];

#[test]
fn each_option_does_what_gnu_parallel_does() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let mut wrong = Vec::new();
    for (args, stdout, status) in CASES {
        let out = herd_in(dir.path(), args);
        if text(&out.stdout) != *stdout || out.status.code() != Some(*status) {
            wrong.push(format!(
                "herd {}: got {:?} (status {:?}, stderr {:?}), GNU parallel gives {stdout:?} ({status})",
                args.join(" "),
                text(&out.stdout),
                out.status.code(),
                text(&out.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn options_that_write_files_or_read_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    // --jl is --joblog.
    let out = herd_in(dir.path(), &["--jl", "log", "true", ":::", "a"]);
    assert_eq!(out.status.code(), Some(0));
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.starts_with("Seq\tHost\t"), "{log}");
    // -J reads a profile from $PARALLEL_HOME.
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    std::fs::write(dir.path().join("home/myprof"), "--tag\n").unwrap();
    let out = herd_in(dir.path(), &["-J", "myprof", "echo", ":::", "a"]);
    assert_eq!(text(&out.stdout), "a\ta\n");
    // --record-env writes the environment's names beside the profiles, and runs nothing.
    let out = herd_in(dir.path(), &["--record-env", "touch", ":::", "ran"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let names = std::fs::read_to_string(dir.path().join("home/ignored_vars")).unwrap();
    assert!(names.lines().any(|n| n == "PARALLEL_HOME"), "{names}");
    assert!(!dir.path().join("ran").exists());
    // Older GNU parallel's --citation and --bibtex (20221122 no longer knows them): accepted
    // silently, since scripts still carry them.
    for option in ["--citation", "--bibtex"] {
        let out = herd_in(dir.path(), &["-k", option, "echo", ":::", "a"]);
        assert_eq!(text(&out.stdout), "a\n", "{option}");
        assert_eq!(out.status.code(), Some(0), "{option}");
    }
    // $PARALLEL holds default options.
    let out = herd()
        .current_dir(dir.path())
        .env("PARALLEL", "-k --tag")
        .args(["echo", ":::", "a", "b"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "a\ta\nb\tb\n");
    // --shuf: every job runs, in some order.
    let values: Vec<String> = (1..=30).map(|i| i.to_string()).collect();
    let mut args = vec!["--shuf", "-j1", "echo", ":::"];
    args.extend(values.iter().map(String::as_str));
    let out = herd_in(dir.path(), &args);
    let mut got: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    got.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(got, values);
    // --number-of-cores, --number-of-cpus, --number-of-threads: what the machine has (as
    // many threads as cores at least).
    let number = |option: &str| -> usize {
        let out = herd_in(dir.path(), &[option]);
        assert_eq!(out.status.code(), Some(0), "{option}");
        text(&out.stdout).trim().parse().unwrap()
    };
    let cores = number("--number-of-cores");
    assert!(cores >= 1);
    assert_eq!(number("--number-of-cpus"), cores);
    assert!(number("--number-of-threads") >= cores);
}
