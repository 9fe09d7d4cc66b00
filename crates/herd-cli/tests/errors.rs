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
