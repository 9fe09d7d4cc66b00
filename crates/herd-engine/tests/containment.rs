//! What holds a job's processes, as the library reports it and keeps it (Linux).
#![cfg(target_os = "linux")]

use herd_engine::{Containment, Herd, Job};

fn cgroup_required() -> bool {
    std::env::var_os("HERD_REQUIRE_CGROUP").is_some()
}

/// The `0::` line of a job's `/proc/self/cgroup`.
fn cgroup_of_a_job(herd: &Herd) -> String {
    let result = herd
        .spawn(Job::new("cat").arg("/proc/self/cgroup"))
        .unwrap()
        .wait();
    assert!(result.success());
    let out = String::from_utf8(result.stdout.to_vec().unwrap()).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_herd_says_what_contains_its_jobs() {
    let best = Herd::new().unwrap();
    let in_cgroup = cgroup_of_a_job(&best).contains("/herd-");
    assert_eq!(best.containment() == Containment::Cgroup, in_cgroup);
    assert!(in_cgroup || !cgroup_required());

    let groups = Herd::builder().use_cgroups(false).build().unwrap();
    assert_eq!(groups.containment(), Containment::ProcessGroup);
    assert!(!cgroup_of_a_job(&groups).contains("/herd-"));

    let none = Herd::builder().kill_descendants(false).build().unwrap();
    assert_eq!(none.containment(), Containment::None);
}

#[test]
fn a_dropped_herd_leaves_no_cgroup_behind() {
    let herd = Herd::new().unwrap();
    if herd.containment() != Containment::Cgroup {
        testkit::skipped("herd may not create cgroups here");
        return;
    }
    // `/…/herd-<pid>-<n>/<k>`: the herd's own cgroup is the job's parent.
    let path = cgroup_of_a_job(&herd);
    let herd_cgroup = path.rsplit_once('/').unwrap().0.to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dirs: Vec<String> = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|m| format!("{}{herd_cgroup}", m.split(' ').nth(4).unwrap()))
        .collect();
    assert!(dirs.iter().any(|d| std::path::Path::new(d).is_dir()));
    drop(herd);
    for dir in &dirs {
        assert!(!std::path::Path::new(dir).exists(), "{dir} was left");
    }
}

#[test]
fn a_foreground_job_shares_this_process_group_and_an_inheriting_one_its_output() {
    let herd = Herd::new().unwrap();
    let own_group = std::fs::read_to_string("/proc/self/stat").unwrap();
    let own_group = own_group[own_group.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let group_of = |job: Job| {
        let result = herd.spawn(job).unwrap().wait();
        assert!(result.success(), "{result:?}");
        String::from_utf8(result.stdout.to_vec().unwrap()).unwrap()
    };
    let script = ["-c", "ps -o pgid= -p $$"];
    assert_eq!(
        group_of(Job::new("sh").args(script).foreground(true)).trim(),
        own_group
    );
    assert_ne!(group_of(Job::new("sh").args(script)).trim(), own_group);

    // Inherited: the job's stdout is this process's own (whatever the test harness made it).
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("stdout");
    let result = herd
        .spawn(Job::new("sh").inherit_output(true).args([
            "-c",
            &format!("t=$(readlink /proc/$$/fd/1); echo $t > {}", seen.display()),
        ]))
        .unwrap()
        .wait();
    assert!(result.success(), "{result:?}");
    assert!(result.stdout.is_empty());
    let ours = std::fs::read_link("/proc/self/fd/1").unwrap();
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        ours.to_string_lossy()
    );
}

/// A job cgroup emptied with `cgroup.kill` is never given to another job. On some kernels
/// (Linux 6.18 here) every process later started in such a cgroup with `CLONE_INTO_CGROUP` is
/// killed at once: the kernel compares the kill counter of the parent's cgroup with the
/// destination's. A job that leaves a process behind (killed by `cgroup.kill` when the job
/// ends) made every later job in its cgroup die of SIGKILL within microseconds.
#[test]
fn a_cgroup_that_was_killed_is_not_given_to_another_job() {
    // One job at a time: each job gets the cgroup the previous one had, if it is reused.
    let herd = Herd::builder().max_running(1).build().unwrap();
    if herd.containment() != Containment::Cgroup {
        assert!(!cgroup_required(), "no cgroup where one is required");
        testkit::skipped("herd may not create cgroups here");
        return;
    }
    for round in 0..5 {
        // Leaves a sleeper behind, with its output elsewhere: killed as the job ends.
        let leaver = herd
            .spawn(Job::new("sh").args(["-c", "sleep 30 >/dev/null 2>&1 & exit 0"]))
            .unwrap()
            .wait();
        assert!(leaver.success(), "round {round}: {:?}", leaver.outcome);
        let next = herd.spawn(Job::new("true")).unwrap().wait();
        assert!(
            next.success(),
            "round {round}: the next job ended {:?}",
            next.outcome
        );
    }
}
