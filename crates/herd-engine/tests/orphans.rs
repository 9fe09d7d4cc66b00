//! `Builder::adopt_orphans`: where jobs are held by process groups only, what leaves a job's
//! group is adopted and killed, and nothing else is. A test binary of its own, because it
//! makes the test process a child subreaper.
#![cfg(target_os = "linux")]

use herd_engine::{Containment, Herd, Job};
use testkit::{assert_gone, long_sleep, processes_with, wait_for_file};

fn adopting_herd() -> Herd {
    let herd = Herd::builder()
        .use_cgroups(false)
        .adopt_orphans(true)
        .build()
        .unwrap();
    assert_eq!(herd.containment(), Containment::ProcessGroup);
    herd
}

#[test]
fn an_orphan_that_left_its_group_is_killed_and_the_programs_own_children_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let own = long_sleep(1);
    let mut own_child = std::process::Command::new("sleep")
        .arg(&own)
        .spawn()
        .unwrap();
    let escaped = long_sleep(2);
    let flag = dir.path().join("escaped");
    let script = format!(
        "setsid sh -c 'echo > {flag}; exec sleep {escaped}' </dev/null >/dev/null 2>&1 & {wait}",
        flag = flag.display(),
        wait = wait_for_file(&flag)
    );
    let herd = adopting_herd();
    let result = herd
        .spawn(Job::new("sh").args(["-c", &script]))
        .unwrap()
        .wait();
    assert!(result.success(), "{result:?}");
    // The job's group is dead; the escaped sleep was handed to this process.
    assert_eq!(processes_with(&escaped).len(), 1);
    drop(herd);
    assert_gone(&escaped);
    assert!(
        own_child.try_wait().unwrap().is_none(),
        "the test's own child was killed"
    );
    own_child.kill().unwrap();
    own_child.wait().unwrap();
}

#[test]
fn another_herds_jobs_are_not_taken_for_orphans() {
    // Both herds' jobs are this process's children, each in a group of its own. The adopting
    // herd sweeps once a second while its job runs, twice during the other herd's job.
    let other = Herd::builder().use_cgroups(false).build().unwrap();
    let long = other.spawn(Job::new("sleep").arg("3")).unwrap();
    let adopting = adopting_herd();
    let short = adopting.spawn(Job::new("sleep").arg("2.5")).unwrap();
    assert!(short.wait().success());
    let result = long.wait();
    assert!(
        result.success(),
        "the other herd's job was killed: {result:?}"
    );
}
