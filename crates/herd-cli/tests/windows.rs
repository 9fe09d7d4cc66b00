//! The `herd` command on Windows, run under Wine in CI (`.ci/windows-wine`). The children are
//! `cmd` built-ins and `ping` (a slow child for timeouts). No libtest harness, as in the engine's
//! Windows suite: the binary ends with the line `N passed, M failed`.

#[cfg(not(windows))]
fn main() {}

#[cfg(windows)]
fn main() {
    use std::process::{Command, Output, Stdio};

    fn herd(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_herd"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    let tests: &[(&str, fn())] = &[
        ("output_in_input_order", || {
            let out = herd(&[
                "-k", "-j", "4", "cmd", "/c", "echo", "{}", ":::", "a", "b", "c", "d",
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), "a\r\nb\r\nc\r\nd\r\n");
        }),
        ("exit_status_counts_failed_jobs", || {
            let out = herd(&["cmd", "/c", "exit", ":::", "0", "1", "2", "0", "3"]);
            assert_eq!(out.status.code(), Some(3));
        }),
        ("a_missing_program_fails_alone", || {
            let out = herd(&[
                "-k",
                "{}",
                "/c",
                "echo",
                "ok",
                ":::",
                "cmd",
                "herd-no-such-program",
            ]);
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(text(&out.stdout), "ok\r\n");
            // Every line runs through cmd on Windows, which reports the missing program in its
            // own words (as GNU parallel's shell would).
            let err = text(&out.stderr);
            assert!(
                err.contains("herd-no-such-program") && err.lines().count() == 1,
                "{err}"
            );
        }),
        ("json_records", || {
            let out = herd(&["--json", "-", "cmd", "/c", "echo out& exit 3", ":::", "x"]);
            let line = text(&out.stdout);
            assert!(line.contains(r#""exit_code":3"#), "{line}");
            assert!(line.contains(r#""stdout":"out\r\n""#), "{line}");
            assert!(line.contains(r#""signal":null"#), "{line}");
        }),
        ("shell_values_are_quoted", || {
            let out = herd(&["-k", "--shell", "echo {}", ":::", "a&b", "plain"]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), "\"a&b\"\r\nplain\r\n");
        }),
        ("input_lines_are_commands", || {
            let out = herd(&["-k", ":::", "echo one& echo two", "exit 0"]);
            assert_eq!(text(&out.stdout), "one\r\ntwo\r\n");
        }),
        ("a_timeout_kills_the_job", || {
            // The value is ping's count: a minute of pings, cut short after a second.
            let out = herd(&[
                "--timeout",
                "1",
                "ping",
                "-n",
                "{}",
                "127.0.0.1",
                ":::",
                "60",
            ]);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                text(&out.stderr).contains("timed out after 1s"),
                "{}",
                text(&out.stderr)
            );
        }),
        ("bad_options_exit_255_in_one_line", || {
            let out = herd(&["--bogus", "cmd"]);
            assert_eq!(out.status.code(), Some(255));
            assert_eq!(text(&out.stderr).lines().count(), 1);
        }),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if std::panic::catch_unwind(test).is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("\n{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
