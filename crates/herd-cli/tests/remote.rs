//! Jobs on other hosts over OpenSSH (`-S`), against real sshd's: the laboratory of
//! `.ci/ssh-lab` (hosts h1 and h2 in network namespaces of their own, lo on loopback, and
//! hosts a test starts for itself to kill). Without the lab these tests skip, except in CI
//! (`HERD_REQUIRE_TOOLS=1`), which starts it.

mod common;

use common::{herd, text};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use testkit::{assert_gone, long_sleep, processes_with, wait_until, Rng};

/// The lab's directory, when it is up.
fn lab() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var_os("HERD_SSH_LAB").unwrap_or_else(|| "/tmp/herd-ssh-lab".into()),
    );
    if dir.join("ready").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("HERD_REQUIRE_TOOLS").is_none(),
        "the ssh lab is required (HERD_REQUIRE_TOOLS is set): run .ci/ssh-lab up"
    );
    eprintln!("skipped: no ssh lab (run .ci/ssh-lab up as root)");
    None
}

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/ssh-lab")
}

/// `--ssh` for the lab's hosts.
fn ssh(lab: &std::path::Path) -> String {
    format!("ssh -F {}/ssh_config", lab.display())
}

fn run_with(lab: &std::path::Path, args: &[&str]) -> Output {
    herd()
        .arg("--ssh")
        .arg(ssh(lab))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A host of the test's own, removed when dropped: one the test may kill.
struct OwnHost(String);

impl OwnHost {
    fn start(name: &str, subnet: u32) -> OwnHost {
        let out = Command::new(lab_script())
            .args(["host", name, &subnet.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        OwnHost(name.to_string())
    }

    fn kill(&self) {
        let out = Command::new(lab_script())
            .args(["kill", &self.0])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// Processes in its namespace whose command line holds `marker`.
    fn runs(&self, marker: &str) -> bool {
        let out = Command::new("ip")
            .args(["netns", "pids", &format!("herd-{}", self.0)])
            .output()
            .unwrap();
        text(&out.stdout).lines().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
    }
}

impl Drop for OwnHost {
    fn drop(&mut self) {
        let _ = Command::new(lab_script()).args(["rm", &self.0]).output();
    }
}

/// Joblog rows: (seq, host, exit value).
fn joblog_rows(path: &std::path::Path) -> Vec<(u64, String, i32)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
}

/// Values of any bytes but NUL reach the remote command exactly, over every host, and each
/// job's stdout, stderr and exit status come back exactly and apart.
#[cfg(unix)]
#[test]
fn values_and_output_are_exact_across_hosts() {
    use std::os::unix::ffi::OsStrExt;
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_0013);
    let mut values: Vec<Vec<u8>> = Vec::new();
    let nasty: &[&[u8]] = &[
        b"it's",
        b"a b",
        b"$HOME `id` $(id)",
        b"100% \\n \\\\ \\101",
        b"!event !!",
        b"line\nbreak",
        b"\"quoted\"",
        b"-n",
        b"~",
        b"*",
        b"{}",
        "ünïcødé".as_bytes(),
        b"\xff\xfe\x80",
        b" ",
    ];
    values.extend(nasty.iter().map(|v| v.to_vec()));
    for _ in 0..60 {
        let len = rng.below(40) as usize + 1;
        let v: Vec<u8> = rng
            .bytes(len)
            .into_iter()
            .map(|b| if b == 0 { 1 } else { b })
            .collect();
        values.push(v);
    }
    let joblog = dir.path().join("log");
    let mut cmd = herd();
    cmd.arg("--ssh")
        .arg(ssh(&lab))
        .args(["-S", "h1,h2,lo", "-k", "--joblog"])
        .arg(&joblog)
        .arg("printf '%s\\036' {}; printf '<%s>' {} >&2; exit $((PARALLEL_SEQ % 7))")
        .arg(":::");
    for v in &values {
        cmd.arg(std::ffi::OsStr::from_bytes(v));
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let mut want_out = Vec::new();
    let mut want_err = Vec::new();
    for v in &values {
        want_out.extend_from_slice(v);
        want_out.push(0x1e);
        want_err.push(b'<');
        want_err.extend_from_slice(v);
        want_err.push(b'>');
    }
    assert!(
        out.stdout == want_out,
        "stdout differs: {:?}",
        text(&out.stdout)
    );
    assert!(
        out.stderr == want_err,
        "stderr differs: {:?}",
        text(&out.stderr)
    );
    let rows = joblog_rows(&joblog);
    assert_eq!(rows.len(), values.len());
    let failed = rows.iter().filter(|r| r.2 != 0).count();
    assert_eq!(out.status.code(), Some(failed as i32));
    let mut hosts = std::collections::BTreeSet::new();
    for (seq, host, exit) in rows {
        assert_eq!(exit, (seq % 7) as i32, "job {seq}");
        hosts.insert(host);
    }
    // Every host took jobs: the values crossed each one.
    assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["h1", "h2", "lo"]);
}

/// A job killed by --timeout is killed on its host, with its whole process group; so is
/// every job when herd is told to stop (SIGTERM) or killed outright (SIGKILL). Nothing of
/// theirs is left on any host.
#[cfg(unix)]
#[test]
fn killed_jobs_leave_nothing_on_their_hosts() {
    let Some(lab) = lab() else { return };
    // A timeout: the job's own child (a second sleep) goes with it.
    let marker = long_sleep(31);
    let out = run_with(
        &lab,
        &[
            "-S",
            "h1,h2",
            "--timeout",
            "1",
            &format!("sleep {marker} & sleep {marker}; echo not reached"),
            ":::",
            "1",
            "2",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_gone(&marker);

    // herd stopped with SIGTERM (as Ctrl-C does), and herd killed with SIGKILL.
    for (tag, signal) in [(32, "TERM"), (33, "KILL")] {
        let marker = long_sleep(tag);
        let mut child = herd()
            .arg("--ssh")
            .arg(ssh(&lab))
            .args([
                "-S",
                "h1,h2",
                &format!("sleep {marker}"),
                ":::",
                "1",
                "2",
                "3",
                "4",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("four remote jobs", || processes_with(&marker).len() >= 4);
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap();
        assert_gone(&marker);
    }
}

/// A host that dies while its jobs run: they run again on the other host (not counted as
/// the jobs' failures), every attempt is in the joblog, and no output is lost or doubled.
#[cfg(unix)]
#[test]
fn a_dying_host_gives_its_jobs_to_the_others() {
    let Some(lab) = lab() else { return };
    // 30 jobs: the lost ones run again while input remains.
    dying_host(&lab, "hk1", 41, 3, 30);
    // 12 jobs on 16 slots: the input has ended (and herd knows it) when the host dies.
    dying_host(&lab, "hk2", 42, 8, 12);
}

fn dying_host(lab: &std::path::Path, name: &str, subnet: u32, slots: u32, jobs: u32) {
    let doomed = OwnHost::start(name, subnet);
    let dir = tempfile::tempdir().unwrap();
    let joblog = dir.path().join("log");
    let events = dir.path().join("events");
    let marker = format!("herd-dying-{}", std::process::id());
    let child = herd()
        .arg("--ssh")
        .arg(ssh(lab))
        .arg("-S")
        .arg(format!("{slots}/h1,{slots}/{name}"))
        .arg("--joblog")
        .arg(&joblog)
        .arg("--events")
        .arg(&events)
        // The marker names the job's script; the sleep keeps the first round running.
        .arg(format!(": {marker}; sleep 0.3; echo job {{}}"))
        .arg(":::")
        .args((1..=jobs).map(|i| i.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Every job started or every slot taken, and a job running on the doomed host: then it
    // dies.
    let started = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .matches("\"event\":\"start\"")
            .count()
    };
    wait_until("every slot taken", || {
        started() >= (2 * slots).min(jobs) as usize
    });
    wait_until("a job on the doomed host", || doomed.runs(&marker));
    doomed.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort_by_key(|l| l[4..].parse::<u32>().unwrap());
    let want: Vec<String> = (1..=jobs).map(|i| format!("job {i}")).collect();
    assert_eq!(lines, want);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("host {name} is down")), "{stderr}");
    let rows = joblog_rows(&joblog);
    let lost: Vec<_> = rows.iter().filter(|r| r.2 == 255).collect();
    assert!(!lost.is_empty(), "no attempt lost on {name}: {rows:?}");
    assert!(lost.iter().all(|r| r.1 == name), "{lost:?}");
    // Each job's last row is a success; every failed attempt was followed by one.
    for seq in 1..=jobs as u64 {
        let last = rows.iter().rev().find(|r| r.0 == seq).unwrap();
        assert_eq!(last.2, 0, "job {seq}: {rows:?}");
    }
    assert_eq!(rows.len(), jobs as usize + lost.len());
    // The events say the same: a retry on the dead host for each lost attempt, a host on
    // every finish.
    let events = common::json_lines(&std::fs::read(&events).unwrap());
    let retries: Vec<_> = events.iter().filter(|e| e["event"] == "retry").collect();
    assert_eq!(retries.len(), lost.len());
    assert!(retries.iter().all(|e| e["host"] == name), "{retries:?}");
    let finishes: Vec<_> = events.iter().filter(|e| e["event"] == "finish").collect();
    assert_eq!(finishes.len(), jobs as usize);
    assert!(finishes
        .iter()
        .all(|e| e["host"] == "h1" || e["host"] == name));
}

/// A host that cannot be reached costs one attempt to connect, not one failed job each;
/// the others run everything. With no host at all, herd stops and says why.
#[cfg(unix)]
#[test]
fn an_unreachable_host_is_left_out() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let joblog = dir.path().join("log");
    // Port 1 on loopback: refused at once.
    let dead = format!("ssh -F {}/ssh_config -p 1 127.0.0.1", lab.display());
    let out = run_with(
        &lab,
        &[
            "-S",
            &format!("h1,{dead}"),
            "--joblog",
            joblog.to_str().unwrap(),
            "echo {}",
            ":::",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 6);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("cannot reach host").count(), 1, "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(joblog_rows(&joblog).iter().all(|r| r.1 == "h1"));

    let out = run_with(&lab, &["-S", &dead, "echo {}", ":::", "1", "2"]);
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no host can run jobs"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// More job slots on a host than sshd allows sessions on one connection (MaxSessions 10):
/// herd opens more masters, and all 25 jobs run at once (each waits until all have started),
/// none refused.
#[cfg(unix)]
#[test]
fn more_slots_than_max_sessions_open_more_connections() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let meet = dir.path().join("meet");
    std::fs::create_dir(&meet).unwrap();
    let mut perms = std::fs::metadata(&meet).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
    std::fs::set_permissions(&meet, perms.clone()).unwrap();
    std::fs::set_permissions(dir.path(), perms).unwrap();
    let script = format!(
        "touch {m}/{{}}; while [ $(ls {m} | wc -l) -lt 25 ]; do sleep 0.05; done; echo {{}}",
        m = meet.display()
    );
    let mut args = vec!["-S", "25/h1", "--timeout", "60", &script, ":::"];
    let values: Vec<String> = (1..=25).map(|i| i.to_string()).collect();
    args.extend(values.iter().map(String::as_str));
    let out = run_with(&lab, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 25);
}

/// --env exports herd's variables to remote jobs, exactly; PARALLEL_SEQ and PARALLEL_JOBSLOT
/// are set there as here.
#[cfg(unix)]
#[test]
fn env_reaches_remote_jobs() {
    let Some(lab) = lab() else { return };
    let out = herd()
        .arg("--ssh")
        .arg(ssh(&lab))
        .args([
            "-S",
            "1/h1",
            "--env",
            "HERD_TEST_VALUE",
            "-k",
            "printf '%s|%s|%s|%s\\n' \"$HERD_TEST_VALUE\" \"$PARALLEL_SEQ\" \"$PARALLEL_JOBSLOT\" {}",
            ":::",
            "a",
            "b",
        ])
        .env("HERD_TEST_VALUE", "it's $x `y`\n!z")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "it's $x `y`\n!z|1|1|a\nit's $x `y`\n!z|2|1|b\n"
    );
}
