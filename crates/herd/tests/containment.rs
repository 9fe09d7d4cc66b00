//! What holds a job's processes, as the library reports it and keeps it (Linux).
#![cfg(target_os = "linux")]

use herd::{Containment, Herd, Job};

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
        eprintln!("skipped: herd may not create cgroups here");
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
