//! Nothing herd starts outlives it, whatever happens to herd: at both levels of containment
//! (a cgroup per job where herd may create one, process groups elsewhere).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
mod common;

use common::{herd, text};
use testkit::{assert_gone, long_sleep, wait_for_file, wait_until};

/// Whether this machine must give herd a cgroup (CI sets it where it runs as root on a kernel
/// with cgroup v2): then a run that falls back to process groups fails instead of passing.
fn cgroup_required() -> bool {
    std::env::var_os("HERD_REQUIRE_CGROUP").is_some()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    /// Whatever herd finds: a cgroup where it may.
    Best,
    /// `HERD_NO_CGROUP=1`: process groups and the guardian only.
    ProcessGroup,
}

fn herd_at(level: Level) -> Command {
    let mut cmd = herd();
    if level == Level::ProcessGroup {
        cmd.env("HERD_NO_CGROUP", "1");
    }
    cmd
}

/// The cgroup a job of herd's runs in, as `/proc/self/cgroup` names it (the `0::` line).
fn job_cgroup(level: Level) -> String {
    let out = herd_at(level)
        .args(["--shell", "cat /proc/self/cgroup # {}", ":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cgroup = text(&out.stdout);
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

/// Whether herd contains jobs in cgroups here (and must, where CI says so).
fn cgroups_here() -> bool {
    let found = job_cgroup(Level::Best).contains("/herd-");
    assert!(
        found || !cgroup_required(),
        "HERD_REQUIRE_CGROUP is set but jobs ran in {}",
        job_cgroup(Level::Best)
    );
    found
}

#[test]
fn jobs_run_in_a_cgroup_of_their_own_which_is_removed_afterwards() {
    if !cgroups_here() {
        testkit::skipped("herd may not create cgroups here");
        return;
    }
    // `/herd-<pid>-<n>/<k>`: one per herd, one per job inside it.
    let path = job_cgroup(Level::Best);
    let (herd_dir, job) = path.rsplit_once('/').unwrap();
    assert!(job.parse::<u32>().is_ok(), "{path}");
    assert!(herd_dir.rsplit('/').next().unwrap().starts_with("herd-"));
    // Gone once herd has ended: look for it in every cgroup2 mount.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for mount in mountinfo.lines().filter(|l| l.contains(" - cgroup2 ")) {
        let point = mount.split(' ').nth(4).unwrap();
        let dir = format!("{point}{herd_dir}");
        assert!(!std::path::Path::new(&dir).exists(), "{dir} was left");
    }
    assert!(!job_cgroup(Level::ProcessGroup).contains("/herd-"));
}

/// herd is SIGKILLed while five jobs run, each with a background grandchild: every one of the
/// ten processes is gone soon after (the guardian kills them).
fn sigkill_of_herd_leaves_no_survivor(level: Level, tag: u32) {
    let sleep = long_sleep(tag);
    let script = format!("sleep {sleep} & echo up; sleep {sleep}");
    let mut child = herd_at(level)
        .args(["--line-buffer", "-j", "5", "--shell", &script])
        .args([":::", "1", "2", "3", "4", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Should the test fail before its kill, herd must not be left running its sleepers.
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..5 {
        assert_eq!(lines.next().unwrap().unwrap(), "up");
    }
    // (The shells' own command lines name the duration too.)
    let sleepers = || {
        testkit::processes_with(&sleep)
            .iter()
            .filter(|p| p.contains(": sleep "))
            .count()
    };
    wait_until("ten sleepers", || sleepers() == 10);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_gone(&sleep);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_of_herd_leaves_no_survivor_in_a_cgroup() {
    sigkill_of_herd_leaves_no_survivor(Level::Best, 81);
}

#[test]
fn sigkill_of_herd_leaves_no_survivor_with_process_groups() {
    sigkill_of_herd_leaves_no_survivor(Level::ProcessGroup, 82);
}

/// A job starts a descendant in a session of its own (out of the job's process group), waits
/// until it runs, and ends.
fn escaping_job(dir: &std::path::Path, sleep: &str) -> String {
    let flag = dir.join("escaped");
    format!(
        "setsid sh -c 'echo > {flag}; exec sleep {sleep}' </dev/null >/dev/null 2>&1 & {wait}; echo started",
        flag = flag.display(),
        wait = wait_for_file(&flag)
    )
}

/// A job's descendant leaves its process group and outlives the job; herd ends right after.
fn setsid_descendant_does_not_outlive_herd(level: Level, tag: u32) {
    let dir = tempfile::tempdir().unwrap();
    let sleep = long_sleep(tag);
    let out = herd_at(level)
        .arg("--shell")
        .arg(format!("{} # {{}}", escaping_job(dir.path(), &sleep)))
        .args([":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"started\n");
    assert_gone(&sleep);
}

#[test]
fn a_descendant_that_calls_setsid_does_not_outlive_herd_in_a_cgroup() {
    if !cgroups_here() {
        testkit::skipped("no cgroup for herd here");
        return;
    }
    setsid_descendant_does_not_outlive_herd(Level::Best, 83);
}

#[test]
fn a_descendant_that_calls_setsid_does_not_outlive_herd_with_process_groups() {
    // herd adopts it (a child subreaper) once the job's shell has exited, and kills it.
    setsid_descendant_does_not_outlive_herd(Level::ProcessGroup, 86);
}

/// herd keeps running (a second job waits for a file) while the first job times out: the
/// descendant that left the job's group must die then, not only when herd ends.
fn timeout_kills_setsid_descendant(level: Level, tag: u32) {
    let dir = tempfile::tempdir().unwrap();
    let sleep = long_sleep(tag);
    let job = format!("{}; sleep {sleep}", escaping_job(dir.path(), &sleep));
    let mut child = herd_at(level)
        .args(["--timeout", "1", "--line-buffer", "--shell"])
        .arg(format!(
            "if [ {{}} = 1 ]; then {job}; else {}; fi",
            wait_for_file(&dir.path().join("end"))
        ))
        .args([":::", "1", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    assert_gone(&sleep);
    std::fs::write(dir.path().join("end"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("timed out after 1s"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_timeout_kills_a_descendant_that_called_setsid_in_a_cgroup() {
    if !cgroups_here() {
        testkit::skipped("no cgroup for herd here");
        return;
    }
    timeout_kills_setsid_descendant(Level::Best, 84);
}

#[test]
fn a_timeout_kills_a_descendant_that_called_setsid_with_process_groups() {
    timeout_kills_setsid_descendant(Level::ProcessGroup, 87);
}

#[test]
fn with_process_groups_herd_does_not_claim_a_kill_it_could_not_make() {
    // A descendant outside the job's group keeps the job's output open: herd closes it after
    // the grace and says what it did, which is not killing that descendant.
    let sleep = long_sleep(85);
    let script = format!("setsid sleep {sleep} & echo hi");
    let out = herd_at(Level::ProcessGroup)
        .args(["--eof-grace", "0.3", "--shell", &script, ":::", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("its process group was killed"), "{stderr}");
    assert!(!stderr.contains("were killed"), "{stderr}");
    // Not reached by the group's kill, but adopted once the job's shell exited, and killed.
    assert_gone(&sleep);
}

#[test]
fn the_spill_directory_is_private_and_does_not_outlive_a_killed_herd() {
    for level in [Level::Best, Level::ProcessGroup] {
        let dir = tempfile::tempdir().unwrap();
        let report = tempfile::tempdir().unwrap();
        let mode = report.path().join("mode");
        let sleep = long_sleep(86);
        // Enough output to spill; then the job reports the directory's mode and waits.
        let script = format!(
            "head -c 5000000 /dev/zero; stat -c %a {}/herd-* > {m}.new; mv {m}.new {m}; sleep {sleep}",
            dir.path().display(),
            m = mode.display()
        );
        let child = herd_at(level)
            .arg("--tmpdir")
            .arg(dir.path())
            .args(["--shell", &script, ":::", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        wait_until("the job's report", || mode.exists());
        let reported = std::fs::read_to_string(&mode).unwrap();
        assert_eq!(
            reported.trim(),
            "700",
            "{level:?}: the spill directory's mode"
        );
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert_gone(&sleep);
        // The guardian removes it once the jobs are dead; give it until then.
        wait_until("the spill directory to go", || {
            std::fs::read_dir(dir.path()).unwrap().next().is_none()
        });
    }
}
